"""The team's dashboard (/admin/dashboard): its aggregates over seeded messages, tickets and
hoax counts, on SQLite and, where the servers are available, on PostgreSQL; local-day
boundaries; period validation; the CSV export and its formula guard; who sees what.

Every expected number below is worked out by hand from what the test seeds (the comments
say how), never read back from the code under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import MetaData, Table, inspect, text
from test_admin_console import ROLES, World

from bot.admin import dashboard
from bot.admin.dashboard import Period
from bot.brain.decision import Decision
from bot.channels.base import TEXT, Inbound
from bot.store import models
from bot.store.db import Database
from bot.store.tickets import TicketSpec

WIB = ZoneInfo("Asia/Jakarta")
UTC = dt.timezone.utc
NOV = (2026, 11)
PERIOD = Period(dt.date(2026, 11, 2), dt.date(2026, 11, 4), WIB)
NIK_A, NIK_B = "3201234567890001", "3201234567890002"
PHONE = "081234567890"


def wib(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> dt.datetime:
    """A moment given in WIB, as the UTC datetime Garda stores."""
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=WIB).astimezone(UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def db(request: pytest.FixtureRequest, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.delenv("GARDA_TIMEZONE", raising=False)  # WIB, the default
    url = (f"sqlite:///{tmp_path / 'garda.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    database.upgrade()
    yield database
    database.dispose()


class Seeder:
    """Citizen messages decided at given moments, through the store's own API."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.n = 0

    def message(self, at: dt.datetime, channel: str, route: str | None, *,
                intent: str | None = None, text: str = "halo", hoax_id: str | None = None,
                category: str | None = None, chat: str | None = None) -> int:
        self.n += 1
        chat = chat or f"{channel}-{self.n}"
        stored = self.db.store_inbound(Inbound(channel, f"p{self.n}", chat, TEXT, text), now=at)
        if route is None:
            return stored.conversation_id  # still queued: undecided
        message = self.db.claim_next(stored.conversation_id, now=at)
        assert message is not None
        if route == "handoff":
            ticket = self.ticket_of(stored.conversation_id)
            self.db.save_handoff(message, ticket, now=at)
            return stored.conversation_id
        decision = Decision(text=text, route=route, intent=intent, confidence=0.9,
                            category=category, hoax_id=hoax_id, reply="balasan")
        spec = (TicketSpec(category, 2, dt.timedelta(minutes=30))
                if route == "escalate" and category else None)
        self.db.save_decision(message, decision, [], now=at, ticket=spec)
        return stored.conversation_id

    def ticket_of(self, conversation_id: int) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT id FROM tickets WHERE conversation_id = :c ORDER BY id DESC"),
                {"c": conversation_id}).scalar_one())

    def ticket(self, category: str, opened: dt.datetime, within: dt.timedelta,
               claims: tuple[dt.timedelta, ...] = (), released: bool = False) -> None:
        """A ticket with claims at the given delays after opening (the last one stays on
        the row unless ``released``), as the console leaves it."""
        conversation = self.message(opened, "telegram", "answer")
        last = opened + claims[-1] if claims and not released else None
        with self.db.engine.begin() as conn:
            ticket_id = conn.execute(models.tickets.insert().values(
                conversation_id=conversation, category=category, priority=2,
                status="claimed" if last else "open", assignee="budi" if last else None,
                opened_at=opened, claim_by=opened + within, claimed_at=last,
            )).inserted_primary_key[0]
            conn.execute(models.ticket_events.insert().values(
                ticket_id=ticket_id, at=opened, actor="garda", action="opened"))
            for delay in claims:
                conn.execute(models.ticket_events.insert().values(
                    ticket_id=ticket_id, at=opened + delay, actor="budi", action="claimed"))
                if released or delay != claims[-1]:
                    conn.execute(models.ticket_events.insert().values(
                        ticket_id=ticket_id, at=opened + delay + dt.timedelta(seconds=1),
                        actor="budi", action="released"))

    def hoax_day(self, day: dt.date, hoax_id: str, matches: int) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(models.hoax_daily.insert().values(day=day, hoax_id=hoax_id,
                                                           matches=matches))


def seed_messages(s: Seeder) -> None:
    """The period is 2-4 November 2026 (WIB). Around it, one message each side."""
    s.message(wib(1, 23, 59, 59), "telegram", "answer", intent="faq_ktp")   # 1 Nov: out
    s.message(wib(5, 0, 0, 0), "telegram", "answer", intent="faq_ktp")      # 5 Nov: out
    # 2 Nov: telegram 3 (the first at 00:00:00 WIB, 1 Nov 17:00 UTC), whatsapp 3.
    s.message(wib(2, 0, 0, 0), "telegram", "answer", intent="faq_ktp")
    s.message(wib(2, 10), "telegram", "answer", intent="faq_ktp")
    s.message(wib(2, 11), "telegram", "clarify", intent="faq_kk")
    s.message(wib(2, 12), "whatsapp", "answer", intent="faq_kk")
    s.message(wib(2, 13), "whatsapp", "hoax", hoax_id="bansos-palsu")
    # 23:30 WIB is still 2 November locally (16:30 UTC).
    s.message(wib(2, 23, 30), "whatsapp", "fallback", intent="nlu_fallback",
              text=f"Bagaimana cara urus NIK {NIK_A}??")
    # 3 Nov: 03:00 WIB is 2 Nov 20:00 UTC, but 3 November locally. telegram 4, whatsapp 1.
    s.message(wib(3, 3), "telegram", "fallback", intent="nlu_fallback",
              text=f"bagaimana cara urus nik {NIK_B}")
    s.message(wib(3, 8), "telegram", "hoax", hoax_id="vaksin-chip")
    s.message(wib(3, 9), "telegram", "hoax", hoax_id="vaksin-chip")
    s.message(wib(3, 10), "telegram", "fallback", intent="nlu_fallback",
              text='=HYPERLINK("http://contoh.test","klik")')
    escalated = s.message(wib(3, 11), "whatsapp", "escalate", category="privacy",
                          chat="wa-escalated")
    # 4 Nov: telegram 2, whatsapp 2 (the last at 23:59:59 WIB).
    s.message(wib(4, 9), "whatsapp", "handoff", chat="wa-escalated")
    s.message(wib(4, 10), "telegram", None)                                  # undecided
    s.message(wib(4, 11), "telegram", "fallback", intent="nlu_fallback",
              text=f"nomor saya {PHONE} tolong hubungi")
    s.message(wib(4, 23, 59, 59), "whatsapp", "answer", intent="faq_ktp")
    assert escalated


def test_messages_per_local_day_and_channel(db: Database) -> None:
    seed_messages(Seeder(db))
    found = dashboard.traffic(db.engine, PERIOD)
    assert found.days == (dt.date(2026, 11, 2), dt.date(2026, 11, 3), dt.date(2026, 11, 4))
    assert found.channels == ("telegram", "whatsapp")  # 9 against 6
    by_day = {(d, c): found.count(d, c) for d in found.days for c in found.channels}
    assert by_day == {
        (dt.date(2026, 11, 2), "telegram"): 3, (dt.date(2026, 11, 2), "whatsapp"): 3,
        (dt.date(2026, 11, 3), "telegram"): 4, (dt.date(2026, 11, 3), "whatsapp"): 1,
        (dt.date(2026, 11, 4), "telegram"): 2, (dt.date(2026, 11, 4), "whatsapp"): 2,
    }
    assert found.total == 15


def test_a_message_at_23_30_wib_lands_on_that_local_day(db: Database) -> None:
    s = Seeder(db)
    s.message(wib(2, 23, 30), "telegram", "answer")   # 2 Nov 16:30 UTC
    s.message(wib(3, 6, 30), "telegram", "answer")    # 2 Nov 23:30 UTC, 3 Nov in WIB
    found = dashboard.traffic(db.engine, PERIOD)
    assert found.count(dt.date(2026, 11, 2), "telegram") == 1
    assert found.count(dt.date(2026, 11, 3), "telegram") == 1
    # The same instants, counted in WIT (UTC+9): 01:30 and 08:30 on 3 November.
    wit = dashboard.traffic(db.engine, Period(PERIOD.first, PERIOD.last,
                                              ZoneInfo("Asia/Jayapura")))
    assert wit.count(dt.date(2026, 11, 2), "telegram") == 0
    assert wit.count(dt.date(2026, 11, 3), "telegram") == 2


def test_route_shares_are_of_every_message_in_the_period(db: Database) -> None:
    seed_messages(Seeder(db))
    shares = {r.route: (r.messages, r.share) for r in dashboard.route_shares(db.engine, PERIOD)}
    # 15 messages: answer 4 (2 Nov x3, 4 Nov), clarify 1, fallback 4, hoax 3, escalate 1,
    # handoff 1, undecided 1.
    expected = {"answer": 4, "clarify": 1, "fallback": 4, "hoax": 3, "escalate": 1,
                "handoff": 1, "undecided": 1, "other": 0}
    assert {k: n for k, (n, _) in shares.items()} == expected
    assert {k: round(share, 6) for k, (_, share) in shares.items()} == {
        k: round(n / 15, 6) for k, n in expected.items()}


def test_top_intents_count_messages_and_answers(db: Database) -> None:
    seed_messages(Seeder(db))
    found = [(i.intent, i.messages, i.answered)
             for i in dashboard.top_intents(db.engine, PERIOD)]
    # faq_ktp: 2 Nov x2 + 4 Nov, all answered; nlu_fallback x4; faq_kk: clarify + answer.
    assert found == [("nlu_fallback", 4, 0), ("faq_ktp", 3, 3), ("faq_kk", 2, 1)]
    assert [i.intent for i in dashboard.top_intents(db.engine, PERIOD, limit=1)] == [
        "nlu_fallback"]


def test_hoax_matches_per_day_with_the_spike_flag(db: Database) -> None:
    s = Seeder(db)
    # vaksin-chip: once a day for the 14 days before the period, twice on 2 Nov, and on
    # 3 Nov six counted directly plus two matched messages (8).
    for n in range(14):
        s.hoax_day(dt.date(2026, 10, 19) + dt.timedelta(days=n), "vaksin-chip", 1)
    s.hoax_day(dt.date(2026, 11, 2), "vaksin-chip", 2)
    s.hoax_day(dt.date(2026, 11, 3), "vaksin-chip", 6)
    s.message(wib(3, 8), "telegram", "hoax", hoax_id="vaksin-chip")
    s.message(wib(3, 23, 30), "telegram", "hoax", hoax_id="vaksin-chip")  # still 3 Nov
    # bansos-palsu: never seen before, 5 on 2 Nov; 4 on 4 Nov; 9 on 5 Nov (outside).
    s.hoax_day(dt.date(2026, 11, 2), "bansos-palsu", 5)
    s.hoax_day(dt.date(2026, 11, 4), "bansos-palsu", 4)
    s.hoax_day(dt.date(2026, 11, 5), "bansos-palsu", 9)
    found = [(h.day.day, h.hoax_id, h.matches, round(h.baseline, 4), h.spike)
             for h in dashboard.hoax_matches(db.engine, PERIOD)]
    assert found == [
        # Baseline 14/14 = 1.0: two is ordinary.
        (2, "bansos-palsu", 5, 0.0, True),        # 5 at the floor rate 0.5: P = 0.00017
        (2, "vaksin-chip", 2, 1.0, False),
        # 13 ones and the 2 of 2 Nov: 15/14; P(>= 8) = 0.000017.
        (3, "vaksin-chip", 8, round(15 / 14, 4), True),
        (4, "bansos-palsu", 4, round(5 / 14, 4), False),  # under the minimum of 5
    ]


def test_escalations_per_category_and_time_to_first_claim(db: Database) -> None:
    s = Seeder(db)
    minutes = dt.timedelta(minutes=1)
    for delay in (2, 4, 10):  # deadline 5 minutes: the 10-minute claim is late
        s.ticket("emergency", wib(2, 9), 5 * minutes, (delay * minutes,))
    # Claimed at 30 min (deadline 60), released, claimed again at 90: the first claim
    # counts, although the row now says 90.
    s.ticket("human_request", wib(3, 9), 60 * minutes, (30 * minutes, 90 * minutes))
    s.ticket("human_request", wib(3, 10), 60 * minutes)                 # never claimed
    s.ticket("privacy", wib(3, 11), 30 * minutes, (45 * minutes,), released=True)
    s.ticket("privacy", wib(1, 23, 59), 30 * minutes, (1 * minutes,))    # 1 Nov: outside
    s.ticket("emergency", wib(5, 0, 1), 5 * minutes, (1 * minutes,))      # 5 Nov: outside
    found = {e.category: e for e in dashboard.escalations(db.engine, PERIOD)}
    assert list(found) == ["emergency", "human_request", "privacy"]  # most tickets first
    emergency = found["emergency"]
    assert (emergency.tickets, emergency.claimed, emergency.unclaimed) == (3, 3, 0)
    assert emergency.median_claim == 4 * minutes
    assert emergency.p90_claim == 10 * minutes        # nearest rank: the 3rd of 3
    assert (emergency.late, round(emergency.late_share or 0, 4)) == (1, round(1 / 3, 4))
    human = found["human_request"]
    assert (human.tickets, human.claimed, human.unclaimed) == (2, 1, 1)
    assert human.median_claim == human.p90_claim == 30 * minutes
    assert (human.late, human.late_share) == (0, 0.0)
    privacy = found["privacy"]  # released: the row has no claim, the event log has
    assert (privacy.tickets, privacy.claimed, privacy.median_claim) == (1, 1, 45 * minutes)
    assert (privacy.late, privacy.late_share) == (1, 1.0)


def test_nearest_rank_p90() -> None:
    assert dashboard._p90([5.0]) == 5.0
    assert dashboard._p90([float(n) for n in range(1, 11)]) == 9.0   # ceil(9) -> 9th
    assert dashboard._p90([float(n) for n in range(1, 12)]) == 10.0  # ceil(9.9) -> 10th


def drop_review_inbox(db: Database) -> None:
    """A database from before the review inbox (its migration came later). Called after
    seeding: saving a decision fills the inbox while it exists."""
    with db.engine.begin() as conn:
        if inspect(conn).has_table("review_items"):
            conn.execute(text("DROP TABLE review_items"))


def test_without_the_review_inbox_fallback_texts_are_grouped_and_masked(db: Database) -> None:
    seed_messages(Seeder(db))
    drop_review_inbox(db)
    found = dashboard.unanswered(db.engine, PERIOD)
    assert not found.from_inbox
    clusters = [(c.messages, c.text) for c in found.clusters]
    # The two NIK questions normalise alike ("bagaimana cara urus nik nomornik"); the
    # representative is the first of the tied texts, masked.
    assert clusters[0] == (2, "Bagaimana cara urus NIK [nik/kk]??")
    assert sorted(clusters[1:]) == [(1, '=HYPERLINK("http://contoh.test","klik")'),
                                    (1, "nomor saya [telepon] tolong hubungi")]
    assert not any(NIK_A in c.key or NIK_B in c.key or PHONE in c.key
                   for c in found.clusters)


def review_items(db: Database) -> Table:
    if not inspect(db.engine).has_table("review_items"):
        pytest.skip("the review inbox's migration is not in this checkout yet")
    return Table("review_items", MetaData(), autoload_with=db.engine)


def test_with_the_review_inbox_clusters_come_from_it(db: Database) -> None:
    items = review_items(db)
    rows = [  # (created, source, cluster, text, status)
        (wib(2, 9), "fallback", "c-akta", "cara bikin akta lahir", "open"),
        (wib(2, 10), "low_margin", "c-akta", "cara bikin akta lahir", "accepted"),
        (wib(3, 23, 30), "fallback", "c-akta", f"akta anak saya NIK {NIK_A}", "open"),
        (wib(3, 9), "fallback", "c-pajak", "bayar pajak motor dimana", "open"),
        (wib(3, 9), "clarification", "c-pajak", "bayar pajak motor", "open"),  # not counted
        (wib(3, 9), "spot_check", "c-spot", "halo", "open"),                     # not counted
        (wib(5, 0, 30), "fallback", "c-akta", "cara bikin akta lahir", "open"),  # 5 Nov: out
    ]
    with db.engine.begin() as conn:
        for created, source, cluster, body, status in rows:
            conn.execute(items.insert().values(created_at=created, source=source,
                                               cluster_key=cluster, text=body, status=status))
    found = dashboard.unanswered(db.engine, PERIOD)
    assert found.from_inbox
    assert [(c.key, c.messages, c.open_items, c.text) for c in found.clusters] == [
        ("c-akta", 3, 2, "cara bikin akta lahir"),
        ("c-pajak", 1, 1, "bayar pajak motor dimana"),
    ]


def test_a_zone_with_daylight_saving_time_is_counted_in_python(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'dst.db'}")
    db.upgrade()
    amsterdam = ZoneInfo("Europe/Amsterdam")  # summer time ends 25 Oct 2026, 03:00 -> 02:00
    period = Period(dt.date(2026, 10, 24), dt.date(2026, 10, 26), amsterdam)
    assert period.fixed_offset() is None
    s = Seeder(db)
    for day, hour, minute in ((24, 23, 30), (25, 0, 30), (25, 23, 30), (26, 0, 30)):
        s.message(dt.datetime(2026, 10, day, hour, minute, tzinfo=amsterdam).astimezone(UTC),
                  "telegram", "answer")
    found = dashboard.traffic(db.engine, period)
    assert [found.count(d, "telegram") for d in found.days] == [1, 2, 1]
    db.dispose()


# -- periods ------------------------------------------------------------------------------

TODAY = dt.date(2026, 11, 20)


def test_the_default_period_is_the_last_fourteen_days() -> None:
    period = dashboard.parse_period(None, None, TODAY, WIB)
    assert (period.first, period.last) == (dt.date(2026, 11, 7), TODAY)
    assert len(period.days) == 14
    only_end = dashboard.parse_period("", "2026-01-14", TODAY, WIB)
    assert (only_end.first, only_end.last) == (dt.date(2026, 1, 1), dt.date(2026, 1, 14))


def test_a_period_is_local_days_in_utc() -> None:
    period = Period(dt.date(2026, 11, 2), dt.date(2026, 11, 4), WIB)
    assert period.start == dt.datetime(2026, 11, 1, 17, tzinfo=UTC)
    assert period.end == dt.datetime(2026, 11, 4, 17, tzinfo=UTC)
    assert period.fixed_offset() == dt.timedelta(hours=7)


@pytest.mark.parametrize("start, end, message", [
    ("2026-13-01", "2026-11-14", dashboard.BAD_DATE),
    ("2026-02-30", "2026-11-14", dashboard.BAD_DATE),
    ("2026-1-1", "2026-11-14", dashboard.BAD_DATE),
    ("kemarin", None, dashboard.BAD_DATE),
    ("2026-11-01T00:00", None, dashboard.BAD_DATE),
    ("1999-12-31", "2000-01-02", dashboard.OUT_OF_RANGE),
    ("2026-11-05", "2026-11-04", dashboard.REVERSED),
    ("2025-01-01", "2026-01-02", dashboard.TOO_LONG),  # 367 days
])
def test_bad_periods_are_refused_with_a_message(start: str, end: str | None,
                                                message: str) -> None:
    with pytest.raises(dashboard.PeriodError) as refused:
        dashboard.parse_period(start, end, TODAY, WIB)
    assert str(refused.value) == message


def test_a_period_of_366_days_is_allowed() -> None:
    period = dashboard.parse_period("2024-01-01", "2024-12-31", TODAY, WIB)  # a leap year
    assert len(period.days) == 366


# -- CSV ----------------------------------------------------------------------------------


def test_csv_cells_that_a_spreadsheet_would_run_get_an_apostrophe() -> None:
    for risky in ("=1+1", "+62 812", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert dashboard.safe_cell(risky) == "'" + risky
    for harmless in ("halo =1", "cara urus KTP", "", "'sudah"):
        assert dashboard.safe_cell(harmless) == harmless
    assert dashboard.safe_cell(-3) == -3  # numbers are numbers, not text


def read_csv(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


def test_every_section_exports_as_csv_with_a_header(db: Database) -> None:
    s = Seeder(db)
    seed_messages(s)
    s.ticket("emergency", wib(2, 9), dt.timedelta(minutes=5), (dt.timedelta(minutes=7),))
    drop_review_inbox(db)
    messages = read_csv(dashboard.section(db.engine, PERIOD, "messages"))
    assert messages[0] == ["hari", "kanal", "pesan"]
    assert messages[1:] == [
        ["2026-11-02", "telegram", "4"], ["2026-11-02", "whatsapp", "3"],  # + the ticket's
        ["2026-11-03", "telegram", "4"], ["2026-11-03", "whatsapp", "1"],
        ["2026-11-04", "telegram", "2"], ["2026-11-04", "whatsapp", "2"]]
    routes = read_csv(dashboard.section(db.engine, PERIOD, "routes"))
    assert routes[0] == ["rute", "keterangan", "pesan", "bagian"]
    assert routes[1] == ["answer", "Dijawab", "5", f"{5 / 16:.4f}"]
    intents = read_csv(dashboard.section(db.engine, PERIOD, "intents"))
    assert intents[:2] == [["intent", "pesan", "dijawab"], ["nlu_fallback", "4", "0"]]
    hoaxes = read_csv(dashboard.section(db.engine, PERIOD, "hoaxes"))
    assert hoaxes == [["hari", "hoaks", "kecocokan", "rata_rata_harian_sebelumnya", "lonjakan"],
                      ["2026-11-02", "bansos-palsu", "1", "0.00", "tidak"],
                      ["2026-11-03", "vaksin-chip", "2", "0.00", "tidak"]]
    escalations = read_csv(dashboard.section(db.engine, PERIOD, "escalations"))
    assert escalations[0][:3] == ["kategori", "tiket", "diambil"]
    assert escalations[1:] == [["emergency", "1", "1", "0", "420", "420", "1", "1.0000"],
                               ["privacy", "1", "0", "1", "", "", "0", ""]]
    unanswered = read_csv(dashboard.section(db.engine, PERIOD, "unanswered"))
    assert unanswered[0] == ["kelompok", "pesan", "masih_terbuka", "contoh_teks_disamarkan",
                             "sumber"]
    texts = [row[3] for row in unanswered[1:]]
    assert "Bagaimana cara urus NIK [nik/kk]??" in texts
    assert "nomor saya [telepon] tolong hubungi" in texts
    # The formula is defused in both the text and the key it was grouped by.
    formula = next(row for row in unanswered[1:] if "HYPERLINK" in row[3])
    assert formula[3] == "'=HYPERLINK(\"http://contoh.test\",\"klik\")"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in unanswered
                   for cell in row)


# -- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.delenv("GARDA_TIMEZONE", raising=False)
    w = World(tmp_path)
    for role in ROLES:
        w.add_user(role, role)
    return w


def recent(world: World) -> tuple[str, str]:
    """Seed messages yesterday and today (local), so the default period shows them."""
    now = dt.datetime.now(UTC)
    s = Seeder(world.db)
    s.message(now - dt.timedelta(days=1), "telegram", "answer", intent="faq_ktp")
    s.message(now, "telegram", "fallback", intent="nlu_fallback",
              text=f"=cmd|' /C calc'!A0 NIK {NIK_A} <b>tebal</b>")
    today = now.astimezone(WIB).date()
    return (today - dt.timedelta(days=13)).isoformat(), today.isoformat()


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_the_dashboard_and_exports(world: World, role: str) -> None:
    first, last = recent(world)
    drop_review_inbox(world.db)
    client = world.login(role)
    page = client.get("/admin/dashboard")
    assert page.status_code == 200
    assert f'data-from="{first}" data-to="{last}"' in page.text
    assert re.search(r'id="total-messages">2<', page.text)
    assert "Content-Security-Policy" in page.headers and "<script" not in page.text
    assert 'href="/admin/dashboard">Dasbor</a>' in page.text  # the nav link
    export = client.get(f"/admin/dashboard.csv?section=messages&from={first}&to={last}")
    assert export.status_code == 200
    assert export.headers["content-type"] == "text/csv; charset=utf-8"
    assert export.headers["content-disposition"] == (
        f'attachment; filename="garda-messages-{first}-{last}.csv"')
    rows = read_csv(export.text)
    assert rows[0] == ["hari", "kanal", "pesan"]
    assert sum(int(r[2]) for r in rows[1:]) == 2
    unanswered = client.get(f"/admin/dashboard.csv?section=unanswered&from={first}&to={last}")
    if role == "agent":  # masked citizens' texts: not for agents (docs/console.md)
        assert unanswered.status_code == 403
        assert dashboard.TEXTS_HIDDEN in page.text
        assert "calc" not in page.text and 'id="unanswered-table"' not in page.text
        assert "/admin/dashboard.csv?section=unanswered" not in page.text
    else:
        assert unanswered.status_code == 200
        assert dashboard.NO_REVIEW_INBOX in page.text
        body = read_csv(unanswered.text)
        assert body[1][3] == "'=cmd|' /C calc'!A0 NIK [nik/kk] <b>tebal</b>"
        # On the page: masked and escaped, in the table and in the chart.
        assert "=cmd|&#39; /C calc&#39;!A0 NIK [nik/kk] &lt;b&gt;tebal&lt;/b&gt;" in page.text
        assert "<b>tebal" not in page.text
    assert NIK_A not in page.text and NIK_A not in unanswered.text


def test_the_dashboard_and_its_csv_need_a_session(world: World) -> None:
    client = world.client()
    for path in ("/admin/dashboard", "/admin/dashboard.csv?section=messages"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login"


def test_the_page_shows_the_seeded_numbers_in_its_tables(world: World) -> None:
    seed_messages(Seeder(world.db))
    page = world.login("trainer").get("/admin/dashboard?from=2026-11-02&to=2026-11-04")
    assert page.status_code == 200
    row = re.search(r'<tr data-day="2026-11-03">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert re.findall(r'data-channel="(\w+)">(\d+)<', row.group(1)) == [
        ("telegram", "4"), ("whatsapp", "1")]
    assert re.search(r'data-total>5<', row.group(1))
    handoff = re.search(r'<tr data-route="handoff">(.*?)</tr>', page.text, re.S)
    assert handoff is not None and 'data-messages="1"' in handoff.group(1)
    assert "6,7%" in handoff.group(1)  # 1 of 15, Indonesian decimals
    for chart in ("messages", "routes", "intents", "hoaxes", "escalations", "unanswered"):
        assert f'<svg id="chart-{chart}"' in page.text
    assert "Jumlah pesan" in page.text and "Tanggal" in page.text  # axis labels


@pytest.mark.parametrize("query, message", [
    ("from=2026-11-40&to=2026-11-04", dashboard.BAD_DATE),
    ("from=2026-11-05&to=2026-11-04", dashboard.REVERSED),
    ("from=2024-01-01&to=2025-12-31", dashboard.TOO_LONG),
    ("from=%3Cscript%3E", dashboard.BAD_DATE),
])
def test_a_bad_period_answers_400_with_the_message(world: World, query: str,
                                                   message: str) -> None:
    client = world.login("supervisor")
    page = client.get(f"/admin/dashboard?{query}")
    assert page.status_code == 400 and message in page.text
    assert "<script>" not in page.text
    export = client.get(f"/admin/dashboard.csv?section=routes&{query}")
    assert export.status_code == 400 and export.text == message


def test_an_unknown_csv_section_is_refused(world: World) -> None:
    response = world.login("admin").get("/admin/dashboard.csv?section=passwords")
    assert response.status_code == 400
    assert "messages, routes, intents, unanswered, hoaxes, escalations" in response.text
