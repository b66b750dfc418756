"""Versions of approved content, and the two-person rule that guards them (docs/content.md).

A change to an answer (a response in ``domain.yml``) or to a hoax clarification (an entry
in ``data/hoaxes/``) is *proposed* as a new version of its key. It reaches citizens only
once someone other than its author *approved* it, and only while it is the newest approved
version of that key: a proposed, rejected or withdrawn version is never served. Version 0
is the file's text, with the file's approval record; every later version is a row in
``content_versions`` that is never deleted, and every step (proposed, approved, rejected,
withdrawn, rolled_back) is a row in the append-only ``content_audit``.

A version is approved only if it was written against the version served at the time of
approval (``based_on``): of two proposals made against the same text, the second to be
approved would silently undo the first, so it is refused as a conflict instead. Texts are
checked like the files' (not empty, placeholders known in settings/institution.yml,
length) when proposed and again when approved, since the settings may change in between.

:class:`ApprovedContent` is what a running brain serves: the files' content with the
newest approved versions laid over it, re-read from the database at most every
``GARDA_CONTENT_POLL_SECONDS`` (default 5), so an approval is live within seconds in
every worker without a restart.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.content import PLACEHOLDER, Content, Override
from bot.hoax.registry import MAX_CLARIFICATION, TODO, HoaxEntry, Registry
from bot.store.models import content_audit, content_versions, utcnow

logger = logging.getLogger(__name__)

ANSWER = "answer"
HOAX = "hoax"
KINDS = (ANSWER, HOAX)

PROPOSED = "proposed"
APPROVED = "approved"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
ROLLED_BACK = "rolled_back"  # an audit action: an immediate rollback by a supervisor/admin

# Who may do what (the console's PERMISSIONS and the CLI's --by check use these). Trainers
# may propose: they read what citizens ask and see where answers fall short, and nothing
# they propose is served before a supervisor or admin approves it.
PROPOSERS = frozenset({"trainer", "supervisor", "admin"})
APPROVERS = frozenset({"supervisor", "admin"})

# An approved version counts as reviewed on the day it was approved: it is served until
# this many days later (the file's review_by belongs to the file's text, not to this one).
REVIEW_DAYS = 180
# One chat message on Telegram and on WhatsApp holds 4,096 characters; an answer is sent
# as one message, so its text, settings filled in, must fit.
MAX_ANSWER = 4096
MAX_REASON = 1000
MAX_KEY = 100
DEFAULT_POLL_SECONDS = 5.0
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

PROBLEMS = {
    "empty": ("the text is empty", "Teksnya kosong."),
    "control": ("the text contains control characters",
                "Teks berisi karakter kontrol yang tidak dapat dikirim."),
    "placeholder": ("placeholder {{{0}}} is not in settings/institution.yml",
                    "Isian {{{0}}} tidak ada di settings/institution.yml."),
    "too_long": ("the text is {0} characters long; the limit is {1}",
                 "Teks {0} karakter; batasnya {1} karakter."),
    "todo": ("the text still contains TODO", "Teks masih berisi TODO."),
    "reason_too_long": (f"the reason is longer than {MAX_REASON} characters",
                        f"Alasan lebih dari {MAX_REASON} karakter."),
}


@dataclass(frozen=True)
class Problem:
    """Why a text may not be served: in English for the CLI, in Indonesian for the console."""

    code: str
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return PROBLEMS[self.code][0].format(*self.args)

    @property
    def indonesian(self) -> str:
        return PROBLEMS[self.code][1].format(*self.args)


class VersionError(Exception):
    """A change was refused; ``code`` says which rule refused it (the console words it)."""

    code = "refused"


class UnknownKey(VersionError):
    code = "unknown_key"


class NoSuchVersion(VersionError):
    code = "no_such_version"


class NotPending(VersionError):
    code = "not_pending"


class SelfApproval(VersionError):
    code = "self_approval"


class Conflict(VersionError):
    code = "conflict"


class NotAllowed(VersionError):
    code = "not_allowed"


class Lapsed(NotAllowed):
    code = "lapsed"


class InvalidText(VersionError):
    code = "invalid_text"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Version:
    """One version of a key. ``id`` None: version 0, the file's text."""

    id: int | None
    kind: str
    key: str
    version: int
    text: str
    status: str
    proposed_by: str
    proposed_at: dt.datetime | None
    reason: str
    decided_by: str | None
    decided_at: dt.datetime | None
    based_on: int | None
    restores: int | None = None  # an immediate rollback: the version whose text it restored
    file_approved_at: dt.date | None = None  # version 0: the file's approval record
    file_review_by: dt.date | None = None

    @property
    def from_file(self) -> bool:
        return self.id is None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    kind: str
    key: str
    version: int
    detail: str | None


@dataclass(frozen=True)
class KeySummary:
    """One key in the console's list."""

    kind: str
    key: str
    title: str
    served: int          # the version citizens get now (0: the file's)
    pending: int         # proposals waiting for a decision
    last_change: dt.datetime | None


def same_person(first: str | None, second: str | None) -> bool:
    """Names as the console stores them (lower case, trimmed); the CLI's --by is compared
    the same way, so "Sari" cannot approve what "sari " proposed."""
    return (first or "").strip().casefold() == (second or "").strip().casefold()


def normal_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)  # SQLite hands datetimes back naive


def override_of(version: int, text: str, approved_by: str, decided_at: dt.datetime) -> Override:
    # The UTC day, as Content.render's "today" is: a local (WIB) date could lie ahead of
    # it in the small hours and read as "approved in the future".
    day = (_aware(decided_at) or decided_at).astimezone(dt.timezone.utc).date()
    return Override(text=text, approved_by=approved_by, approved_at=day,
                    review_by=day + dt.timedelta(days=REVIEW_DAYS), version=version)


def with_clarification(entry: HoaxEntry, override: Override) -> HoaxEntry:
    """A registry entry with an approved clarification (its status, verdict, sources and
    ``expires`` stay the file's: approving a text does not publish a draft entry)."""
    return dataclasses.replace(entry, clarification=override.text,
                               approved_by=override.approved_by,
                               approved_at=override.approved_at, review_by=override.review_by)


def approved_count(conn: Connection) -> tuple[int, int]:
    """Changes whenever something is approved (approved rows never change or go away), so
    a poller reads the texts only then."""
    cv = content_versions.c
    row = conn.execute(select(func.count(), func.max(cv.id)).where(cv.status == APPROVED)).one()
    return int(row[0]), int(row[1] or 0)


def approved_overrides(conn: Connection) -> dict[tuple[str, str], Override]:
    """What is served instead of the files' texts: the newest approved version of every
    (kind, key) that has one. An immediate rollback is served with the approval record of
    the version it restored (one person restoring a text is no new review of it); one
    back to version 0 serves the file's text and record, so it is no override at all."""
    cv = content_versions.c
    columns = (cv.kind, cv.key, cv.version, cv.text, cv.decided_by, cv.decided_at, cv.restores)
    newest = (select(cv.kind, cv.key, func.max(cv.version).label("version"))
              .where(cv.status == APPROVED).group_by(cv.kind, cv.key).subquery())
    rows = conn.execute(select(*columns).join(newest, and_(
        cv.kind == newest.c.kind, cv.key == newest.c.key, cv.version == newest.c.version))).all()
    found: dict[tuple[str, str], Override] = {}
    for row in rows:
        record = row
        while record is not None and record.restores:
            record = conn.execute(select(*columns).where(
                cv.kind == row.kind, cv.key == row.key, cv.version == record.restores,
                cv.status == APPROVED)).first()
        if record is None or record.restores == 0:
            continue
        found[(row.kind, row.key)] = override_of(row.version, row.text,
                                                 record.decided_by or "", record.decided_at)
    return found


def _row_version(row: Any) -> Version:
    return Version(
        id=int(row.id), kind=row.kind, key=row.key, version=int(row.version), text=row.text,
        status=row.status, proposed_by=row.proposed_by, proposed_at=_aware(row.proposed_at),
        reason=row.reason or "", decided_by=row.decided_by, decided_at=_aware(row.decided_at),
        based_on=row.based_on, restores=row.restores)


def _utc(now: dt.datetime | None) -> dt.datetime:
    """SQLite keeps a datetime's wall clock and drops its offset: store UTC only."""
    return (now or utcnow()).astimezone(dt.timezone.utc)


def _log(conn: Connection, actor: str, action: str, kind: str, key: str, version: int,
         detail: str | None, now: dt.datetime) -> None:
    conn.execute(content_audit.insert().values(at=now, actor=actor, action=action, kind=kind,
                                               key=key, version=version, detail=detail))


class ContentVersions:
    """The versions of the answers and clarifications, over the database and the files."""

    def __init__(self, engine: Engine, content: Content | None = None,
                 registry: Registry | None = None) -> None:
        self.engine = engine
        self._content = content
        self._registry = registry

    @property
    def content(self) -> Content:
        if self._content is None:
            self._content = Content.load()
        return self._content

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry.load()
        return self._registry

    # -- the files (version 0) --------------------------------------------------------

    def kind_of(self, key: str) -> str:
        """The kind of a key named without one (answers are ``utter_*``, hoaxes kebab-case)."""
        if key in self.content.responses:
            return ANSWER
        if key in self.registry.entries:
            return HOAX
        raise UnknownKey(f"no answer or hoax entry named {key!r}")

    def file_version(self, kind: str, key: str) -> Version:
        if kind == ANSWER and key in self.content.responses:
            response = self.content.responses[key]
            return Version(None, kind, key, 0, normal_text(response.text), APPROVED, "", None,
                           "", response.approved_by or None, None, None, None,
                           response.approved_at, response.review_by)
        if kind == HOAX and key in self.registry.entries:
            entry = self.registry.entries[key]
            return Version(None, kind, key, 0, normal_text(entry.clarification), APPROVED, "",
                           None, "", entry.approved_by or None, None, None, None,
                           entry.approved_at, entry.review_by)
        if kind not in KINDS:
            raise UnknownKey(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        where = "domain.yml" if kind == ANSWER else "data/hoaxes/"
        raise UnknownKey(f"no {kind} named {key!r} in {where}")

    def title(self, kind: str, key: str) -> str:
        if kind == ANSWER:
            return self.content.title(key) if key in self.content else key
        entry = self.registry.entries.get(key)
        return entry.title if entry is not None else key

    def check_text(self, kind: str, text: str) -> list[Problem]:
        """Every reason ``text`` may not be served as a ``kind``: the files' own rules."""
        if not text.strip():
            return [Problem("empty")]
        found = []
        if CONTROL.search(text):
            found.append(Problem("control"))
        settings = self.content.settings
        names = [m.group(1) for m in PLACEHOLDER.finditer(text)]
        found += [Problem("placeholder", (name,)) for name in dict.fromkeys(names)
                  if name not in settings]
        if kind == ANSWER:
            length = len(PLACEHOLDER.sub(lambda m: settings.get(m.group(1), m.group(0)), text))
            if length > MAX_ANSWER:
                found.append(Problem("too_long", (length, MAX_ANSWER)))
        else:
            if len(text) > MAX_CLARIFICATION:
                found.append(Problem("too_long", (len(text), MAX_CLARIFICATION)))
            if TODO in text:
                found.append(Problem("todo"))
        return found

    # -- reading ----------------------------------------------------------------------

    def get(self, version_id: int) -> Version:
        with self.engine.connect() as conn:
            row = conn.execute(select(content_versions)
                               .where(content_versions.c.id == version_id)).first()
        if row is None:
            raise NoSuchVersion(f"no content version with id {version_id}")
        return _row_version(row)

    def versions(self, kind: str, key: str) -> list[Version]:
        """Version 0 (the file's text) and every version since, oldest first."""
        first = self.file_version(kind, key)
        cv = content_versions.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(content_versions).where(cv.kind == kind, cv.key == key)
                                .order_by(cv.version)).all()
        return [first, *(_row_version(r) for r in rows)]

    def served(self, kind: str, key: str) -> Version:
        """The version citizens get: the newest approved one, else the file's."""
        approved = [v for v in self.versions(kind, key) if v.status == APPROVED]
        return approved[-1]

    @staticmethod
    def record(found: list[Version], number: int) -> Version:
        """The version whose approval record version ``number`` is served with: itself,
        or for an immediate rollback the version it restored (see approved_overrides)."""
        by_number = {v.version: v for v in found}
        record = by_number[number]
        while record.restores is not None:
            record = by_number[record.restores]
        return record

    def override(self, found: list[Version], number: int) -> Override | None:
        """What Content.render is given for version ``number`` (None: the file's own)."""
        record = self.record(found, number)
        if record.from_file or record.decided_at is None:
            return None
        text = next(v.text for v in found if v.version == number)
        return override_of(number, text, record.decided_by or "", record.decided_at)

    def review_by(self, found: list[Version], number: int) -> dt.date | None:
        """When version ``number`` of a key must be reviewed again, as render sees it."""
        record = self.record(found, number)
        if record.from_file:
            return record.file_review_by
        override = self.override(found, number)
        return override.review_by if override is not None else None

    def text_of(self, kind: str, key: str, version: int) -> str:
        for found in self.versions(kind, key):
            if found.version == version:
                return found.text
        raise NoSuchVersion(f"{kind} {key} has no version {version}")

    def pending(self) -> list[Version]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(content_versions)
                                .where(content_versions.c.status == PROPOSED)
                                .order_by(content_versions.c.id)).all()
        return [_row_version(r) for r in rows]

    def summaries(self) -> list[KeySummary]:
        """Every key, those with proposals waiting first, then by kind and key."""
        cv = content_versions.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(cv.kind, cv.key,
                       func.max(cv.version).filter(cv.status == APPROVED).label("served"),
                       func.count().filter(cv.status == PROPOSED).label("pending"),
                       func.max(func.coalesce(cv.decided_at, cv.proposed_at)).label("last"))
                .group_by(cv.kind, cv.key)).all()
        stats = {(r.kind, r.key): r for r in rows}
        keys = [(ANSWER, name) for name in sorted(self.content.responses)]
        keys += [(HOAX, entry_id) for entry_id in sorted(self.registry.entries)]
        found = []
        for kind, key in keys:
            row = stats.get((kind, key))
            found.append(KeySummary(kind, key, self.title(kind, key),
                                    int(row.served or 0) if row else 0,
                                    int(row.pending or 0) if row else 0,
                                    _aware(row.last) if row else None))
        return sorted(found, key=lambda s: (s.pending == 0, s.kind, s.key))

    def audit(self, kind: str | None = None, key: str | None = None) -> list[AuditEntry]:
        ca = content_audit.c
        query = select(content_audit).order_by(ca.id)
        if kind is not None:
            query = query.where(ca.kind == kind)
        if key is not None:
            query = query.where(ca.key == key)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [AuditEntry(int(r.id), _aware(r.at) or r.at, r.actor, r.action, r.kind, r.key,
                           int(r.version), r.detail) for r in rows]

    # -- changing ---------------------------------------------------------------------

    @staticmethod
    def _locked(conn: Connection, kind: str, key: str) -> list[Any]:
        """Every row of a key, locked for this transaction (PostgreSQL: FOR UPDATE, so two
        approvals of one key are decided one after the other; SQLite: BEGIN IMMEDIATE has
        serialised writers already)."""
        cv = content_versions.c
        return list(conn.execute(select(content_versions).where(cv.kind == kind, cv.key == key)
                                 .order_by(cv.version).with_for_update()).all())

    @staticmethod
    def _current(rows: list[Any]) -> int:
        return max((int(r.version) for r in rows if r.status == APPROVED), default=0)

    def _checked(self, kind: str, text: str, reason: str = "") -> None:
        problems = self.check_text(kind, text)
        if len(reason) > MAX_REASON:
            problems.append(Problem("reason_too_long"))
        if problems:
            raise InvalidText(problems)

    @staticmethod
    def _who(name: str) -> str:
        who = name.strip().lower()
        if not who or len(who) > 64:
            raise NotAllowed("a change needs the name of the person making it (1-64 characters)")
        return who

    def propose(self, kind: str, key: str, text: str, by: str, reason: str = "",
                based_on: int | None = None, now: dt.datetime | None = None) -> Version:
        """A new version of ``key``, waiting for someone else's approval.

        ``based_on``: the version the author saw (the console sends it); a proposal written
        against a text that has since been replaced is refused as a conflict. Default: the
        version served now.
        """
        by = self._who(by)
        self.file_version(kind, key)
        text, reason = normal_text(text), normal_text(reason)
        self._checked(kind, text, reason)
        for _ in range(5):
            try:
                return self._insert(kind, key, text, by, reason, based_on, _utc(now))
            except IntegrityError:
                continue  # another proposal of this key took the number: count again
        raise VersionError(f"{kind} {key} is being changed by others right now; try again")

    def _insert(self, kind: str, key: str, text: str, by: str, reason: str,
                based_on: int | None, now: dt.datetime, *, restores: int | None = None,
                action: str = "proposed", detail: str | None = None) -> Version:
        approve = restores is not None
        with self.engine.begin() as conn:
            rows = self._locked(conn, kind, key)
            current = self._current(rows)
            if based_on is not None and based_on != current:
                raise Conflict(f"conflict: {kind} {key} is at version {current} now, not "
                               f"{based_on}; re-propose against the current text")
            number = max((int(r.version) for r in rows), default=0) + 1
            new_id = conn.execute(content_versions.insert().values(
                kind=kind, key=key, version=number, text=text,
                status=APPROVED if approve else PROPOSED, proposed_by=by, proposed_at=now,
                reason=reason or None, decided_by=by if approve else None,
                decided_at=now if approve else None, based_on=current, restores=restores,
            )).inserted_primary_key[0]
            _log(conn, by, action, kind, key, number, detail if detail is not None
                 else (reason or None), now)
        return self.get(int(new_id))

    def _decide(self, version_id: int, by: str, status: str, action: str,
                detail: str | None, now: dt.datetime | None,
                check: Callable[[Any, list[Any]], None]) -> Version:
        by = self._who(by)
        now = _utc(now)
        with self.engine.begin() as conn:
            found = conn.execute(select(content_versions.c.kind, content_versions.c.key)
                                 .where(content_versions.c.id == version_id)).first()
            if found is None:
                raise NoSuchVersion(f"no content version with id {version_id}")
            rows = self._locked(conn, found.kind, found.key)
            row = next(r for r in rows if int(r.id) == version_id)
            if row.status != PROPOSED:
                raise NotPending(f"version {row.version} of {row.kind} {row.key} is "
                                 f"{row.status}, not waiting for a decision")
            check(row, rows)
            conn.execute(update(content_versions)
                         .where(content_versions.c.id == version_id,
                                content_versions.c.status == PROPOSED)
                         .values(status=status, decided_by=by, decided_at=now))
            _log(conn, by, action, row.kind, row.key, int(row.version), detail, now)
        return self.get(version_id)

    def approve(self, version_id: int, by: str, now: dt.datetime | None = None) -> Version:
        """Serve a proposal from now on. Refused for its own author, for a text that fails
        the checks, and for a proposal written against a version no longer served."""
        who = self._who(by)

        def check(row: Any, rows: list[Any]) -> None:
            if same_person(row.proposed_by, who):
                raise SelfApproval(f"{who} proposed version {row.version} of {row.kind} "
                                   f"{row.key}: a different person must approve it")
            self.file_version(row.kind, row.key)
            self._checked(row.kind, row.text)
            current = self._current(rows)
            if row.based_on != current:
                raise Conflict(f"conflict: version {row.version} was written against version "
                               f"{row.based_on}, but version {current} is served now; "
                               "re-propose against the current text")

        return self._decide(version_id, who, APPROVED, "approved", None, now, check)

    def reject(self, version_id: int, by: str, reason: str,
               now: dt.datetime | None = None) -> Version:
        """Refuse a proposal, saying why (its author withdraws it instead)."""
        who = self._who(by)
        reason = normal_text(reason)
        if not reason:
            raise NotAllowed("a rejection needs a reason for the author")
        if len(reason) > MAX_REASON:
            raise InvalidText([Problem("reason_too_long")])

        def check(row: Any, rows: list[Any]) -> None:
            if same_person(row.proposed_by, who):
                raise NotAllowed(f"{who} proposed version {row.version}: withdraw it instead "
                                 "of rejecting it")

        return self._decide(version_id, who, REJECTED, "rejected", reason, now, check)

    def withdraw(self, version_id: int, by: str, now: dt.datetime | None = None) -> Version:
        """Take back one's own proposal."""
        who = self._who(by)

        def check(row: Any, rows: list[Any]) -> None:
            if not same_person(row.proposed_by, who):
                raise NotAllowed(f"only {row.proposed_by}, who proposed version "
                                 f"{row.version}, may withdraw it")

        return self._decide(version_id, who, WITHDRAWN, "withdrawn", None, now, check)

    def rollback(self, kind: str, key: str, to: int, by: str, reason: str = "", *,
                 immediate: bool = False, now: dt.datetime | None = None) -> Version:
        """Go back to an earlier approved version ``to`` (0: the file's text).

        Normally this proposes that text again, and a second person approves it like any
        change. ``immediate`` (supervisors and admins, with a reason) serves it at once:
        for an approved text that must stop now (a wrong emergency number at night). It
        puts no new words in front of citizens, only ones two people already approved,
        so waiting for a second person would only keep the wrong text served longer.
        """
        by = self._who(by)
        reason = normal_text(reason)
        found = self.versions(kind, key)
        target = next((v for v in found if v.version == to), None)
        if target is None:
            raise NoSuchVersion(f"{kind} {key} has no version {to}")
        if target.status != APPROVED:
            raise NotAllowed(f"version {to} of {kind} {key} was never approved ({target.status}); "
                             "only an approved version (or 0, the file's text) can come back")
        served = max((v for v in found if v.status == APPROVED), key=lambda v: v.version)
        if served.version == to or served.text == target.text:
            raise NotAllowed(f"the text of version {to} of {kind} {key} is the one served now")
        why = f"rollback to v{to}" + (f": {reason}" if reason else "")
        if not immediate:
            return self.propose(kind, key, target.text, by, why, served.version, now)
        if not reason:
            raise NotAllowed("an immediate rollback needs a reason")
        lapsed = self.review_by(found, to)
        if lapsed is None or lapsed < _utc(now).date():
            raise Lapsed(f"the approval of version {to} lapsed ({lapsed or 'no review date'}"
                             "): propose it again for a fresh approval instead")
        self._checked(kind, target.text, why)
        return self._insert(kind, key, target.text, by, why, served.version, _utc(now),
                            restores=to, action=ROLLED_BACK,
                            detail=f"v{served.version} -> v{to}: {reason}")


def check_actor(engine: Engine, name: str, roles: frozenset[str], doing: str) -> str:
    """The console user ``name`` (the CLI's --by), if active and in ``roles``.

    The CLI has no login; naming a real user with the right role keeps the audit log's
    names those of people the console knows, and the two-person rule between them.
    """
    from bot.admin.users import Users, normal_name

    user = Users(engine).get(normal_name(name))
    if user is None or user.disabled:
        raise NotAllowed(f"{name!r} is not an active console user (garda admin add-user)")
    if user.role not in roles:
        raise NotAllowed(f"{user.name} is a {user.role}; only {', '.join(sorted(roles))} "
                         f"may {doing}")
    return user.name


# -- diffs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffRow:
    """One line pair of a side-by-side diff (None: no line on that side)."""

    tag: str  # equal, delete, insert, replace
    old_number: int | None
    old: str | None
    new_number: int | None
    new: str | None


def diff_rows(old: str, new: str) -> list[DiffRow]:
    a, b = old.split("\n"), new.split("\n")
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            rows.append(DiffRow(tag, i + 1 if i < i2 else None, a[i] if i < i2 else None,
                                j + 1 if j < j2 else None, b[j] if j < j2 else None))
    return rows


def unified_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff(old.split("\n"), new.split("\n"), old_label, new_label,
                                 lineterm="")
    return "\n".join(lines)


# -- serving ------------------------------------------------------------------------------


def poll_seconds(environ: dict[str, str] | None = None) -> float:
    from bot.config import ConfigError

    raw = (os.environ if environ is None else environ).get("GARDA_CONTENT_POLL_SECONDS", "")
    if not raw.strip():
        return DEFAULT_POLL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError("GARDA_CONTENT_POLL_SECONDS must be a number") from None
    if value < 0:
        raise ConfigError("GARDA_CONTENT_POLL_SECONDS must not be negative")
    return value


class ApprovedContent:
    """The files' content with the newest approved versions over it, as a brain serves it.

    The database is read at most every ``poll`` seconds, on use. If it cannot be read, the
    versions read last stay served (an approved text does not revert to the file's because
    the database is briefly down), and a warning is logged once.
    """

    def __init__(self, source: str | Engine, base: Content, poll: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(source, str):
            from bot.store.db import make_engine

            source = make_engine(source)
        self.engine = source
        self.poll = poll_seconds() if poll is None else poll
        self._base = base
        self._content = base
        self._hoaxes: dict[str, Override] = {}
        self._seen: tuple[int, int] | None = None
        self._due = float("-inf")
        self._clock = clock
        self._failing = False
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._due:
                return
            self._due = now + self.poll
            try:
                with self.engine.connect() as conn:
                    seen = approved_count(conn)
                    found = approved_overrides(conn) if seen != self._seen else None
            except SQLAlchemyError as error:
                if not self._failing:
                    logger.warning("approved content not re-read (%s); serving what was read "
                                   "last", type(error).__name__)
                self._failing = True
                return
            self._failing = False
            if found is None:
                return
            self._seen = seen
            self._content = self._base.with_overrides(
                {key: o for (kind, key), o in found.items() if kind == ANSWER})
            self._hoaxes = {key: o for (kind, key), o in found.items() if kind == HOAX}
            logger.info("approved content: %d answer(s) and %d clarification(s) from the "
                        "database", len(found) - len(self._hoaxes), len(self._hoaxes))

    def content(self) -> Content:
        self.refresh()
        return self._content

    def hoax(self, entry: HoaxEntry) -> HoaxEntry:
        self.refresh()
        override = self._hoaxes.get(entry.id)
        return entry if override is None else with_clarification(entry, override)
