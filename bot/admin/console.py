"""The admins' web console, mounted at /admin (server-rendered; Jinja2 with autoescape).

    GET  /admin/login, POST /admin/login      log in (a pre-session CSRF cookie, double submit)
    POST /admin/logout                         end the session
    GET  /admin/                               the queue (refreshes from /admin/queue/rows)
    GET  /admin/events                         Server-Sent Events: {"ticket": id, "action": ...}
                                               on every ticket change (bot/admin/live.py)
    GET  /admin/tickets/{id}                   the conversation (personal data masked), the
                                               ticket's event log, its actions, a reply box
    POST /admin/tickets/{id}/claim|release|resolve|hand_back|reply|reveal
    GET  /admin/fact-checks                    active fact_check tickets (/admin/fact-checks/rows)
    GET  /admin/users, POST /admin/users       users: list, add, set role, disable (admin role)
    GET  /admin/dashboard, /admin/dashboard.csv  charts and CSV over a period (dashboard.py)
    GET  /admin/training, POST /admin/training  label the review inbox (training.py)
    POST /admin/tickets/{id}/relabel           "this message really asked X" (training.py)

Every POST carries the session's CSRF token (field ``csrf``); a missing or wrong one is
refused (403) before anything else happens. What each role may do is :data:`PERMISSIONS`;
a refusal answers 403 and logs ``admin denied: user=... role=... action=...`` (never
message text or personal data). Nothing here logs passwords, tokens or citizen text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hmac
import html
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from sqlalchemy import select
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route

from bot.admin.content_pages import ContentPages
from bot.admin.dashboard import DashboardPages
from bot.admin.live import InProcessNotifier, Notifier, ticket_event
from bot.admin.training import Training, relabel_form
from bot.admin.users import (
    ROLES,
    NoSuchUser,
    Session,
    User,
    UserError,
    UserExists,
    Users,
    name_problem,
    password_problem,
    role_problem,
)
from bot.channels.base import TEXT, Inbound
from bot.content import Content, ContentError
from bot.content_versions import APPROVERS, PROPOSERS
from bot.privacy import mask
from bot.store.db import LOCAL_DAY_ZONE, ConversationEntry, Database
from bot.store.models import ACTIVE, CLAIMED, OPEN, inbound, utcnow
from bot.store.queue import QueueUnavailable
from bot.store.tickets import ANY, Ticket, TicketError, Tickets

logger = logging.getLogger(__name__)

PREFIX = "/admin"
COOKIE = "garda_admin"
LOGIN_COOKIE = "garda_admin_login"
TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_FORM_BYTES = 128 * 1024
MAX_REPLY = 4000
MAX_NOTE = 1000
REFRESH_SECONDS = 30     # the queue's polling, behind its live event stream (/admin/events)
HEARTBEAT_SECONDS = 15.0  # a comment on a quiet event stream, so proxies keep it open
RETRY_MS = 5000           # how long a browser waits before it reconnects an event stream
QUEUE_LIMIT = 200
FACT_CHECK = "fact_check"

EVERYONE = frozenset(ROLES)
AGENTS = frozenset({"agent", "supervisor", "admin"})
LEADS = frozenset({"supervisor", "admin"})

# Who may do what. "_any": on an active ticket the user has not claimed themselves.
PERMISSIONS: dict[str, frozenset[str]] = {
    "view_queue": EVERYONE,
    "view_ticket": EVERYONE,
    "view_fact_checks": EVERYONE,
    "claim": AGENTS,
    "release_own": AGENTS,
    "release_other": LEADS,
    "reply": AGENTS,
    "reply_any": LEADS,
    "resolve": AGENTS,
    "resolve_any": LEADS,
    "hand_back": AGENTS,
    "hand_back_any": LEADS,
    "reveal": LEADS,
    "manage_users": frozenset({"admin"}),
    # The dashboard (bot/admin/dashboard.py): counts for everyone; citizens' unanswered
    # texts (masked, but free text can still name a person or an address) only for those
    # whose work needs them: trainers label them, supervisors and admins own the content.
    "view_dashboard": EVERYONE,
    "export_dashboard": EVERYONE,
    "view_unanswered": frozenset({"trainer", "supervisor", "admin"}),
    # The Training page (bot/admin/training.py): label the review inbox (agents answer
    # citizens; trainers curate what the model learns); and, for those who handle tickets,
    # "this message really asked X" on a ticket's message, which fills the inbox.
    "label": frozenset({"trainer", "supervisor", "admin"}),
    "relabel": AGENTS,
    # Approved content (bot/admin/content_pages.py, bot/content_versions.py): a change is
    # proposed (trainers too: nothing is served before someone else approves it), and
    # approved or rejected by a supervisor or admin who is not its author; "rollback" is
    # serving an earlier approved text at once, without a second person.
    "view_content": EVERYONE,
    "propose_content": PROPOSERS,
    "approve_content": APPROVERS,
    "reject_content": APPROVERS,
    "rollback_content": APPROVERS,
}


def allowed(role: str, action: str) -> bool:
    return role in PERMISSIONS[action]


# What the console says (Indonesian: the admins' language).
LOGIN_FAILED = ("Gagal masuk. Periksa nama pengguna dan kata sandi, atau coba lagi "
                "15 menit lagi.")
FORM_EXPIRED = "Formulir ini kedaluwarsa atau tidak sah. Muat ulang halaman, lalu coba lagi."
SESSION_ENDED = "Sesi Anda sudah berakhir. Silakan masuk lagi."
DENIED = "Peran Anda tidak mengizinkan tindakan ini."
NOT_FOUND = "Tiket tidak ditemukan."
EMPTY_REPLY = "Balasan kosong tidak dikirim. Tulis pesan atau pilih balasan cepat."
LONG_REPLY = "Balasan terlalu panjang ({n} karakter); batasnya 4.000 karakter."
LONG_NOTE = "Catatan terlalu panjang; batasnya 1.000 karakter."
CLAIMED_BY = "Tiket ini sudah diambil oleh {holder}."
CLOSED = "Tiket ini sudah ditutup."
NOT_CLAIMED = "Tiket ini tidak sedang diambil siapa pun."
CHANGED = "Tiket ini baru saja berubah. Lihat keadaannya sekarang, lalu coba lagi."
NO_CHANNEL = "Kanal percakapan ini tidak tersedia di server ini; balasan tidak dikirim."
UNRENDERABLE = "Balasan ini tidak dapat dikirim lewat kanal percakapan ini."
NOTICES = {
    "claimed": "Tiket diambil. Anda yang menanganinya sekarang.",
    "released": "Tiket dilepas dan kembali ke antrian.",
    "resolved": "Tiket diselesaikan.",
    "handed_back": "Percakapan dikembalikan ke bot.",
    "replied": "Balasan masuk antrian kirim.",
    "replied_later": "Balasan tersimpan; dikirim begitu antrian kerja pulih.",
    "relabelled": "Label tercatat; trainer meninjaunya sebelum masuk ke data latih.",
    "user_added": "Pengguna ditambahkan.",
    "role_set": "Peran diubah.",
    "disabled": "Pengguna dinonaktifkan; sesinya berakhir.",
    "enabled": "Pengguna diaktifkan lagi.",
}
NAME_PROBLEM = ("Nama pengguna 1-64 karakter: huruf kecil, angka, '.', '_' atau '-', diawali "
                "huruf atau angka.")
ROLE_PROBLEM = "Peran tidak dikenal."
TOO_SHORT = "Kata sandi minimal 12 karakter (paling banyak 1.024)."
USER_EXISTS = "Nama pengguna itu sudah dipakai."
NO_SUCH_USER = "Pengguna tidak ditemukan."
SELF_CHANGE = ("Anda tidak dapat mengubah peran atau menonaktifkan akun Anda sendiri; "
               "minta admin lain.")
STATUS_LABELS = {"open": "terbuka", "claimed": "diambil", "resolved": "selesai",
                 "handed_back": "dikembalikan ke bot"}
EVENT_LABELS = {"opened": "dibuka", "escalated": "eskalasi lagi", "claimed": "diambil",
                "released": "dilepas", "resolved": "diselesaikan",
                "handed_back": "dikembalikan ke bot", "replied": "membalas",
                "revealed": "membuka data pribadi", "message": "pesan baru warga",
                "relabelled": "memberi label untuk pelatihan"}


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Row:
    """One ticket in the queue."""

    id: int
    category: str
    priority: int
    status: str
    status_label: str
    assignee: str | None
    age: str
    deadline: str
    overdue: bool
    snippet: str | None = None


@dataclasses.dataclass(frozen=True)
class Line:
    """One message in the conversation view."""

    at: str
    source: str   # citizen, bot, admin
    who: str
    text: str
    status: str


@dataclasses.dataclass(frozen=True)
class QuickReply:
    name: str
    title: str
    text: str


def _zone() -> dt.tzinfo:
    try:
        return ZoneInfo(os.environ.get("GARDA_TIMEZONE") or LOCAL_DAY_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.timezone(dt.timedelta(hours=7))


def _clock(at: dt.datetime | None) -> str:
    return at.astimezone(_zone()).strftime("%d-%m %H:%M") if at is not None else "-"


def _span(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
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


def _same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _security_headers(nonce: str | None = None) -> dict[str, str]:
    own = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {own}; style-src {own}; connect-src 'self'; "
            "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _redirect(path: str) -> RedirectResponse:
    response = RedirectResponse(f"{PREFIX}{path}", status_code=303)
    response.headers.update(_security_headers())
    return response


def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, secure=True, httponly=True,
                        samesite="strict")


def reply_text(method: str, payload: dict[str, Any] | None) -> str | None:
    """The words of one outbox call, whatever the channel (None: nothing to show)."""
    if payload is None:
        return "[isi dihapus oleh retensi]"
    text = payload.get("text")
    if isinstance(text, str):
        return html.unescape(text) if str(payload.get("parse_mode", "")).upper() == "HTML" \
            else text
    if isinstance(text, dict):
        return str(text.get("body") or "")
    interactive = payload.get("interactive")
    if isinstance(interactive, dict):
        body = interactive.get("body")
        return str(body.get("text") or "") if isinstance(body, dict) else ""
    if payload.get("type") == "template":
        return "[templat pesan WhatsApp]"
    if "callback_query_id" in payload:
        return None  # Telegram's acknowledgement of a button press: not a message
    return f"[{method}]"


def opening_texts(engine: Engine, inbound_ids: list[int]) -> dict[int, str]:
    """The text of the messages that opened some tickets (for the fact-check list)."""
    if not inbound_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(inbound.c.id, inbound.c.text)
                            .where(inbound.c.id.in_(inbound_ids))).all()
    return {int(r.id): r.text or "" for r in rows}


class Console:
    """The console's routes over the gateway's runtime (its database, queue and channels)."""

    def __init__(self, runtime: Any, content: Content | None = None) -> None:
        self.runtime = runtime
        self.db: Database = runtime.db
        self.tickets = Tickets(self.db.engine)
        self.users = Users(self.db.engine)
        self.notifier: Notifier = getattr(runtime, "notifier", None) or InProcessNotifier()
        self._content = content
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    def routes(self) -> list[BaseRoute]:
        ticket = "/tickets/{ticket_id:int}"
        return [
            Route("/", self.queue, methods=["GET"]),
            Route("/queue/rows", self.queue_rows, methods=["GET"]),
            Route("/events", self.events, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/fact-checks", self.fact_checks, methods=["GET"]),
            Route("/fact-checks/rows", self.fact_check_rows, methods=["GET"]),
            Route(ticket, self.ticket, methods=["GET"]),
            Route(f"{ticket}/claim", self.claim, methods=["POST"]),
            Route(f"{ticket}/release", self.release, methods=["POST"]),
            Route(f"{ticket}/resolve", self.resolve, methods=["POST"]),
            Route(f"{ticket}/hand_back", self.hand_back, methods=["POST"]),
            Route(f"{ticket}/reply", self.reply, methods=["POST"]),
            Route(f"{ticket}/reveal", self.reveal, methods=["POST"]),
            Route("/users", self.user_list, methods=["GET"]),
            Route("/users", self.user_change, methods=["POST"]),
            *DashboardPages(self).routes(),
            *ContentPages(self).routes(),
            *Training(self).routes(),
        ]

    # -- rendering --------------------------------------------------------------------

    @property
    def content(self) -> Content:
        if self._content is None:
            self._content = Content.load()
        return self._content

    def quick_replies(self) -> list[QuickReply]:
        """Approved responses (``utter_*``) that may be sent today, by title."""
        found = []
        for name in self.content.responses:
            if not name.startswith("utter_"):
                continue
            try:
                text = self.content.render(name)
            except ContentError:
                continue
            found.append(QuickReply(name, self.content.title(name) or name, text))
        return sorted(found, key=lambda q: q.title.lower())

    def _page(self, template: str, session: Session | None, status: int = 200,
              **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        role = session.user.role if session is not None else ""
        body = self.env.get_template(template).render(
            nonce=nonce, prefix=PREFIX, me=session.user if session else None,
            csrf=session.csrf if session else "", can=functools.partial(allowed, role),
            refresh_ms=REFRESH_SECONDS * 1000, notice=context.pop("notice", None),
            error=context.pop("error", None), **context)
        response = HTMLResponse(body, status_code=status)
        response.headers.update(_security_headers(nonce))
        return response

    def _message(self, session: Session | None, status: int, message: str) -> HTMLResponse:
        return self._page("message.html", session, status, message=message)

    def _deny(self, session: Session, action: str) -> HTMLResponse:
        logger.warning("admin denied: user=%s role=%s action=%s", session.user.name,
                       session.user.role, action)
        return self._message(session, 403, DENIED)

    # -- sessions and forms -----------------------------------------------------------

    async def _session(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        return await asyncio.to_thread(self.users.session, token)

    async def _viewer(self, request: Request, action: str) -> Session | Response:
        """The session for a page (or the login page), allowed to ``action``."""
        session = await self._session(request)
        if session is None:
            return _redirect("/login")
        if not allowed(session.user.role, action):
            return self._deny(session, action)
        return session

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return {}  # the console's forms send nothing else: no CSRF token, refused
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise FormError(413, "form too large")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_FORM_BYTES:
                raise FormError(413, "form too large")
        try:
            pairs = parse_qsl(bytes(body).decode("utf-8"), keep_blank_values=True,
                              max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            raise FormError(400, "malformed form") from None
        form: dict[str, str] = {}
        for key, value in pairs:
            form.setdefault(key, value)
        return form

    async def _poster(self, request: Request) -> tuple[Session, dict[str, str]] | Response:
        """The session and form of a POST whose CSRF token matches its session's."""
        session = await self._session(request)
        if session is None:
            return self._message(None, 403, SESSION_ENDED)
        try:
            form = await self._form(request)
        except FormError as error:
            return PlainTextResponse(str(error), status_code=error.status,
                                     headers=_security_headers())
        if not _same(form.get("csrf"), session.csrf):
            logger.warning("admin csrf check failed: user=%s path=%s", session.user.name,
                           request.url.path)
            return self._message(session, 403, FORM_EXPIRED)
        return session, form

    # -- logging in and out -----------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if await self._session(request) is not None:
            return _redirect("/")
        return self._login_page(request)

    def _login_page(self, request: Request, status: int = 200,
                    error: str | None = None) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if not (40 <= len(token) <= 64):
            token = secrets.token_urlsafe(32)
        response = self._page("login.html", None, status, login_csrf=token, error=error)
        _set_cookie(response, LOGIN_COOKIE, token, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        try:
            form = await self._form(request)
        except FormError as error:
            return PlainTextResponse(str(error), status_code=error.status,
                                     headers=_security_headers())
        if not _same(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            logger.warning("admin login refused: csrf check failed")
            return self._message(None, 403, FORM_EXPIRED)
        user = await asyncio.to_thread(self.users.authenticate, form.get("name", ""),
                                       form.get("password", ""))
        if user is None:
            logger.warning("admin login failed")
            return self._login_page(request, 401, LOGIN_FAILED)
        token, _ = await asyncio.to_thread(self.users.start_session, user)
        logger.info("admin login: user=%s role=%s", user.name, user.role)
        response = _redirect("/")
        _set_cookie(response, COOKIE, token)
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX, secure=True, httponly=True,
                               samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        if await self._session(request) is None:
            return _redirect("/login")
        got = await self._poster(request)
        if isinstance(got, Response):
            return got
        session, _ = got
        await asyncio.to_thread(self.users.end_session, request.cookies.get(COOKIE, ""))
        logger.info("admin logout: user=%s", session.user.name)
        response = _redirect("/login")
        response.delete_cookie(COOKIE, path=PREFIX, secure=True, httponly=True,
                               samesite="strict")
        return response

    # -- the queue --------------------------------------------------------------------

    async def _rows(self, category: str | None = None) -> list[Row]:
        found = await asyncio.to_thread(self.tickets.queue, 1000 if category else QUEUE_LIMIT)
        if category is not None:
            found = [t for t in found if t.category == category][:QUEUE_LIMIT]
        texts: dict[int, str] = {}
        if category == FACT_CHECK:
            texts = await asyncio.to_thread(
                opening_texts, self.db.engine, [t.inbound_id for t in found if t.inbound_id])
        now = utcnow()
        rows = []
        for t in found:
            overdue = t.status == OPEN and t.claim_by <= now
            left = t.claim_by - now
            when = (f"lewat {_span(-left)}" if left.total_seconds() <= 0
                    else f"dalam {_span(left)}")
            snippet = None
            if t.inbound_id in texts:
                snippet = mask(texts[t.inbound_id])[:160]
            rows.append(Row(t.id, t.category, t.priority, t.status,
                            STATUS_LABELS.get(t.status, t.status), t.assignee,
                            _span(now - t.opened_at), f"{_clock(t.claim_by)} ({when})",
                            overdue, snippet))
        return rows

    async def queue(self, request: Request) -> Response:
        got = await self._viewer(request, "view_queue")
        if isinstance(got, Response):
            return got
        return self._page("queue.html", got, rows=await self._rows(), title="Antrian tiket",
                          rows_url=f"{PREFIX}/queue/rows", facts=False)

    async def fact_checks(self, request: Request) -> Response:
        got = await self._viewer(request, "view_fact_checks")
        if isinstance(got, Response):
            return got
        return self._page("queue.html", got, rows=await self._rows(FACT_CHECK),
                          title="Klaim untuk tim cek fakta",
                          rows_url=f"{PREFIX}/fact-checks/rows", facts=True)

    async def _fragment(self, request: Request, action: str, category: str | None
                        ) -> Response:
        session = await self._session(request)
        if session is None:
            return PlainTextResponse(SESSION_ENDED, status_code=401,
                                     headers=_security_headers())
        if not allowed(session.user.role, action):
            return self._deny(session, action)
        return self._page("_rows.html", session, rows=await self._rows(category),
                          facts=category == FACT_CHECK)

    async def queue_rows(self, request: Request) -> Response:
        return await self._fragment(request, "view_queue", None)

    async def fact_check_rows(self, request: Request) -> Response:
        return await self._fragment(request, "view_fact_checks", FACT_CHECK)

    # -- live updates -----------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        """Server-Sent Events: one ``data: {"ticket": id, "action": name}`` per ticket
        change, so that an open queue reloads its rows at once instead of at its next poll.
        Ids and action names only: the rows themselves come from /queue/rows, which checks
        the session and masks as every page does."""
        session = await self._session(request)
        if session is None:
            return PlainTextResponse(SESSION_ENDED, status_code=401,
                                     headers=_security_headers())
        if not allowed(session.user.role, "view_queue"):
            return self._deny(session, "view_queue")
        headers = {**_security_headers(), "X-Accel-Buffering": "no"}  # no proxy buffering
        return StreamingResponse(self._stream(request.cookies.get(COOKIE, "")),
                                 media_type="text/event-stream", headers=headers)

    async def _stream(self, token: str) -> AsyncIterator[str]:
        """The event stream. Every HEARTBEAT_SECONDS it checks the session (the stream ends
        with it) and looks at the newest ticket event in SQL: a change that no event
        announced (made by a tool that does not publish, or lost with Redis) is sent as
        ``changed``; otherwise a comment keeps proxies from closing a quiet stream. It
        also ends when the notifier shuts down, and when the client goes (Starlette
        cancels it)."""
        loop = asyncio.get_running_loop()
        subscription = self.notifier.subscribe()
        try:
            await subscription.ready()
            mark = await asyncio.to_thread(self.tickets.last_event)
            yield f"retry: {RETRY_MS}\n\n"
            announced = False
            check_at = loop.time() + HEARTBEAT_SECONDS
            while True:
                try:
                    event = await subscription.next(max(0.0, check_at - loop.time()))
                except StopAsyncIteration:
                    return
                if event is not None:
                    yield f"data: {json.dumps(event)}\n\n"
                    announced = True
                    if loop.time() < check_at:
                        continue
                check_at = loop.time() + HEARTBEAT_SECONDS
                if await asyncio.to_thread(self.users.session, token) is None:
                    return
                latest = await asyncio.to_thread(self.tickets.last_event)
                if latest is not None and latest != mark and not announced:
                    yield f"data: {json.dumps(ticket_event(latest[1], 'changed'))}\n\n"
                else:
                    yield ": ping\n\n"
                mark, announced = latest, False
        finally:
            subscription.close()

    # -- one ticket -------------------------------------------------------------------

    async def _ticket(self, request: Request) -> Ticket | None:
        try:
            return await asyncio.to_thread(self.tickets.get,
                                           int(request.path_params["ticket_id"]))
        except TicketError:
            return None

    def _lines(self, entries: list[ConversationEntry], revealed: bool) -> list[Line]:
        show: Callable[[str], str] = (lambda s: s) if revealed else mask
        lines = []
        for entry in entries:
            if entry.source == "citizen":
                if entry.kind == "media":
                    text = f"[media: {entry.detail or '?'}]"
                elif entry.text is None:
                    text = "[isi dihapus oleh retensi]"
                else:
                    text = entry.text
                who = "Warga"
            else:
                found = reply_text(entry.kind, entry.payload)
                if found is None:
                    continue
                text = found
                who = f"Admin {entry.author}" if entry.source == "admin" else "Garda (bot)"
            lines.append(Line(_clock(entry.at), entry.source, who, show(text), entry.status))
        return lines

    def _ticket_actions(self, user: User, ticket: Ticket) -> dict[str, bool]:
        mine = ticket.assignee == user.name
        active = ticket.status in ACTIVE
        role = user.role

        def may(action: str) -> bool:
            return active and allowed(role, action if mine else f"{action}_any")

        return {
            "claim": ticket.status == OPEN and allowed(role, "claim"),
            "release": ticket.status == CLAIMED and allowed(
                role, "release_own" if mine else "release_other"),
            "reply": may("reply"),
            "resolve": may("resolve"),
            "hand_back": may("hand_back"),
            "reveal": allowed(role, "reveal"),
        }

    async def _ticket_page(self, session: Session, ticket: Ticket, status: int = 200, *,
                           error: str | None = None, notice: str | None = None,
                           revealed: bool = False, draft: str = "") -> Response:
        entries = await asyncio.to_thread(self.db.conversation_log, ticket.conversation_id)
        events = await asyncio.to_thread(self.tickets.events, ticket.id)
        conversation = await asyncio.to_thread(self.db.conversation, ticket.conversation_id)
        show: Callable[[str], str] = (lambda s: s) if revealed else mask
        acts = self._ticket_actions(session.user, ticket)
        now = utcnow()
        return self._page(
            "ticket.html", session, status, error=error, notice=notice, ticket=ticket,
            channel=conversation.channel, status_label=STATUS_LABELS.get(ticket.status,
                                                                         ticket.status),
            opened=_clock(ticket.opened_at), age=_span(now - ticket.opened_at),
            deadline=_clock(ticket.claim_by),
            overdue=ticket.status == OPEN and ticket.claim_by <= now,
            lines=self._lines(entries, revealed),
            events=[(_clock(e.at), e.actor, EVENT_LABELS.get(e.action, e.action),
                     show(e.detail) if e.detail else "") for e in events],
            acts=acts, revealed=revealed, draft=draft,
            quick=self.quick_replies() if acts["reply"] else [], max_reply=MAX_REPLY,
            relabel=await asyncio.to_thread(relabel_form, session.user.role, entries,
                                            ticket.inbound_id))

    async def ticket(self, request: Request) -> Response:
        got = await self._viewer(request, "view_ticket")
        if isinstance(got, Response):
            return got
        ticket = await self._ticket(request)
        if ticket is None:
            return self._message(got, 404, NOT_FOUND)
        code = request.query_params.get("m", "")
        return await self._ticket_page(got, ticket, notice=NOTICES.get(code))

    async def _act(self, request: Request, base: str
                   ) -> tuple[Session, dict[str, str], Ticket] | Response:
        """Session, form and ticket of a POST on a ticket, once the user may do ``base``
        to it (``base`` on a ticket they claimed, ``base_any`` on another)."""
        got = await self._poster(request)
        if isinstance(got, Response):
            return got
        session, form = got
        ticket = await self._ticket(request)
        if ticket is None:
            return self._message(session, 404, NOT_FOUND)
        action = base
        if base in ("reply", "resolve", "hand_back") and ticket.assignee != session.user.name:
            action = f"{base}_any"
        elif base == "release" and ticket.status == CLAIMED:
            action = "release_own" if ticket.assignee == session.user.name else "release_other"
        elif base == "release":
            action = "release_own"
        if not allowed(session.user.role, action):
            return self._deny(session, action)
        return session, form, ticket

    def _done(self, session: Session, action: str, ticket: Ticket, code: str) -> Response:
        logger.info("admin %s: user=%s ticket=%s", action, session.user.name, ticket.id)
        return _redirect(f"/tickets/{ticket.id}?m={code}")

    async def claim(self, request: Request) -> Response:
        got = await self._act(request, "claim")
        if isinstance(got, Response):
            return got
        session, _, ticket = got
        if ticket.status not in ACTIVE:
            return await self._ticket_page(session, ticket, 409, error=CLOSED)
        result = await asyncio.to_thread(self.tickets.claim, ticket.id, session.user.name)
        if result.won:
            self.notifier.publish(ticket_event(ticket.id, "claimed"))
        if result.won or (result.status == CLAIMED and result.holder == session.user.name):
            return self._done(session, "claim", ticket, "claimed")
        ticket = await asyncio.to_thread(self.tickets.get, ticket.id)
        message = (CLAIMED_BY.format(holder=result.holder) if result.status == CLAIMED
                   else CLOSED)
        return await self._ticket_page(session, ticket, 409, error=message)

    async def release(self, request: Request) -> Response:
        got = await self._act(request, "release")
        if isinstance(got, Response):
            return got
        session, _, ticket = got
        if ticket.status != CLAIMED or ticket.assignee is None:
            return await self._ticket_page(
                session, ticket, 409, error=NOT_CLAIMED if ticket.status == OPEN else CLOSED)
        # Only the claim the user was allowed to release goes: their own, or (a supervisor's
        # override) the one they saw. A claim changed meanwhile stays as it is.
        result = await asyncio.to_thread(self.tickets.release, ticket.id, session.user.name,
                                         holder=ticket.assignee)
        if not result.moved:
            return await self._changed(session, ticket)
        self.notifier.publish(ticket_event(ticket.id, "released"))
        return self._done(session, "release", ticket, "released")

    async def _changed(self, session: Session, ticket: Ticket) -> Response:
        ticket = await asyncio.to_thread(self.tickets.get, ticket.id)
        return await self._ticket_page(session, ticket, 409,
                                       error=CHANGED if ticket.status in ACTIVE else CLOSED)

    async def _close(self, request: Request, base: str) -> Response:
        got = await self._act(request, base)
        if isinstance(got, Response):
            return got
        session, form, ticket = got
        if ticket.status not in ACTIVE:
            return await self._ticket_page(session, ticket, 409, error=CLOSED)
        note = form.get("note", "").replace("\r\n", "\n").strip()
        if len(note) > MAX_NOTE:
            return await self._ticket_page(session, ticket, 400, error=LONG_NOTE)
        move = self.tickets.resolve if base == "resolve" else self.tickets.hand_back
        # Without the ``_any`` permission a user may close only what they hold: the holder
        # is a condition of the UPDATE itself, so a claim lost meanwhile is not closed.
        holder = ANY if allowed(session.user.role, f"{base}_any") else session.user.name
        result = await asyncio.to_thread(move, ticket.id, session.user.name, note or None,
                                         holder=holder)
        if not result.moved:
            return await self._changed(session, ticket)
        action = "resolved" if base == "resolve" else "handed_back"
        self.notifier.publish(ticket_event(ticket.id, action))
        return self._done(session, base, ticket, action)

    async def resolve(self, request: Request) -> Response:
        return await self._close(request, "resolve")

    async def hand_back(self, request: Request) -> Response:
        return await self._close(request, "hand_back")

    async def reply(self, request: Request) -> Response:
        got = await self._act(request, "reply")
        if isinstance(got, Response):
            return got
        session, form, ticket = got
        if ticket.status not in ACTIVE:
            return await self._ticket_page(session, ticket, 409, error=CLOSED)
        draft = form.get("text", "")
        text = draft.replace("\r\n", "\n").strip()
        if not text and form.get("quick"):
            # Without JavaScript the select cannot fill the box: send the chosen reply.
            chosen = {q.name: q.text for q in self.quick_replies()}
            text = chosen.get(form["quick"], "")
        if not text:
            return await self._ticket_page(session, ticket, 400, error=EMPTY_REPLY)
        if len(text) > MAX_REPLY:
            return await self._ticket_page(session, ticket, 400, draft=draft,
                                           error=LONG_REPLY.format(n=f"{len(text):,}".replace(
                                               ",", ".")))
        conversation = await asyncio.to_thread(self.db.conversation, ticket.conversation_id)
        channel = self.runtime.channels.get(conversation.channel)
        if channel is None:
            return await self._ticket_page(session, ticket, 503, error=NO_CHANNEL, draft=draft)
        last = await asyncio.to_thread(self.db.last_inbound, ticket.conversation_id)
        # The reply answers the conversation, not a button press: no callback to answer.
        to = (dataclasses.replace(last.as_inbound(), callback_id=None) if last is not None
              else Inbound(conversation.channel, "", conversation.chat_id, TEXT))
        try:
            calls = channel.render(text, (), to)
        except Exception as error:
            logger.error("admin reply on ticket %s could not be rendered: %s", ticket.id,
                         type(error).__name__)
            calls = []
        if not calls:
            return await self._ticket_page(session, ticket, 422, error=UNRENDERABLE,
                                           draft=draft)
        await asyncio.to_thread(self.db.admin_reply, ticket.conversation_id, ticket.id,
                                session.user.name, calls)
        self.notifier.publish(ticket_event(ticket.id, "replied"))
        code = "replied"
        try:
            await self.runtime.queue.push(ticket.conversation_id)
        except QueueUnavailable:
            code = "replied_later"  # the workers' sweep finds pending outbox rows
        return self._done(session, "reply", ticket, code)

    async def reveal(self, request: Request) -> Response:
        got = await self._act(request, "reveal")
        if isinstance(got, Response):
            return got
        session, _, ticket = got
        await asyncio.to_thread(self.tickets.note, ticket.id, session.user.name, "revealed")
        logger.info("admin reveal: user=%s ticket=%s", session.user.name, ticket.id)
        return await self._ticket_page(session, ticket, revealed=True)

    # -- users ------------------------------------------------------------------------

    async def user_list(self, request: Request) -> Response:
        got = await self._viewer(request, "manage_users")
        if isinstance(got, Response):
            return got
        return await self._users_page(got, notice=NOTICES.get(request.query_params.get("m",
                                                                                     "")))

    async def _users_page(self, session: Session, status: int = 200, *,
                          notice: str | None = None, error: str | None = None) -> Response:
        users = await asyncio.to_thread(self.users.all)
        return self._page("users.html", session, status, users=users, roles=ROLES,
                          notice=notice, error=error)

    async def user_change(self, request: Request) -> Response:
        got = await self._poster(request)
        if isinstance(got, Response):
            return got
        session, form = got
        if not allowed(session.user.role, "manage_users"):
            return self._deny(session, "manage_users")
        op = form.get("op", "")
        name = form.get("name", "").strip().lower()
        role = form.get("role", "")
        password = form.get("password", "")
        if op in ("set_role", "disable") and name == session.user.name:
            return await self._users_page(session, 400, error=SELF_CHANGE)
        problem = None
        if op == "add":
            problem = ((name_problem(name) and NAME_PROBLEM) or (role_problem(role) and
                       ROLE_PROBLEM) or (password_problem(password) and TOO_SHORT))
        elif op == "set_role":
            problem = role_problem(role) and ROLE_PROBLEM
        elif op not in ("disable", "enable"):
            problem = "Perintah tidak dikenal."
        if problem:
            return await self._users_page(session, 400, error=problem)
        try:
            if op == "add":
                await asyncio.to_thread(self.users.add, name, password, role)
                code = "user_added"
            elif op == "set_role":
                await asyncio.to_thread(self.users.set_role, name, role)
                code = "role_set"
            else:
                await asyncio.to_thread(self.users.set_disabled, name, op == "disable")
                code = f"{op}d"
        except UserExists:
            return await self._users_page(session, 400, error=USER_EXISTS)
        except NoSuchUser:
            return await self._users_page(session, 404, error=NO_SUCH_USER)
        except UserError:
            return await self._users_page(session, 400, error="Data pengguna tidak valid.")
        logger.info("admin users: user=%s op=%s target=%s", session.user.name, op, name)
        return _redirect(f"/users?m={code}")
