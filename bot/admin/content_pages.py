"""The console's content pages: propose, review and approve changes to approved content.

    GET  /admin/content                                 every answer and hoax clarification,
                                                        those with proposals waiting first
    GET  /admin/content/{kind}/{key}                    the text served now, proposals with
                                                        their diff, the history, the audit log
    POST /admin/content/propose                         a new version (kind, key, text, reason,
                                                        based_on: the version the form showed)
    POST /admin/content/versions/{id}/approve|reject|withdraw
    POST /admin/content/rollback                        back to an earlier approved version
                                                        (mode=propose, or now: supervisors)

The rules are bot/content_versions.py's; these pages word its refusals in Indonesian. The
buttons a user may not use are not shown (an author sees no "approve" on their own
proposal), and the server refuses them regardless: 403 and a line ``admin denied: user=...
role=... action=...`` in the log, as every refusal in the console.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.admin.users import Session
from bot.content import ContentError
from bot.content_versions import (
    APPROVED,
    KINDS,
    MAX_REASON,
    PROPOSED,
    ContentVersions,
    DiffRow,
    InvalidText,
    Version,
    VersionError,
    diff_rows,
    same_person,
    with_clarification,
)
from bot.hoax.registry import RegistryError

if TYPE_CHECKING:
    from bot.admin.console import Console

logger = logging.getLogger("bot.admin.console")  # one log for every refusal in the console

KIND_LABELS = {"answer": "Jawaban", "hoax": "Klarifikasi hoaks"}
STATUS_LABELS = {"proposed": "diusulkan", "approved": "disetujui", "rejected": "ditolak",
                 "withdrawn": "ditarik"}
ACTION_LABELS = {"proposed": "mengusulkan", "approved": "menyetujui", "rejected": "menolak",
                 "withdrawn": "menarik", "rolled_back": "mengembalikan segera"}
NOTICES = {
    "proposed": "Usulan tersimpan. Teks ini belum dikirim ke warga: orang lain (supervisor "
                "atau admin) harus menyetujuinya dulu.",
    "approved": "Disetujui. Teks ini dikirim ke warga mulai sekarang (dalam beberapa detik).",
    "rejected": "Usulan ditolak; teks ini tidak pernah dikirim ke warga.",
    "withdrawn": "Usulan ditarik.",
    "rolled_back": "Dikembalikan. Teks versi itu dikirim ke warga mulai sekarang.",
}
NOT_FOUND = "Konten tidak ditemukan."
OWN_APPROVAL = ("Anda tidak dapat menyetujui usulan Anda sendiri: orang lain yang harus "
                "menyetujuinya.")
OWN_REJECTION = "Ini usulan Anda sendiri: tarik usulan itu, jangan menolaknya."
NOT_AUTHOR = "Hanya pengusul yang dapat menarik usulannya."
DECIDED = "Usulan ini sudah diputuskan sebelumnya."
CONFLICT = ("Konflik: teks yang dikirim ke warga sudah berganti sejak usulan ini dibuat. "
            "Buat usulan baru dari teks yang sekarang.")
REASON_NEEDED = "Tuliskan alasannya."
LONG_REASON = f"Alasan terlalu panjang; batasnya {MAX_REASON:,} karakter.".replace(",", ".")
NOT_RESTORABLE = ("Hanya versi yang pernah disetujui (atau v0, teks berkas) yang dapat "
                  "dikembalikan, dan bukan versi yang sedang dikirim.")
LAPSED = ("Masa tinjau versi itu sudah lewat: usulkan kembali agar disetujui ulang oleh "
          "orang lain.")
INVALID = "Teks ini tidak dapat dikirim ke warga:"
BAD_FORM = "Formulir tidak lengkap."


@dataclasses.dataclass(frozen=True)
class Shown:
    """One version as the detail page shows it."""

    version: Version
    status_label: str
    proposed: str
    decided: str
    diff: list[DiffRow]
    base: int
    served: bool
    own: bool
    stale: bool          # a proposal written against a version no longer served
    restorable: bool


def _clock(at: dt.datetime | None) -> str:
    from bot.admin.console import _clock as clock

    return clock(at)


def _path(kind: str, key: str) -> str:
    return f"/content/{kind}/{quote(key, safe='/')}"


class ContentPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.versions = ContentVersions(console.db.engine)

    def routes(self) -> list[BaseRoute]:
        version = "/content/versions/{version_id:int}"
        return [
            Route("/content", self.index, methods=["GET"]),
            Route("/content/propose", self.propose, methods=["POST"]),
            Route("/content/rollback", self.rollback, methods=["POST"]),
            Route(f"{version}/approve", self.approve, methods=["POST"]),
            Route(f"{version}/reject", self.reject, methods=["POST"]),
            Route(f"{version}/withdraw", self.withdraw, methods=["POST"]),
            Route("/content/{kind}/{key:path}", self.detail, methods=["GET"]),
        ]

    def _refuse(self, session: Session, action: str, message: str) -> Response:
        logger.warning("admin denied: user=%s role=%s action=%s", session.user.name,
                       session.user.role, action)
        return self.console._message(session, 403, message)

    # -- pages --------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        got = await self.console._viewer(request, "view_content")
        if isinstance(got, Response):
            return got
        rows = await asyncio.to_thread(self.versions.summaries)
        return self.console._page("content_list.html", got, rows=rows, kinds=KIND_LABELS,
                                  clock=_clock, path=_path)

    async def detail(self, request: Request) -> Response:
        got = await self.console._viewer(request, "view_content")
        if isinstance(got, Response):
            return got
        kind, key = request.path_params["kind"], request.path_params["key"]
        notice = NOTICES.get(request.query_params.get("m", ""))
        return await self._detail(got, kind, key, notice=notice)

    def _problems(self, kind: str, key: str, found: list[Version], served: Version
                  ) -> list[str]:
        """Why the served text would not reach a citizen today (an expired review...)."""
        versions = self.versions
        override = versions.override(found, served.version)
        try:
            if kind == "answer":
                content = versions.content
                if override is not None:
                    content = content.with_overrides({key: override})
                content.render(key)
            else:
                entry = versions.registry.entries[key]
                if override is not None:
                    entry = with_clarification(entry, override)
                entry.render(versions.content.settings)
        except (ContentError, RegistryError) as error:
            return [str(error)]
        return []

    def _shown(self, session: Session, found: list[Version]) -> list[Shown]:
        texts = {v.version: v.text for v in found}
        served = max(v.version for v in found if v.status == APPROVED)
        shown = []
        for v in found:
            base = v.based_on or 0
            decided = ""
            if v.from_file:
                decided = f"{v.decided_by or '-'} ({v.file_approved_at or '-'}, berkas)"
            elif v.decided_by:
                decided = f"{v.decided_by} · {_clock(v.decided_at)}"
            shown.append(Shown(
                version=v, status_label=STATUS_LABELS.get(v.status, v.status),
                proposed="" if v.from_file else f"{v.proposed_by} · {_clock(v.proposed_at)}",
                decided=decided,
                diff=[] if v.from_file else diff_rows(texts.get(base, ""), v.text), base=base,
                served=v.version == served,
                own=not v.from_file and same_person(v.proposed_by, session.user.name),
                stale=v.status == PROPOSED and base != served,
                restorable=v.status == APPROVED and v.version != served
                and v.text != texts[served]))
        return shown

    async def _detail(self, session: Session, kind: str, key: str, status: int = 200, *,
                      notice: str | None = None, error: str | None = None,
                      problems: list[str] | None = None, draft: str | None = None,
                      reason: str = "") -> Response:
        try:
            found = await asyncio.to_thread(self.versions.versions, kind, key)
        except VersionError:
            return self.console._message(session, 404, NOT_FOUND)
        served = max((v for v in found if v.status == APPROVED), key=lambda v: v.version)
        shown = self._shown(session, found)
        audit = await asyncio.to_thread(self.versions.audit, kind, key)
        return self.console._page(
            "content_detail.html", session, status, notice=notice, error=error,
            problems=problems or [], kind=kind, key=key, kind_label=KIND_LABELS[kind],
            title=self.versions.title(kind, key), served=served,
            review_by=self.versions.review_by(found, served.version),
            serve_problems=self._problems(kind, key, found, served),
            pending=[s for s in shown if s.version.status == PROPOSED],
            history=list(reversed(shown)),
            audit=[(_clock(a.at), a.actor, ACTION_LABELS.get(a.action, a.action), a.version,
                    a.detail or "") for a in reversed(audit)],
            draft=served.text if draft is None else draft, reason=reason,
            max_reason=MAX_REASON, path=_path)

    # -- changes ------------------------------------------------------------------------

    async def _post(self, request: Request, action: str
                    ) -> tuple[Session, dict[str, str]] | Response:
        got = await self.console._poster(request)
        if isinstance(got, Response):
            return got
        session, form = got
        from bot.admin.console import allowed

        if not allowed(session.user.role, action):
            return self.console._deny(session, action)
        return session, form

    def _done(self, session: Session, action: str, version: Version, code: str) -> Response:
        from bot.admin.console import _redirect

        logger.info("admin %s: user=%s kind=%s key=%s version=%s", action, session.user.name,
                    version.kind, version.key, version.version)
        return _redirect(f"{_path(version.kind, version.key)}?m={code}")

    async def _failed(self, session: Session, error: VersionError, kind: str, key: str,
                      **keep: Any) -> Response:
        """A refusal by the rules, on the page it came from (what was typed is kept)."""
        if isinstance(error, InvalidText):
            return await self._detail(session, kind, key, 400, error=INVALID,
                                      problems=[p.indonesian for p in error.problems], **keep)
        if error.code == "conflict":
            return await self._detail(session, kind, key, 409, error=CONFLICT, **keep)
        if error.code == "not_pending":
            return await self._detail(session, kind, key, 409, error=DECIDED)
        if error.code in ("unknown_key", "no_such_version"):
            return self.console._message(session, 404, NOT_FOUND)
        return await self._detail(session, kind, key, 400, error=NOT_RESTORABLE, **keep)

    async def propose(self, request: Request) -> Response:
        got = await self._post(request, "propose_content")
        if isinstance(got, Response):
            return got
        session, form = got
        kind, key = form.get("kind", ""), form.get("key", "")
        text, reason = form.get("text", ""), form.get("reason", "")
        if kind not in KINDS or not key or not form.get("based_on", "").isdigit():
            return self.console._message(session, 400, BAD_FORM)
        try:
            version = await asyncio.to_thread(self.versions.propose, kind, key, text,
                                              session.user.name, reason,
                                              int(form["based_on"]))
        except VersionError as error:
            return await self._failed(session, error, kind, key, draft=text, reason=reason)
        return self._done(session, "propose_content", version, "proposed")

    async def _version(self, session: Session, request: Request) -> Version | Response:
        try:
            return await asyncio.to_thread(self.versions.get,
                                           int(request.path_params["version_id"]))
        except VersionError:
            return self.console._message(session, 404, NOT_FOUND)

    async def approve(self, request: Request) -> Response:
        got = await self._post(request, "approve_content")
        if isinstance(got, Response):
            return got
        session, _ = got
        version = await self._version(session, request)
        if isinstance(version, Response):
            return version
        if same_person(version.proposed_by, session.user.name):
            return self._refuse(session, "approve_own_content", OWN_APPROVAL)
        try:
            done = await asyncio.to_thread(self.versions.approve, version.id or 0,
                                           session.user.name)
        except VersionError as error:
            if error.code == "self_approval":
                return self._refuse(session, "approve_own_content", OWN_APPROVAL)
            return await self._failed(session, error, version.kind, version.key)
        return self._done(session, "approve_content", done, "approved")

    async def reject(self, request: Request) -> Response:
        got = await self._post(request, "reject_content")
        if isinstance(got, Response):
            return got
        session, form = got
        version = await self._version(session, request)
        if isinstance(version, Response):
            return version
        if same_person(version.proposed_by, session.user.name):
            return self._refuse(session, "reject_own_content", OWN_REJECTION)
        reason = form.get("reason", "").strip()
        if not reason or len(reason) > MAX_REASON:
            return await self._detail(session, version.kind, version.key, 400,
                                      error=REASON_NEEDED if not reason else LONG_REASON)
        try:
            done = await asyncio.to_thread(self.versions.reject, version.id or 0,
                                           session.user.name, reason)
        except VersionError as error:
            return await self._failed(session, error, version.kind, version.key)
        return self._done(session, "reject_content", done, "rejected")

    async def withdraw(self, request: Request) -> Response:
        got = await self._post(request, "propose_content")
        if isinstance(got, Response):
            return got
        session, _ = got
        version = await self._version(session, request)
        if isinstance(version, Response):
            return version
        if not same_person(version.proposed_by, session.user.name):
            return self._refuse(session, "withdraw_other_content", NOT_AUTHOR)
        try:
            done = await asyncio.to_thread(self.versions.withdraw, version.id or 0,
                                           session.user.name)
        except VersionError as error:
            return await self._failed(session, error, version.kind, version.key)
        return self._done(session, "withdraw_content", done, "withdrawn")

    async def rollback(self, request: Request) -> Response:
        """``mode=now`` (supervisors, admins) serves the earlier text at once; otherwise
        it is proposed again for a second person (see ContentVersions.rollback for why)."""
        got = await self.console._poster(request)
        if isinstance(got, Response):
            return got
        session, form = got
        from bot.admin.console import allowed

        now = form.get("mode") == "now"
        action = "rollback_content" if now else "propose_content"
        if not allowed(session.user.role, action):
            return self.console._deny(session, action)
        kind, key, to = form.get("kind", ""), form.get("key", ""), form.get("to", "")
        if kind not in KINDS or not key or not to.isdigit():
            return self.console._message(session, 400, BAD_FORM)
        reason = form.get("reason", "").strip()
        if now and not reason:
            return await self._detail(session, kind, key, 400, error=REASON_NEEDED)
        try:
            version = await asyncio.to_thread(
                lambda: self.versions.rollback(kind, key, int(to), session.user.name, reason,
                                               immediate=now))
        except VersionError as error:
            if error.code == "lapsed":
                return await self._detail(session, kind, key, 400, error=LAPSED)
            return await self._failed(session, error, kind, key)
        return self._done(session, action, version, "rolled_back" if now else "proposed")
