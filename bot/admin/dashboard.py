"""The team's dashboard: what citizens sent over a period, and how Garda and the admins
coped with it. Server-rendered inline SVG charts (no script, no external asset: the
console's Content-Security-Policy stays as strict as on every other page), a table under
each chart, and every section as CSV.

    GET /admin/dashboard?from=YYYY-MM-DD&to=YYYY-MM-DD         the page (default: 14 days)
    GET /admin/dashboard.csv?section=NAME&from=...&to=...       one section as CSV

A period is a run of local days in the institution's time zone (``GARDA_TIMEZONE``, WIB by
default), both ends included, at most :data:`MAX_DAYS`. The queries are plain functions of
an Engine and a :class:`Period` that return dataclasses, so they are tested without HTTP;
the route handlers reuse the console's sessions, permissions and page rendering.

Definitions (docs/console.md says the same for the team):

- **Messages** are inbound rows received in the period (text, buttons, media), by local
  day and channel.
- **Route shares** are of those same messages, one bucket per recorded route; ``handoff``
  (a message of a conversation that people are already handling) is its own bucket, not
  an escalation, so that one chatty escalated citizen does not count as many escalations;
  messages not yet decided are ``undecided``.
- **Unanswered clusters** come from the trainers' review inbox (``review_items`` from
  fallbacks and low-margin guesses, grouped by ``cluster_key``); on a database without
  that table, from the most frequent fallback texts, grouped by their normalised form.
- **Escalations** are tickets opened in the period. Time to claim is from opening to the
  *first* claim (a release empties ``tickets.claimed_at``, so the ``claimed`` event is the
  record); a claim is late when it came after the ticket's ``claim_by`` deadline.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import math
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup
from sqlalchemy import (
    DateTime,
    String,
    Text,
    case,
    column,
    func,
    inspect,
    literal_column,
    select,
    table,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.hoax.stats import trends
from bot.nlu.normalizer import Normalizer
from bot.privacy import mask
from bot.store.db import LOCAL_DAY_ZONE, aware
from bot.store.models import hoax_daily, inbound, ticket_events, tickets

if TYPE_CHECKING:
    from bot.admin.console import Console
    from bot.admin.users import Session

logger = logging.getLogger(__name__)

MAX_DAYS = 366
DEFAULT_DAYS = 14
PRESETS = (7, 14, 30, 90)
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 12, 31)
TOP_INTENTS = 10
TOP_CLUSTERS = 10
# Matches per day before a day that its spike test compares against: the default of
# `garda hoax stats --baseline`, so the dashboard and the CLI flag the same days.
BASELINE_DAYS = 14
REVIEW_TABLE = "review_items"
UNANSWERED_SOURCES = ("fallback", "low_margin")

BAD_DATE = "Tanggal tidak valid: gunakan format TTTT-BB-HH, misalnya 2026-11-01."
OUT_OF_RANGE = "Tanggal harus antara 2000-01-01 dan 2100-12-31."
REVERSED = "Tanggal awal tidak boleh sesudah tanggal akhir."
TOO_LONG = f"Periode paling panjang {MAX_DAYS} hari. Pilih rentang yang lebih pendek."
UNKNOWN_SECTION = "Bagian dasbor tidak dikenal. Pilih salah satu: {names}."
NO_REVIEW_INBOX = ("Kotak tinjauan pelatih belum ada di basis data ini; daftar ini disusun dari "
                   "teks fallback yang paling sering (disamarkan).")
TEXTS_HIDDEN = ("Teks pesan warga yang tidak terjawab hanya terlihat oleh pelatih, supervisor "
                "dan admin.")
NO_DATA = "Tidak ada data pada periode ini."

# Route buckets, in the order the page shows them: (key, label, what it means).
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("answer", "Dijawab", "jawaban FAQ yang disetujui"),
    ("clarify", "Klarifikasi", "bot menawarkan pilihan topik"),
    ("fallback", "Tidak dipahami", "balasan fallback"),
    ("hoax", "Hoaks diklarifikasi", "klarifikasi hoaks yang disetujui"),
    ("escalate", "Eskalasi", "diteruskan ke petugas (tiket dibuka atau ditambah)"),
    ("handoff", "Ditangani petugas", "pesan dalam percakapan yang sedang ditangani petugas"),
    ("undecided", "Belum diputuskan", "masih di antrian kerja"),
    ("other", "Lainnya", "rute lain"),
)
ROUTE_LABELS = {key: label for key, label, _ in ROUTES}
CHANNEL_COLORS = ("#2271b1", "#00a32a", "#dba617", "#8c5fc4", "#d63638", "#50575e")
SPIKE_COLOR = "#d63638"
PLAIN_COLOR = "#2271b1"


class PeriodError(ValueError):
    """A period the dashboard cannot show; the message is for the admin (Indonesian)."""


def institution_zone() -> dt.tzinfo:
    """The zone local days are counted in (the same rule as bot.store.db.local_day)."""
    try:
        return ZoneInfo(os.environ.get("GARDA_TIMEZONE") or LOCAL_DAY_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.timezone(dt.timedelta(hours=7))


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date
    zone: dt.tzinfo = field(default_factory=institution_zone)

    def midnight(self, day: dt.date) -> dt.datetime:
        """The UTC instant at which ``day`` starts in the zone (rows are stored in UTC)."""
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.zone).astimezone(
            dt.timezone.utc)

    @property
    def start(self) -> dt.datetime:
        return self.midnight(self.first)

    @property
    def end(self) -> dt.datetime:
        """Exclusive: the start of the day after the last."""
        return self.midnight(self.last + dt.timedelta(days=1))

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n)
                for n in range((self.last - self.first).days + 1)]

    def fixed_offset(self) -> dt.timedelta | None:
        """The zone's UTC offset when it is the same all period (WIB, WITA and WIT have no
        daylight saving time), so that SQL can shift timestamps to local days; None if
        it changes inside the period."""
        offsets = {self.midnight(day).astimezone(self.zone).utcoffset()
                   for day in [*self.days, self.last + dt.timedelta(days=1)]}
        if len(offsets) != 1:
            return None
        offset = offsets.pop()
        return offset if offset is not None else dt.timedelta(0)

    def local_day(self, moment: dt.datetime) -> dt.date:
        return (aware(moment) or moment).astimezone(self.zone).date()


def today(zone: dt.tzinfo | None = None) -> dt.date:
    return dt.datetime.now(dt.timezone.utc).astimezone(zone or institution_zone()).date()


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only


def _date(raw: str) -> dt.date:
    if not _DATE.fullmatch(raw):
        raise PeriodError(BAD_DATE)
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise PeriodError(BAD_DATE) from None
    if not EARLIEST <= day <= LATEST:
        raise PeriodError(OUT_OF_RANGE)
    return day


def parse_period(first: str | None, last: str | None, now: dt.date,
                 zone: dt.tzinfo | None = None) -> Period:
    """The period asked for in the query string; a missing end is today, a missing start
    is :data:`DEFAULT_DAYS` days before the end."""
    first, last = (first or "").strip(), (last or "").strip()
    end = _date(last) if last else now
    start = _date(first) if first else end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise PeriodError(REVERSED)
    if (end - start).days + 1 > MAX_DAYS:
        raise PeriodError(TOO_LONG)
    return Period(start, end, zone or institution_zone())


# -- the sections ------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Messages per local day and channel (every day of the period, zeros included)."""

    days: tuple[dt.date, ...]
    channels: tuple[str, ...]   # busiest first
    counts: Mapping[tuple[dt.date, str], int]

    def count(self, day: dt.date, channel: str) -> int:
        return self.counts.get((day, channel), 0)

    def day_total(self, day: dt.date) -> int:
        return sum(self.count(day, channel) for channel in self.channels)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class RouteShare:
    route: str        # a key of ROUTES
    label: str
    meaning: str
    messages: int
    share: float      # of all messages received in the period (0 when there were none)


@dataclass(frozen=True)
class IntentCount:
    intent: str
    messages: int
    answered: int     # of them, answered (route "answer")


@dataclass(frozen=True)
class Cluster:
    key: str
    messages: int
    text: str          # a representative text, masked
    open_items: int | None = None  # review items still open (None: not from the inbox)


@dataclass(frozen=True)
class Unanswered:
    from_inbox: bool   # False: the review inbox is missing; grouped fallback texts instead
    clusters: tuple[Cluster, ...]


@dataclass(frozen=True)
class HoaxDay:
    day: dt.date
    hoax_id: str
    matches: int
    baseline: float    # mean matches per day over the BASELINE_DAYS before
    spike: bool


@dataclass(frozen=True)
class Escalations:
    category: str
    tickets: int
    claimed: int
    unclaimed: int                        # never claimed (still open, or closed directly)
    median_claim: dt.timedelta | None     # opening to first claim
    p90_claim: dt.timedelta | None
    late: int                             # first claim after the claim_by deadline
    late_share: float | None              # of the claimed ones


@dataclass(frozen=True)
class Dashboard:
    period: Period
    traffic: Traffic
    routes: tuple[RouteShare, ...]
    intents: tuple[IntentCount, ...]
    unanswered: Unanswered | None         # None: the viewer may not see citizens' texts
    hoaxes: tuple[HoaxDay, ...]
    escalations: tuple[Escalations, ...]


def _received_in(period: Period) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return inbound.c.received_at >= period.start, inbound.c.received_at < period.end


def _local_date(conn: Connection, stamp: Any, offset: dt.timedelta) -> ColumnElement[Any]:
    """SQL for the local calendar day of a UTC timestamp column, at a fixed offset.

    The offset is inlined (an integer number of minutes), not bound: PostgreSQL accepts
    GROUP BY of an expression only if it is textually the one selected, and two bound
    parameters never are."""
    minutes = int(offset.total_seconds() // 60)
    if conn.dialect.name == "sqlite":
        return func.date(stamp, literal_column(f"'{minutes:+d} minutes'"))
    return func.date(func.timezone("UTC", stamp)
                     + literal_column(f"interval '{minutes} minutes'"))


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def traffic(engine: Engine, period: Period) -> Traffic:
    counts: Counter[tuple[dt.date, str]] = Counter()
    offset = period.fixed_offset()
    with engine.connect() as conn:
        if offset is not None:
            day = _local_date(conn, inbound.c.received_at, offset).label("day")
            rows = conn.execute(
                select(day, inbound.c.channel, func.count().label("n"))
                .where(*_received_in(period)).group_by(day, inbound.c.channel))
            for row in rows:
                counts[(_as_date(row.day), row.channel)] += int(row.n)
        else:  # a zone with daylight saving time inside the period: fold in Python
            rows = conn.execute(select(inbound.c.received_at, inbound.c.channel)
                                .where(*_received_in(period)))
            for row in rows:
                counts[(period.local_day(row.received_at), row.channel)] += 1
    per_channel: Counter[str] = Counter()
    for (_, channel), n in counts.items():
        per_channel[channel] += n
    channels = tuple(sorted(per_channel, key=lambda c: (-per_channel[c], c)))
    return Traffic(tuple(period.days), channels, dict(counts))


def route_shares(engine: Engine, period: Period) -> tuple[RouteShare, ...]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbound.c.route, func.count().label("n"))
                            .where(*_received_in(period)).group_by(inbound.c.route)).all()
    found: Counter[str] = Counter()
    for row in rows:
        route = row.route if row.route is not None else "undecided"
        found[route if route in ROUTE_LABELS else "other"] += int(row.n)
    total = sum(found.values())
    return tuple(RouteShare(key, label, meaning, found[key],
                            found[key] / total if total else 0.0)
                 for key, label, meaning in ROUTES)


def top_intents(engine: Engine, period: Period, limit: int = TOP_INTENTS
                ) -> tuple[IntentCount, ...]:
    n = func.count().label("n")
    answered = func.sum(case((inbound.c.route == "answer", 1), else_=0)).label("answered")
    with engine.connect() as conn:
        rows = conn.execute(
            select(inbound.c.intent, n, answered)
            .where(*_received_in(period), inbound.c.intent.is_not(None))
            .group_by(inbound.c.intent).order_by(n.desc(), inbound.c.intent).limit(limit))
        return tuple(IntentCount(row.intent, int(row.n), int(row.answered or 0))
                     for row in rows)


_review = table(REVIEW_TABLE, column("created_at", DateTime(timezone=True)),
                column("source", String), column("text", Text), column("cluster_key", String),
                column("status", String))
_REVIEW_COLUMNS = {"created_at", "source", "text", "cluster_key", "status"}


def has_review_inbox(conn: Connection) -> bool:
    """Whether this database has the trainers' review inbox yet (it arrives with its own
    migration; an older database is still shown, from the fallback texts)."""
    inspector = inspect(conn)
    if not inspector.has_table(REVIEW_TABLE):
        return False
    return _REVIEW_COLUMNS <= {c["name"] for c in inspector.get_columns(REVIEW_TABLE)}


def unanswered(engine: Engine, period: Period, limit: int = TOP_CLUSTERS) -> Unanswered:
    with engine.connect() as conn:
        if has_review_inbox(conn):
            return Unanswered(True, _inbox_clusters(conn, period, limit))
        return Unanswered(False, _fallback_clusters(conn, period, limit))


def _inbox_clusters(conn: Connection, period: Period, limit: int) -> tuple[Cluster, ...]:
    r = _review.c
    where = (r.created_at >= period.start, r.created_at < period.end,
             r.source.in_(UNANSWERED_SOURCES), r.cluster_key.is_not(None))
    n = func.count().label("n")
    still_open = func.sum(case((r.status == "open", 1), else_=0)).label("still_open")
    top = conn.execute(select(r.cluster_key, n, still_open).where(*where)
                       .group_by(r.cluster_key).order_by(n.desc(), r.cluster_key)
                       .limit(limit)).all()
    keys = [row.cluster_key for row in top]
    texts: dict[str, Counter[str]] = defaultdict(Counter)
    if keys:
        for row in conn.execute(select(r.cluster_key, r.text, func.count().label("n"))
                                .where(*where, r.cluster_key.in_(keys), r.text.is_not(None))
                                .group_by(r.cluster_key, r.text)):
            texts[row.cluster_key][mask(row.text)] += int(row.n)
    return tuple(Cluster(row.cluster_key, int(row.n), _most_common(texts[row.cluster_key]),
                         int(row.still_open or 0)) for row in top)


def _fallback_clusters(conn: Connection, period: Period, limit: int) -> tuple[Cluster, ...]:
    """Without the review inbox: fallback texts grouped by their normalised form (the
    NLU's own normaliser, which also turns NIK, phone numbers, e-mails and links into
    placeholders), counted, and shown masked. Identical texts are counted in SQL first,
    so the normaliser sees each distinct text once."""
    normalizer = Normalizer()
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    rows = conn.execute(select(inbound.c.text, func.count().label("n"))
                        .where(*_received_in(period), inbound.c.route == "fallback",
                               inbound.c.text.is_not(None))
                        .group_by(inbound.c.text))
    for row in rows:
        key = mask(normalizer.normalize(row.text))
        groups[key][mask(row.text)] += int(row.n)
    ranked = sorted(groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:limit]
    return tuple(Cluster(key, sum(texts.values()), _most_common(texts))
                 for key, texts in ranked)


def _most_common(texts: Counter[str]) -> str:
    if not texts:
        return ""
    return min(texts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def hoax_matches(engine: Engine, period: Period) -> tuple[HoaxDay, ...]:
    """Matches per day per hoax with the spike flag of ``garda hoax stats`` (its own test,
    run for each day against the :data:`BASELINE_DAYS` before it)."""
    since = period.first - dt.timedelta(days=BASELINE_DAYS)
    with engine.connect() as conn:
        rows = conn.execute(select(hoax_daily).where(hoax_daily.c.day >= since,
                                                     hoax_daily.c.day <= period.last)).all()
    per_hoax: dict[str, dict[dt.date, int]] = defaultdict(dict)
    for row in rows:
        per_hoax[row.hoax_id][_as_date(row.day)] = int(row.matches)
    found = []
    for hoax_id, days in per_hoax.items():
        for day, matches in days.items():
            if not (period.first <= day <= period.last) or matches <= 0:
                continue
            window = {(d, hoax_id): n for d, n in days.items()
                      if day - dt.timedelta(days=BASELINE_DAYS) <= d <= day}
            (trend,) = trends(window, day, days=1, baseline_days=BASELINE_DAYS)
            found.append(HoaxDay(day, hoax_id, matches, trend.baseline, trend.spike))
    found.sort(key=lambda h: (h.day, -h.matches, h.hoax_id))
    return tuple(found)


def _p90(values: Sequence[float]) -> float:
    """Nearest rank: the smallest value with at least 90% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def escalations(engine: Engine, period: Period) -> tuple[Escalations, ...]:
    first_claim = (select(ticket_events.c.ticket_id, func.min(ticket_events.c.at).label("at"))
                   .where(ticket_events.c.action == "claimed")
                   .group_by(ticket_events.c.ticket_id).subquery())
    with engine.connect() as conn:
        rows = conn.execute(
            select(tickets.c.category, tickets.c.opened_at, tickets.c.claim_by,
                   tickets.c.claimed_at, first_claim.c.at.label("first_claim"))
            .outerjoin(first_claim, first_claim.c.ticket_id == tickets.c.id)
            .where(tickets.c.opened_at >= period.start, tickets.c.opened_at < period.end)
        ).all()
    waits: dict[str, list[float]] = defaultdict(list)
    opened: Counter[str] = Counter()
    late: Counter[str] = Counter()
    for row in rows:
        opened[row.category] += 1
        claims = [aware(c) for c in (row.first_claim, row.claimed_at) if c is not None]
        if not claims:
            continue
        claim = min(c for c in claims if c is not None)
        waits[row.category].append((claim - (aware(row.opened_at) or claim)).total_seconds())
        if claim > (aware(row.claim_by) or claim):
            late[row.category] += 1
    found = []
    for category in sorted(opened, key=lambda c: (-opened[c], c)):
        seconds = waits[category]
        found.append(Escalations(
            category, opened[category], len(seconds), opened[category] - len(seconds),
            dt.timedelta(seconds=statistics.median(seconds)) if seconds else None,
            dt.timedelta(seconds=_p90(seconds)) if seconds else None,
            late[category], late[category] / len(seconds) if seconds else None))
    return tuple(found)


def build(engine: Engine, period: Period, *, texts: bool = True) -> Dashboard:
    """Every section. ``texts``: whether the viewer may see citizens' unanswered texts."""
    return Dashboard(period, traffic(engine, period), route_shares(engine, period),
                     top_intents(engine, period),
                     unanswered(engine, period) if texts else None,
                     hoax_matches(engine, period), escalations(engine, period))


# -- numbers and charts ------------------------------------------------------------------


def number(value: float, decimals: int = 0) -> str:
    """Indonesian style: 1.234,5."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def percent(share: float | None) -> str:
    return "-" if share is None else f"{number(share * 100, 1)}%"


def duration(delta: dt.timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = max(0, round(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} dtk"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} mnt"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} j {minutes:02d} mnt"
    days, hours = divmod(hours, 24)
    return f"{days} hr {hours} j"


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]
    color: str


WIDTH = 760
# Presentation attributes, not style: the CSP's style-src does not govern them.
FONT = Markup('font-family="system-ui, sans-serif" font-size="11" fill="#1d2327"')


def _step(top: float, whole: bool) -> float:
    """A round tick step that puts about five ticks under ``top`` (at least 1 for counts,
    ``whole``, so that no tick reads 0,5 messages)."""
    if top <= 0:
        return 1.0
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(f * magnitude for f in (1, 2, 2.5, 5, 10) if raw <= f * magnitude)
    return max(1.0, math.ceil(step)) if whole else step


def _ticks(peak: float, whole: bool) -> tuple[list[float], float]:
    """The tick values from 0 and the axis maximum (the last tick)."""
    step = _step(peak, whole)
    count = max(1, math.ceil(peak / step))
    return [step * n for n in range(count + 1)], step * count


def _tick(value: float) -> str:
    return number(value, 0 if float(value).is_integer() else 1)


def _svg(chart_id: str, title: str, height: int, parts: Iterable[Markup]) -> Markup:
    """Every piece of an SVG chart is built with Markup.format, which escapes what it
    fills in: labels are intent names, hoax ids and masked citizen texts."""
    return Markup(
        '<svg id="{id}" class="chart" role="img" aria-labelledby="{id}-title" '
        'viewBox="0 0 {w} {h}" width="100%" preserveAspectRatio="xMinYMin meet" '
        'xmlns="http://www.w3.org/2000/svg"><title id="{id}-title">{title}</title>{body}'
        '</svg>').format(id=chart_id, w=WIDTH, h=height, title=title,
                         body=Markup("").join(parts))


def _empty(chart_id: str, title: str) -> Markup:
    return _svg(chart_id, title, 40,
                [Markup('<text x="8" y="24" {}>{}</text>').format(FONT, NO_DATA)])


def _legend(series: Sequence[Series], y: int, x: int) -> list[Markup]:
    parts = []
    for item in series:
        parts.append(Markup('<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
                            '<text x="{}" y="{}" {}>{}</text>').format(
            x, y - 9, item.color, x + 14, y, FONT, item.name))
        x += 24 + 7 * len(item.name)
    return parts


def column_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series],
                 x_label: str, y_label: str, *, colors: Sequence[str] | None = None) -> Markup:
    """Vertical bars, stacked when there are several series (one column per label).
    ``colors``: one fill per column, overriding a single series' colour (spike days)."""
    if not labels or not any(v for s in series for v in s.values):
        return _empty(chart_id, title)
    left, right, top, bottom, plot_h = 64, 16, 34, 58, 220
    height = top + plot_h + bottom
    plot_w = WIDTH - left - right
    floor = top + plot_h
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ticks, y_max = _ticks(max(totals), True)
    scale = plot_h / y_max
    parts = _legend(series, 14, left) if len(series) > 1 else []
    for tick in ticks:
        y = floor - tick * scale
        parts.append(Markup('<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" stroke="#dcdcde"/>'
                            '<text x="{}" y="{:.1f}" text-anchor="end" {}>{}</text>').format(
            left, WIDTH - right, y, y, left - 6, y + 4, FONT, _tick(tick)))
    slot = plot_w / len(labels)
    bar = max(1.0, slot * 0.8)
    every = max(1, math.ceil(len(labels) / 16))  # at most 16 day labels under the axis
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar) / 2
        base = float(floor)
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = value * scale
            base -= h
            fill = colors[i] if colors is not None and len(series) == 1 else s.color
            parts.append(Markup('<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" '
                                'fill="{}"><title>{}: {} {}</title></rect>').format(
                x, base, bar, h, fill, label, s.name, _tick(value)))
        if i % every == 0:
            parts.append(Markup('<text x="{:.1f}" y="{}" text-anchor="middle" {}>{}</text>')
                         .format(left + i * slot + slot / 2, floor + 16, FONT, label))
    parts.append(Markup('<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#50575e"/>'
                        '<text x="{:.1f}" y="{}" text-anchor="middle" {}>{}</text>'
                        '<text transform="translate(14 {:.1f}) rotate(-90)" '
                        'text-anchor="middle" {}>{}</text>').format(
        left, WIDTH - right, floor, floor, left + plot_w / 2, height - 8, FONT, x_label,
        top + plot_h / 2, FONT, y_label))
    return _svg(chart_id, title, height, parts)


def bar_chart(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series],
              x_label: str, fmt: Callable[[float], str] = _tick, *, whole: bool = True
              ) -> Markup:
    """Horizontal bars, one group per label (one bar per series), values at the bar ends.
    ``whole``: the values are counts."""
    if not labels or not any(v for s in series for v in s.values):
        return _empty(chart_id, title)
    left, right, bottom = 230, 70, 40
    top = 26 if len(series) > 1 else 8
    per_bar = 18
    group = per_bar * len(series) + 8
    plot_h = group * len(labels)
    height = top + plot_h + bottom
    plot_w = WIDTH - left - right
    ticks, x_max = _ticks(max(v for s in series for v in s.values), whole)
    scale = plot_w / x_max
    parts = _legend(series, 14, left) if len(series) > 1 else []
    for tick in ticks:
        x = left + tick * scale
        parts.append(Markup('<line x1="{:.1f}" x2="{:.1f}" y1="{}" y2="{}" stroke="#dcdcde"/>'
                            '<text x="{:.1f}" y="{}" text-anchor="middle" {}>{}</text>').format(
            x, x, top, top + plot_h, x, top + plot_h + 14, FONT, _tick(tick)))
    for i, label in enumerate(labels):
        y0 = top + i * group + 4
        short = label if len(label) <= 36 else label[:35] + "…"
        parts.append(Markup('<text x="{}" y="{:.1f}" text-anchor="end" {}>{}</text>').format(
            left - 6, y0 + group / 2, FONT, short))
        for j, s in enumerate(series):
            value = s.values[i]
            y = y0 + j * per_bar
            w = value * scale
            parts.append(Markup('<rect x="{}" y="{}" width="{:.1f}" height="{}" fill="{}">'
                                '<title>{}: {} {}</title></rect>'
                                '<text x="{:.1f}" y="{}" {}>{}</text>').format(
                left, y, w, per_bar - 3, s.color, label, s.name, fmt(value), left + w + 4,
                y + per_bar - 6, FONT, fmt(value)))
    parts.append(Markup('<text x="{:.1f}" y="{}" text-anchor="middle" {}>{}</text>').format(
        left + plot_w / 2, height - 6, FONT, x_label))
    return _svg(chart_id, title, height, parts)


def charts(dash: Dashboard) -> dict[str, Markup]:
    """One chart per section (two for escalations), each summarising the table below it."""
    days = dash.traffic.days
    labels = [d.strftime("%d/%m") for d in days]
    traffic_series = [
        Series(channel, tuple(float(dash.traffic.count(d, channel)) for d in days),
               CHANNEL_COLORS[i % len(CHANNEL_COLORS)])
        for i, channel in enumerate(dash.traffic.channels)]
    hoax_totals: Counter[dt.date] = Counter()
    spikes: set[dt.date] = set()
    for h in dash.hoaxes:
        hoax_totals[h.day] += h.matches
        if h.spike:
            spikes.add(h.day)
    shown_routes = [r for r in dash.routes if r.messages]
    found = {
        "messages": column_chart(
            "chart-messages", "Pesan per hari dan kanal", labels, traffic_series,
            "Tanggal", "Jumlah pesan"),
        "routes": bar_chart(
            "chart-routes", "Bagian pesan per rute", [r.label for r in shown_routes],
            [Series("Pesan", tuple(r.share * 100 for r in shown_routes), PLAIN_COLOR)],
            "Persentase pesan (%)", lambda v: f"{number(v, 1)}%", whole=False),
        "intents": bar_chart(
            "chart-intents", "Intent terbanyak", [i.intent for i in dash.intents],
            [Series("Pesan", tuple(float(i.messages) for i in dash.intents), PLAIN_COLOR),
             Series("Dijawab", tuple(float(i.answered) for i in dash.intents), "#00a32a")],
            "Jumlah pesan"),
        "hoaxes": column_chart(
            "chart-hoaxes", "Kecocokan hoaks per hari (merah: lonjakan)", labels,
            [Series("Kecocokan", tuple(float(hoax_totals[d]) for d in days), PLAIN_COLOR)],
            "Tanggal", "Jumlah kecocokan",
            colors=[SPIKE_COLOR if d in spikes else PLAIN_COLOR for d in days]),
        "escalations": bar_chart(
            "chart-escalations", "Tiket eskalasi per kategori",
            [e.category for e in dash.escalations],
            [Series("Tiket", tuple(float(e.tickets) for e in dash.escalations), PLAIN_COLOR),
             Series("Diambil terlambat", tuple(float(e.late) for e in dash.escalations),
                    SPIKE_COLOR)],
            "Jumlah tiket"),
        "claim_times": bar_chart(
            "chart-claim-times", "Waktu sampai diambil per kategori (menit)",
            [e.category for e in dash.escalations if e.median_claim is not None],
            [Series("Median", tuple(e.median_claim.total_seconds() / 60
                                    for e in dash.escalations if e.median_claim is not None),
                    PLAIN_COLOR),
             Series("P90", tuple(e.p90_claim.total_seconds() / 60 for e in dash.escalations
                                 if e.p90_claim is not None), "#dba617")],
            "Menit", lambda v: number(v, 1), whole=False),
    }
    if dash.unanswered is not None:
        clusters = dash.unanswered.clusters
        found["unanswered"] = bar_chart(
            "chart-unanswered", "Kelompok pesan yang tidak terjawab",
            [c.text or c.key for c in clusters],
            [Series("Pesan", tuple(float(c.messages) for c in clusters), PLAIN_COLOR)],
            "Jumlah pesan")
    return found


# -- CSV ---------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A text cell that a spreadsheet would read as a formula gets a leading apostrophe
    (masked citizen texts are in the export, and ``=HYPERLINK(...)`` is easy to type)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _seconds(delta: dt.timedelta | None) -> object:
    return "" if delta is None else round(delta.total_seconds())


def _share(value: float | None) -> object:
    return "" if value is None else f"{value:.4f}"


def _messages_rows(dash: Dashboard) -> Iterable[Sequence[object]]:
    yield ("hari", "kanal", "pesan")
    for day in dash.traffic.days:
        for channel in dash.traffic.channels:
            yield (day.isoformat(), channel, dash.traffic.count(day, channel))


def _routes_rows(dash: Dashboard) -> Iterable[Sequence[object]]:
    yield ("rute", "keterangan", "pesan", "bagian")
    for r in dash.routes:
        yield (r.route, r.label, r.messages, _share(r.share))


def _intents_rows(dash: Dashboard) -> Iterable[Sequence[object]]:
    yield ("intent", "pesan", "dijawab")
    for i in dash.intents:
        yield (i.intent, i.messages, i.answered)


def _unanswered_rows(dash: Dashboard) -> Iterable[Sequence[object]]:
    yield ("kelompok", "pesan", "masih_terbuka", "contoh_teks_disamarkan", "sumber")
    if dash.unanswered is None:
        return
    source = "kotak_tinjauan" if dash.unanswered.from_inbox else "teks_fallback"
    for c in dash.unanswered.clusters:
        yield (c.key, c.messages, "" if c.open_items is None else c.open_items, c.text, source)


def _hoaxes_rows(dash: Dashboard) -> Iterable[Sequence[object]]:
    yield ("hari", "hoaks", "kecocokan", "rata_rata_harian_sebelumnya", "lonjakan")
    for h in dash.hoaxes:
        yield (h.day.isoformat(), h.hoax_id, h.matches, f"{h.baseline:.2f}",
               "ya" if h.spike else "tidak")


def _escalations_rows(dash: Dashboard) -> Iterable[Sequence[object]]:
    yield ("kategori", "tiket", "diambil", "tanpa_klaim", "median_detik_sampai_diambil",
           "p90_detik_sampai_diambil", "diambil_terlambat", "bagian_terlambat")
    for e in dash.escalations:
        yield (e.category, e.tickets, e.claimed, e.unclaimed, _seconds(e.median_claim),
               _seconds(e.p90_claim), e.late, _share(e.late_share))


SECTIONS: dict[str, Callable[[Dashboard], Iterable[Sequence[object]]]] = {
    "messages": _messages_rows,
    "routes": _routes_rows,
    "intents": _intents_rows,
    "unanswered": _unanswered_rows,
    "hoaxes": _hoaxes_rows,
    "escalations": _escalations_rows,
}


def to_csv(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def section(engine: Engine, period: Period, name: str) -> str:
    """One section as CSV (only the queries that section needs)."""
    empty = Traffic((), (), {})
    dash = Dashboard(
        period,
        traffic(engine, period) if name == "messages" else empty,
        route_shares(engine, period) if name == "routes" else (),
        top_intents(engine, period) if name == "intents" else (),
        unanswered(engine, period) if name == "unanswered" else None,
        hoax_matches(engine, period) if name == "hoaxes" else (),
        escalations(engine, period) if name == "escalations" else ())
    return to_csv(SECTIONS[name](dash))


# -- the pages ---------------------------------------------------------------------------


class DashboardPages:
    """The dashboard's routes, on the console's sessions, permissions and templates."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def routes(self) -> list[BaseRoute]:
        return [Route("/dashboard", self.page, methods=["GET"]),
                Route("/dashboard.csv", self.export, methods=["GET"])]

    @property
    def engine(self) -> Engine:
        return self.console.db.engine

    @staticmethod
    def _period(request: Request) -> Period:
        zone = institution_zone()
        return parse_period(request.query_params.get("from"), request.query_params.get("to"),
                            today(zone), zone)

    def _links(self, period: Period, may_texts: bool) -> dict[str, str]:
        from bot.admin.console import PREFIX  # console imports this module

        query = f"from={period.first.isoformat()}&to={period.last.isoformat()}"
        return {name: f"{PREFIX}/dashboard.csv?section={name}&{query}" for name in SECTIONS
                if name != "unanswered" or may_texts}

    def _presets(self) -> list[tuple[str, str, str]]:
        end = today()
        return [(f"{days} hari", (end - dt.timedelta(days=days - 1)).isoformat(),
                 end.isoformat()) for days in PRESETS]

    def _render(self, session: Session, status: int, chosen: tuple[str, str], *,
                dash: Dashboard | None, links: Mapping[str, str],
                error: str | None = None) -> Response:
        return self.console._page(
            "dashboard.html", session, status, error=error, dash=dash,
            charts=charts(dash) if dash is not None else {}, links=links,
            presets=self._presets(), chosen=chosen, texts_hidden=TEXTS_HIDDEN,
            no_inbox=NO_REVIEW_INBOX, baseline_days=BASELINE_DAYS, fmt=_FORMATTERS)

    async def page(self, request: Request) -> Response:
        from bot.admin.console import allowed  # console imports this module

        got = await self.console._viewer(request, "view_dashboard")
        if isinstance(got, Response):
            return got
        session: Session = got
        try:
            period = self._period(request)
        except PeriodError as error:
            asked = (request.query_params.get("from", "")[:10],
                     request.query_params.get("to", "")[:10])
            return self._render(session, 400, asked, dash=None, links={}, error=str(error))
        may_texts = allowed(session.user.role, "view_unanswered")
        dash = await asyncio.to_thread(build, self.engine, period, texts=may_texts)
        return self._render(session, 200, (period.first.isoformat(), period.last.isoformat()),
                            dash=dash, links=self._links(period, may_texts))

    async def export(self, request: Request) -> Response:
        from bot.admin.console import _security_headers, allowed  # (see page)

        got = await self.console._viewer(request, "export_dashboard")
        if isinstance(got, Response):
            return got
        session: Session = got
        name = request.query_params.get("section", "")
        if name not in SECTIONS:
            return PlainTextResponse(UNKNOWN_SECTION.format(names=", ".join(SECTIONS)),
                                     status_code=400, headers=_security_headers())
        try:
            period = self._period(request)
        except PeriodError as error:
            return PlainTextResponse(str(error), status_code=400, headers=_security_headers())
        if name == "unanswered" and not allowed(session.user.role, "view_unanswered"):
            return self.console._deny(session, "view_unanswered")
        body = await asyncio.to_thread(section, self.engine, period, name)
        logger.info("admin dashboard export: user=%s section=%s days=%d", session.user.name,
                    name, len(period.days))
        filename = f"garda-{name}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
        headers = _security_headers()
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers=headers)


_FORMATTERS = {"number": number, "percent": percent, "duration": duration}
