"""The trainers' review inbox: filled from each source in the decision's transaction,
masked, grouped, decided group by group, and emptied by retention.

On the embedded default (SQLite) and, where the servers are available, on PostgreSQL.
Labelling into data/nlu (the writer) is tests/test_trainer_labelling.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.brain.decision import Button, Decision
from bot.channels.base import BUTTON, MEDIA, TEXT, Inbound, Outgoing
from bot.store import models
from bot.store.db import Database
from bot.store.tickets import Tickets, TicketSpec
from bot.trainer import inbox
from bot.trainer.nludata import LabelError, NluPaths, intents

ROOT = Path(__file__).resolve().parent.parent
THRESHOLD = inbox.answer_threshold()
NIK = "3201234567890001"
PHONE = "081234567890"
EMAIL = "ani.warga@example.com"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    url = (f"sqlite:///{tmp_path / 'garda.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    database.upgrade()
    return database


PLATFORM_IDS = itertools.count(1)  # unique in the process, whoever stores the message


class Chats:
    """Citizens' messages stored, claimed and decided as a worker would."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.messages: dict[int, Any] = {}  # inbound id -> the claimed row

    def say(self, chat: str, text: str, route: str = "answer", intent: str | None = None,
            confidence: float = 0.99, kind: str = TEXT, category: str | None = None,
            hoax_id: str | None = None, calls: int = 1) -> int:
        stored = self.db.store_inbound(Inbound("test", f"m{next(PLATFORM_IDS)}", chat, kind, text,
                                               detail="photo" if kind == MEDIA else None))
        message = self.db.claim_next(stored.conversation_id)
        assert message is not None
        self.messages[message.id] = message
        buttons = ((Button("KTP hilang", "/faq/ktp_hilang_rusak"), Button("KTP baru",
                                                                           "/faq/ktp_baru"),
                    Button("Bukan keduanya", "/none")) if route == "clarify" else ())
        decision = Decision(text=text, route=route, intent=intent, confidence=confidence,
                            category=category, hoax_id=hoax_id, reply="balasan",
                            buttons=buttons)
        ticket = (TicketSpec(category, 3, dt.timedelta(minutes=60))
                  if route == "escalate" and category else None)
        self.db.save_decision(message, decision,
                              [Outgoing("sendMessage", {"text": "balasan"})] * calls,
                              ticket=ticket)
        return message.id


def items(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        return conn.execute(select(models.review_items).order_by(models.review_items.c.id)
                            ).all()


def by_inbound(db: Database, inbound_id: int) -> Any:
    found = [row for row in items(db) if row.inbound_id == inbound_id]
    assert len(found) == 1, found
    return found[0]


# -- filling, source by source ------------------------------------------------------------


def test_an_answer_just_above_the_threshold_enters_as_low_margin_masked(db: Database) -> None:
    chats = Chats(db)
    text = f"ktp sy hilang, NIK {NIK}, hp {PHONE}, email {EMAIL}"
    low = chats.say("c1", text, "answer", "faq/ktp_hilang_rusak", THRESHOLD + inbox.MARGIN / 2)
    row = by_inbound(db, low)
    assert row.source == inbox.LOW_MARGIN and row.status == inbox.OPEN
    assert (row.predicted_intent, row.confidence) == ("faq/ktp_hilang_rusak",
                                                      pytest.approx(THRESHOLD + 0.015))
    assert NIK not in row.text and PHONE not in row.text and EMAIL not in row.text
    assert "[nik/kk]" in row.text and "[telepon]" in row.text and "[email]" in row.text
    assert row.suggested_intent is None and row.label is None and row.cluster_key
    # The citizen's own message is kept as it came (for the admins), only the copy is masked.
    with db.engine.connect() as conn:
        assert NIK in conn.execute(select(models.inbound.c.text).where(
            models.inbound.c.id == low)).scalar()


def test_confident_answers_enter_only_as_the_deterministic_spot_check_sample(
        db: Database) -> None:
    chats = Chats(db)
    ids = [chats.say(f"s{n}", f"jam buka kantor hari {n}", "answer", "faq/jam_layanan",
                     THRESHOLD + inbox.MARGIN + 0.001) for n in range(120)]
    entered = {row.inbound_id for row in items(db)}
    assert entered == {i for i in ids if inbox.spot_checked(i)}
    assert {row.source for row in items(db)} <= {inbox.SPOT_CHECK}
    # The rule itself: about 2% of ids, the same answer every time.
    share = sum(inbox.spot_checked(i) for i in range(1, 20001)) / 20000
    assert 0.015 < share < 0.025
    assert [inbox.spot_checked(i) for i in range(50)] == [inbox.spot_checked(i)
                                                          for i in range(50)]


def test_fallbacks_enter_including_out_of_scope(db: Database) -> None:
    chats = Chats(db)
    unknown = chats.say("f1", "sdh sy bilang kmrn soal itu", "fallback", "faq/pbb", 0.12)
    outside = chats.say("f2", "berapa jarak bumi ke bulan", "fallback", "out_of_scope", 0.97)
    assert by_inbound(db, unknown).source == inbox.FALLBACK
    assert by_inbound(db, unknown).predicted_intent == "faq/pbb"
    assert by_inbound(db, outside).source == inbox.FALLBACK
    assert by_inbound(db, outside).predicted_intent == "out_of_scope"


def test_a_clarification_takes_the_topic_the_citizen_tapped_as_its_suggested_label(
        db: Database) -> None:
    chats = Chats(db)
    asked = chats.say("k1", "ktp sy kenapa ya", "clarify", "faq/ktp_baru", 0.41)
    assert by_inbound(db, asked).source == inbox.CLARIFICATION
    assert by_inbound(db, asked).suggested_intent is None
    # Another conversation's tap changes nothing here.
    chats.say("k2", "/faq/ktp_baru", "answer", "faq/ktp_baru", 1.0, kind=BUTTON)
    assert by_inbound(db, asked).suggested_intent is None
    tapped = chats.say("k1", "/faq/ktp_hilang_rusak", "answer", "faq/ktp_hilang_rusak", 1.0,
                       kind=BUTTON)
    assert by_inbound(db, asked).suggested_intent == "faq/ktp_hilang_rusak"
    assert [row for row in items(db) if row.inbound_id == tapped] == []  # a tap is no item


def test_neither_is_marked_and_a_late_tap_changes_nothing(db: Database) -> None:
    chats = Chats(db)
    first = chats.say("n1", "mau urus surat", "clarify", "faq/kartu_keluarga", 0.3)
    chats.say("n1", "/none", "fallback", None, 0.0, kind=TEXT)  # typed, as in the local chat
    assert by_inbound(db, first).suggested_intent == inbox.NONE_CHOSEN
    second = chats.say("n2", "ktp gmn", "clarify", "faq/ktp_baru", 0.3)
    chats.say("n2", "makasih", "answer", "thanks", 0.99)
    chats.say("n2", "/faq/ktp_baru", "answer", "faq/ktp_baru", 1.0, kind=BUTTON)
    assert by_inbound(db, second).suggested_intent is None  # not the clarify's next message


@pytest.mark.parametrize("kind, text, route, extra", [
    (TEXT, "tolong ada kebakaran di pasar", "escalate", {"category": "emergency"}),
    (TEXT, "vaksin ada chipnya, sebarkan!", "hoax", {"hoax_id": "vaksin-chip"}),
    (TEXT, "/start", "answer", {"intent": "greet", "confidence": 1.0}),
    (TEXT, "/faq/pbb", "answer", {"intent": "faq/pbb", "confidence": 1.0}),
    (MEDIA, "", "fallback", {}),
    (TEXT, "🙏🙏", "fallback", {}),
    (TEXT, "   ", "fallback", {}),
])
def test_escalations_hoaxes_commands_media_and_empty_texts_never_enter(
        db: Database, kind: str, text: str, route: str, extra: dict[str, Any]) -> None:
    chats = Chats(db)
    extra = {"intent": None, "confidence": 0.1, **extra}
    chats.say("x1", text, route, kind=kind, **extra)
    assert items(db) == []


def test_a_decision_recorded_twice_gives_one_item(db: Database) -> None:
    chats = Chats(db)
    first = chats.say("d1", "pdam mati terus", "fallback", None, 0.2, calls=0)
    message = chats.messages[first]
    again = Decision(text=message.text, route="fallback", intent=None, confidence=0.2,
                     category=None, hoax_id=None, reply="balasan")
    db.save_decision(message, again, [])  # a recovered claim decides it once more
    assert len(items(db)) == 1


def test_an_inbox_failure_never_costs_the_citizen_their_reply(
        db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError(f"broken inbox, and here is the text {PHONE}")

    monkeypatch.setattr(inbox, "fill", broken)
    caplog.set_level(logging.ERROR)
    chats = Chats(db)
    decided = chats.say("e1", f"hp saya {PHONE} kenapa", "fallback", None, 0.1)
    assert db.inbound_route(decided) == "fallback"
    assert [row.status for row in db.outbox_for(decided)] == ["pending"]
    assert items(db) == []
    assert "review inbox not filled" in caplog.text and PHONE not in caplog.text


# -- an admin's re-label ------------------------------------------------------------------


def test_an_admin_relabel_enters_with_the_admins_intent_and_is_logged_on_the_ticket(
        db: Database) -> None:
    chats = Chats(db)
    opened = chats.say("r1", f"sy mau lapor jalan rusak, hp {PHONE}", "escalate",
                       category="human_request", confidence=0.8)
    ticket = Tickets(db.engine).active(chats.messages[opened].conversation_id)
    assert ticket is not None and items(db) == []
    known = intents()
    item = inbox.relabel(db.engine, opened, "faq/pengaduan", known, by="budi",
                         ticket_id=ticket.id, conversation_id=ticket.conversation_id)
    row = by_inbound(db, opened)
    assert (row.id, row.source, row.suggested_intent) == (item, inbox.RELABEL, "faq/pengaduan")
    assert PHONE not in row.text and "[telepon]" in row.text
    # A second word on the same message replaces the first, still one item.
    assert inbox.relabel(db.engine, opened, "feedback", known, by="budi",
                         ticket_id=ticket.id) == item
    assert by_inbound(db, opened).suggested_intent == "feedback"
    logged = [(e.actor, e.action, e.detail) for e in Tickets(db.engine).events(ticket.id)]
    assert ("budi", "relabelled", f"pesan {opened}: faq/pengaduan") in logged
    other = chats.say("r2", "halo", "answer", "greet", 0.99)
    with pytest.raises(LabelError):  # not a message of this ticket's conversation
        inbox.relabel(db.engine, other, "greet", known, by="budi",
                      conversation_id=ticket.conversation_id)
    with pytest.raises(LabelError):  # not an intent of the training data
        inbox.relabel(db.engine, opened, "faq/tidak_ada", known, by="budi")


# -- groups -------------------------------------------------------------------------------


def test_near_duplicates_share_a_group_and_groups_come_largest_first(db: Database) -> None:
    chats = Chats(db)
    same = ["min cara bikin ktp gmn", "cara bikin KTP gimana ya kak??",
            "gmn caraaa bikin ktp min 🙏"]
    for n, text in enumerate(same):
        chats.say(f"g{n}", text, "answer", "faq/ktp_baru", THRESHOLD + 0.01 * n)
    chats.say("g9", "cara bikin ktp gmn", "clarify", "faq/ktp_baru", 0.4)
    chats.say("g9", "/faq/ktp_hilang_rusak", "answer", "faq/ktp_hilang_rusak", 1.0,
              kind=BUTTON)
    phones = [f"hp sy {PHONE} ga bisa dihubungi", "hp sy 0857-1111-2222 ga bisa dihubungi"]
    for n, text in enumerate(phones):
        chats.say(f"p{n}", text, "fallback", None, 0.1)
    chats.say("z1", "cara bayar pbb online", "answer", "faq/pbb", THRESHOLD)
    keys = {inbox.cluster_key(inbox.masked(t)) for t in [*same, "cara bikin ktp gmn"]}
    assert len(keys) == 1
    assert inbox.cluster_key(inbox.masked(phones[0])) == inbox.cluster_key(
        inbox.masked(phones[1]))
    assert inbox.cluster_key("cara bayar pbb online") != next(iter(keys))

    groups = inbox.clusters(db.engine)
    assert [g.count for g in groups] == [4, 2, 1]
    ktp = groups[0]
    assert ktp.key == next(iter(keys))
    assert ktp.predicted == "faq/ktp_baru"
    assert ktp.confidence == pytest.approx((3 * THRESHOLD + 0.03 + 0.4) / 4)
    assert ktp.suggested == (("faq/ktp_hilang_rusak", 1),)
    assert ktp.proposal == "faq/ktp_hilang_rusak"  # what a citizen chose beats the guess
    assert dict(ktp.sources) == {inbox.LOW_MARGIN: 3, inbox.CLARIFICATION: 1}
    assert PHONE not in groups[1].text
    assert groups[2].proposal == "faq/pbb"


def _data_copy(tmp_path: Path) -> NluPaths:
    target = tmp_path / "project" / "data" / "nlu"
    shutil.copytree(ROOT / "data" / "nlu", target)
    return NluPaths(target, tmp_path / "project" / "tests" / "nlu")


def test_deciding_a_group_decides_all_its_open_items_once(db: Database, tmp_path: Path
                                                          ) -> None:
    chats = Chats(db)
    paths = _data_copy(tmp_path)
    texts = ["retribusi sampah bulan ini naik kok ga ada info", "RETRIBUSI SAMPAH bulan ini "
             "naik, kok ga ada infooo", "kok ga ada info retribusi sampah bulan ini naik"]
    ids = [chats.say(f"a{n}", t, "answer", "faq/sampah" if n else "faq/pdam", THRESHOLD)
           for n, t in enumerate(texts)]
    chats.say("b1", "asdf qwer", "fallback", None, 0.05)
    key = by_inbound(db, ids[0]).cluster_key
    outcome = inbox.decide(db.engine, key, inbox.ACCEPT, "tina", "faq/sampah", paths)
    assert outcome.items == 3 and outcome.written is not None
    assert outcome.written.path == paths.data / "faq_lingkungan.yml"
    rows = [by_inbound(db, i) for i in ids]
    assert [r.status for r in rows] == [inbox.RELABELLED, inbox.ACCEPTED, inbox.ACCEPTED]
    assert {(r.label, r.decided_by) for r in rows} == {("faq/sampah", "tina")}
    assert all(r.decided_at is not None for r in rows)
    with pytest.raises(LabelError, match="sudah diputuskan"):
        inbox.decide(db.engine, key, inbox.DISCARD, "tina")
    # A new message of the same group later is open again, on its own.
    late = chats.say("a9", texts[0], "answer", "faq/sampah", THRESHOLD)
    assert by_inbound(db, late).status == inbox.OPEN
    assert inbox.decide(db.engine, key, inbox.NEW_TOPIC, "tina").items == 1
    assert by_inbound(db, late).status == inbox.NEW_TOPIC
    noise = next(g for g in inbox.clusters(db.engine) if g.text == "asdf qwer")
    assert inbox.decide(db.engine, noise.key, inbox.DISCARD, "tina").written is None
    assert inbox.clusters(db.engine) == []
    assert inbox.counts(db.engine) == {
        (inbox.LOW_MARGIN, inbox.ACCEPTED): 2, (inbox.LOW_MARGIN, inbox.RELABELLED): 1,
        (inbox.LOW_MARGIN, inbox.NEW_TOPIC): 1, (inbox.FALLBACK, inbox.DISCARDED): 1}


def test_a_refused_example_decides_nothing(db: Database, tmp_path: Path) -> None:
    chats = Chats(db)
    paths = _data_copy(tmp_path)
    existing = "cara bikin ktp gmn min"  # already an example in data/nlu
    first = chats.say("q1", existing, "answer", "faq/ktp_baru", THRESHOLD)
    key = by_inbound(db, first).cluster_key
    before = (paths.data / "faq_adminduk.yml").read_bytes()
    with pytest.raises(LabelError, match="sudah ada"):
        inbox.decide(db.engine, key, inbox.ACCEPT, "tina", "faq/ktp_baru", paths)
    assert by_inbound(db, first).status == inbox.OPEN
    assert (paths.data / "faq_adminduk.yml").read_bytes() == before
    with pytest.raises(LabelError):
        inbox.decide(db.engine, key, inbox.ACCEPT, "tina", None, paths)
    with pytest.raises(LabelError):
        inbox.decide(db.engine, key, "delete", "tina")


# -- retention ----------------------------------------------------------------------------


def test_retention_empties_the_inbox_text_and_keeps_the_counts(db: Database) -> None:
    chats = Chats(db)
    old = chats.say("o1", "air pdam keruh sejak kemarin", "fallback", None, 0.1)
    new = chats.say("o2", "jadwal vaksin anak kapan", "fallback", None, 0.1)
    with db.engine.begin() as conn:
        conn.execute(update(models.review_items).where(
            models.review_items.c.inbound_id == old).values(
            created_at=models.utcnow() - dt.timedelta(days=40)))
    db.purge(retention_days=30)
    assert by_inbound(db, old).text is None and by_inbound(db, old).cluster_key
    assert by_inbound(db, new).text == "jadwal vaksin anak kapan"
    assert [g.text for g in inbox.clusters(db.engine)] == ["jadwal vaksin anak kapan"]
    assert inbox.counts(db.engine) == {(inbox.FALLBACK, inbox.OPEN): 2}
    with db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.review_items).where(
            models.review_items.c.text.is_(None))).scalar() == 1
