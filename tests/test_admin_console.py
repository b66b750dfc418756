"""The admins' web console (/admin): logins and sessions, CSRF, the role matrix, masking,
the claim race, replies through the outbox, closing tickets, the fact-check list, the CLI.

In process, over HTTPS (the cookies are Secure), on SQLite in tmp_path; the runtime is a
gateway (no worker, no model) whose channel records what it renders and whose queue
records what it is given.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import hashlib
import itertools
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.routing import Mount
from starlette.testclient import TestClient

from bot.admin import console
from bot.admin.users import SESSION_IDLE, Users, hash_password, verify_password
from bot.brain.decision import Button, Decision
from bot.channels.base import TEXT, Inbound, Outgoing, SendContext, SendResult
from bot.config import Settings
from bot.content import Content
from bot.content_versions import ContentVersions
from bot.gateway.app import create_app
from bot.gateway.runtime import Runtime
from bot.store import models
from bot.store.db import Database
from bot.store.queue import InProcessQueue
from bot.store.tickets import Ticket, Tickets, TicketSpec

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "kata-sandi-yang-panjang"
ROLES = ("trainer", "agent", "supervisor", "admin")
NIK = "3201234567890001"
PHONE = "081234567890"
EMAIL = "ani.warga@example.com"
PRIORITY = {"emergency": 1, "self_harm": 1, "privacy": 2, "fact_check": 3, "human_request": 3}
CLAIM_WITHIN = {"emergency": 5, "self_harm": 5, "privacy": 30, "fact_check": 240,
                "human_request": 60}


class RecordingChannel:
    """Renders a reply as one call and remembers what it was asked to render."""

    name = "test"

    def __init__(self) -> None:
        self.rendered: list[tuple[str, Inbound]] = []

    def render(self, reply: str, buttons: Sequence[Button], inbound: Inbound) -> list[Outgoing]:
        self.rendered.append((reply, inbound))
        return [Outgoing("sendMessage", {"chat_id": inbound.chat_id, "text": reply})]

    async def send(self, call: Outgoing, context: SendContext) -> SendResult:
        raise AssertionError("the console never sends: workers do")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RecordingQueue(InProcessQueue):
    def __init__(self) -> None:
        super().__init__()
        self.pushed: list[int] = []

    async def push(self, conversation_id: int) -> None:
        self.pushed.append(conversation_id)
        await super().push(conversation_id)


class World:
    """A console over its own database, with users and a way to open tickets."""

    def __init__(self, directory: Path) -> None:
        url = f"sqlite:///{directory / 'console.db'}"
        self.db = Database(url)
        self.db.upgrade()
        self.channel = RecordingChannel()
        self.queue = RecordingQueue()
        settings = Settings(database_url=url)
        self.runtime = Runtime(settings, self.db, self.queue, {"test": self.channel},
                               role="gateway")
        self.app = create_app(settings, self.runtime)
        self.tickets = Tickets(self.db.engine)
        self.users = Users(self.db.engine)
        self._ids = itertools.count(1)

    def add_user(self, name: str, role: str) -> None:
        self.users.add(name, PASSWORD, role)

    def escalate(self, text: str = "saya mau bicara dengan petugas",
                 category: str = "human_request", chat: str | None = None) -> Ticket:
        number = next(self._ids)
        chat = chat or f"chat{number}"
        stored = self.db.store_inbound(Inbound("test", f"m{number}", chat, TEXT, text))
        message = self.db.claim_next(stored.conversation_id)
        assert message is not None
        decision = Decision(text=text, route="escalate", intent=None, confidence=0.9,
                            category=category, hoax_id=None, reply="Mohon tunggu sebentar.")
        self.db.save_decision(
            message, decision,
            [Outgoing("sendMessage", {"chat_id": chat, "text": "Mohon tunggu sebentar."})],
            ticket=TicketSpec(category, PRIORITY[category],
                              dt.timedelta(minutes=CLAIM_WITHIN[category])))
        ticket = self.tickets.active(stored.conversation_id)
        assert ticket is not None
        return ticket

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://testserver", follow_redirects=False)

    def login(self, name: str, password: str = PASSWORD) -> TestClient:
        client = self.client()
        response = login(client, name, password)
        assert response.status_code == 303, response.text
        return client

    def count(self, table: Any, *where: Any) -> int:
        with self.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table).where(*where))
                       .scalar() or 0)

    def outbox_by(self, author: str) -> list[Any]:
        with self.db.engine.connect() as conn:
            return conn.execute(select(models.outbox).where(models.outbox.c.author == author)
                                .order_by(models.outbox.c.id)).all()

    def state(self) -> tuple[Any, ...]:
        """Everything a POST could change."""
        with self.db.engine.connect() as conn:
            return (
                conn.execute(select(models.tickets).order_by(models.tickets.c.id)).all(),
                conn.execute(select(models.ticket_events).order_by(models.ticket_events.c.id))
                .all(),
                conn.execute(select(models.outbox).order_by(models.outbox.c.id)).all(),
                conn.execute(select(models.admin_users).order_by(models.admin_users.c.id))
                .all(),
                conn.execute(select(models.admin_sessions.c.id)).all(),
                list(self.queue.pushed),
            )


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found is not None, f"no {name} field on the page"
    return found.group(1)


def login(client: TestClient, name: str, password: str) -> httpx.Response:
    page = client.get("/admin/login")
    assert page.status_code == 200
    return client.post("/admin/login", data={"csrf": field(page.text, "csrf"), "name": name,
                                             "password": password})


def csrf(client: TestClient) -> str:
    page = client.get("/admin/")
    assert page.status_code == 200
    return field(page.text, "csrf")


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf": csrf(client), **data})


def events(world: World, ticket_id: int) -> list[tuple[str, str, str | None]]:
    return [(e.actor, e.action, e.detail) for e in world.tickets.events(ticket_id)]


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    for role in ROLES:
        w.add_user(role, role)
    w.add_user("olga", "agent")
    return w


# -- passwords, logins, sessions --------------------------------------------------------


def test_passwords_are_salted_scrypt_hashes_checked_in_constant_time() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != second  # a random salt each time
    assert first.startswith("scrypt$n=16384,r=8,p=1$") and PASSWORD not in first
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "x", first)
    assert not verify_password(PASSWORD, "not a hash")


def test_login_opens_a_server_side_session_behind_a_hardened_cookie(world: World) -> None:
    client = world.client()
    response = login(client, "agent", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/admin/"
    cookie = next(c for c in response.headers.get_list("set-cookie")
                  if c.startswith("garda_admin="))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/admin"} <= attributes
    token = cookie.split(";")[0].split("=", 1)[1]
    with world.db.engine.connect() as conn:
        stored = conn.execute(select(models.admin_sessions.c.id)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]  # never the token itself
    page = client.get("/admin/")
    assert page.status_code == 200 and "agent (agent)" in page.text


@pytest.mark.parametrize("name, password", [("agent", "salah-sekali-sandinya"),
                                            ("nobody", PASSWORD), ("", "")])
def test_a_failed_login_gets_one_generic_message_and_no_session(world: World, name: str,
                                                                password: str) -> None:
    client = world.client()
    response = login(client, name, password)
    assert response.status_code == 401
    assert console.LOGIN_FAILED in response.text
    assert "garda_admin=" not in " ".join(response.headers.get_list("set-cookie"))
    assert world.count(models.admin_sessions) == 0
    assert client.get("/admin/").headers["location"] == "/admin/login"


def test_a_disabled_user_cannot_log_in(world: World) -> None:
    world.users.set_disabled("agent", True)
    response = login(world.client(), "agent", PASSWORD)
    assert response.status_code == 401 and console.LOGIN_FAILED in response.text


def test_five_failures_lock_a_name_for_fifteen_minutes(world: World) -> None:
    client = world.client()
    for _ in range(5):
        assert login(client, "agent", "salah-sekali-sandinya").status_code == 401
    locked = login(client, "agent", PASSWORD)  # the right password, refused all the same
    assert locked.status_code == 401 and console.LOGIN_FAILED in locked.text
    assert world.count(models.admin_sessions) == 0
    assert login(world.client(), "olga", PASSWORD).status_code == 303  # other names: fine
    with world.db.engine.begin() as conn:
        conn.execute(update(models.admin_login_failures).values(
            at=models.utcnow() - dt.timedelta(minutes=16)))
    assert login(client, "agent", PASSWORD).status_code == 303


def test_four_failures_do_not_lock(world: World) -> None:
    client = world.client()
    for _ in range(4):
        assert login(client, "agent", "salah-sekali-sandinya").status_code == 401
    assert login(client, "agent", PASSWORD).status_code == 303


@pytest.mark.parametrize("token", [None, "forged-token-forged-token-forged-token-xx"])
def test_a_login_without_the_pre_session_csrf_token_is_refused(world: World,
                                                               token: str | None) -> None:
    client = world.client()
    client.get("/admin/login")
    data = {"name": "agent", "password": PASSWORD}
    if token is not None:
        data["csrf"] = token
    response = client.post("/admin/login", data=data)
    assert response.status_code == 403
    assert world.count(models.admin_sessions) == 0


def test_a_session_ends_after_eight_idle_hours(world: World) -> None:
    user = world.users.get("agent")
    assert user is not None
    start = models.utcnow()
    token, _ = world.users.start_session(user, start)
    later = start + SESSION_IDLE - dt.timedelta(minutes=1)
    assert world.users.session(token, later) is not None  # used: the idle time restarts
    last = later + SESSION_IDLE - dt.timedelta(minutes=1)
    assert world.users.session(token, last) is not None  # 16 hours after login: still on
    assert world.users.session(token, last + SESSION_IDLE + dt.timedelta(seconds=1)) is None
    assert world.count(models.admin_sessions) == 0  # an expired session is deleted

    client = world.login("agent")
    assert client.get("/admin/").status_code == 200
    with world.db.engine.begin() as conn:
        conn.execute(update(models.admin_sessions).values(
            expires_at=models.utcnow() - dt.timedelta(seconds=1)))
    response = client.get("/admin/")
    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert world.count(models.admin_sessions) == 0


def test_logout_deletes_the_session(world: World) -> None:
    client = world.login("agent")
    token = client.cookies.get("garda_admin")
    response = post(client, "/admin/logout")
    assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert world.count(models.admin_sessions) == 0
    stale = world.client()
    stale.cookies.set("garda_admin", token, domain="testserver", path="/admin")
    assert stale.get("/admin/").headers["location"] == "/admin/login"


@pytest.mark.servers
def test_users_sessions_and_lockout_on_postgresql(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.upgrade()
    users = Users(db.engine)
    users.add("Agent", PASSWORD, "agent")
    user = users.authenticate("agent", PASSWORD)
    assert user is not None and user.name == "agent"
    token, session = users.start_session(user)
    found = users.session(token)
    assert found is not None and found.csrf == session.csrf and found.user.role == "agent"
    for _ in range(5):
        assert users.authenticate("agent", "salah-sekali-sandinya") is None
    assert users.authenticate("agent", PASSWORD) is None
    users.set_disabled("agent", True)
    assert users.session(token) is None
    db.dispose()


# -- the role matrix --------------------------------------------------------------------

EVERYONE = set(ROLES)
AGENTS = {"agent", "supervisor", "admin"}
LEADS = {"supervisor", "admin"}
# The brief's matrix, written out independently of the code's table.
MATRIX = {
    "view_queue": EVERYONE, "view_ticket": EVERYONE, "view_fact_checks": EVERYONE,
    "claim": AGENTS, "release_own": AGENTS, "reply": AGENTS, "resolve": AGENTS,
    "hand_back": AGENTS,
    "reply_any": LEADS, "resolve_any": LEADS, "hand_back_any": LEADS,
    "release_other": LEADS, "reveal": LEADS,
    "manage_users": {"admin"},
    "view_dashboard": EVERYONE, "export_dashboard": EVERYONE,
    "view_unanswered": {"trainer", "supervisor", "admin"},
    "label": {"trainer", "supervisor", "admin"}, "relabel": AGENTS,
    "view_content": EVERYONE, "propose_content": {"trainer", "supervisor", "admin"},
    "approve_content": LEADS, "reject_content": LEADS, "rollback_content": LEADS,
}


def test_the_permission_table_is_the_agreed_matrix() -> None:
    # Every action of every page: a new action must be added here, on purpose.
    assert {action: set(roles) for action, roles in console.PERMISSIONS.items()} == MATRIX


@dataclasses.dataclass(frozen=True)
class Case:
    action: str          # the permission it needs (and that a refusal logs)
    method: str
    path: str            # "{id}": the ticket set up for it
    holder: str | None   # who holds the ticket's claim first ("self": the acting user)
    data: dict[str, str]
    took_effect: Callable[[World, int, str, httpx.Response], bool]
    # Makes what the case acts on instead of the ticket; its id is "{id}" (content versions).
    setup: Callable[[World], int] | None = None


def _status(status: str) -> Callable[[World, int, str, httpx.Response], bool]:
    return lambda w, t, user, r: w.tickets.get(t).status == status


def _replied(w: World, t: int, user: str, r: httpx.Response) -> bool:
    return any(row.ticket_id == t for row in w.outbox_by(user))


def _released_by(w: World, t: int, user: str, r: httpx.Response) -> bool:
    return w.tickets.get(t).status == "open" and events(w, t)[-1][:2] == (user, "released")


CASES = [
    Case("view_queue", "GET", "/admin/", None, {},
         lambda w, t, u, r: f'data-ticket="{t}"' in r.text),
    Case("view_queue", "GET", "/admin/queue/rows", None, {},
         lambda w, t, u, r: f'data-ticket="{t}"' in r.text),
    Case("view_ticket", "GET", "/admin/tickets/{id}", None, {},
         lambda w, t, u, r: "[nik/kk]" in r.text),
    Case("view_fact_checks", "GET", "/admin/fact-checks", None, {},
         lambda w, t, u, r: "Klaim untuk tim cek fakta" in r.text),
    Case("claim", "POST", "/admin/tickets/{id}/claim", None, {},
         lambda w, t, u, r: w.tickets.get(t).assignee == u),
    Case("release_own", "POST", "/admin/tickets/{id}/release", "self", {}, _released_by),
    Case("release_other", "POST", "/admin/tickets/{id}/release", "olga", {}, _released_by),
    Case("reply", "POST", "/admin/tickets/{id}/reply", "self", {"text": "Baik, kami bantu."},
         _replied),
    Case("reply_any", "POST", "/admin/tickets/{id}/reply", "olga",
         {"text": "Baik, kami bantu."}, _replied),
    Case("resolve", "POST", "/admin/tickets/{id}/resolve", "self", {"note": "selesai"},
         _status("resolved")),
    Case("resolve_any", "POST", "/admin/tickets/{id}/resolve", "olga", {},
         _status("resolved")),
    Case("hand_back", "POST", "/admin/tickets/{id}/hand_back", "self", {},
         _status("handed_back")),
    Case("hand_back_any", "POST", "/admin/tickets/{id}/hand_back", "olga", {},
         _status("handed_back")),
    Case("reveal", "POST", "/admin/tickets/{id}/reveal", None, {},
         lambda w, t, u, r: (u, "revealed", None) in events(w, t) and NIK in r.text),
    Case("manage_users", "GET", "/admin/users", None, {},
         lambda w, t, u, r: 'data-user="olga"' in r.text),
    Case("manage_users", "POST", "/admin/users", None,
         {"op": "add", "name": "baru", "role": "trainer", "password": PASSWORD},
         lambda w, t, u, r: w.users.get("baru") is not None),
    Case("view_dashboard", "GET", "/admin/dashboard", None, {},
         lambda w, t, u, r: 'id="total-messages"' in r.text),
    Case("export_dashboard", "GET", "/admin/dashboard.csv?section=routes", None, {},
         lambda w, t, u, r: r.headers.get("content-type", "").startswith("text/csv")
         and r.text.startswith("rute,")),
    Case("view_unanswered", "GET", "/admin/dashboard.csv?section=unanswered", None, {},
         lambda w, t, u, r: r.headers.get("content-type", "").startswith("text/csv")
         and r.text.startswith("kelompok,")),
    Case("label", "GET", "/admin/training", None, {},
         lambda w, t, u, r: 'id="summary"' in r.text),
    Case("relabel", "POST", "/admin/tickets/{id}/relabel", None, {"intent": "faq/pengaduan"},
         lambda w, t, u, r: _relabelled(w, t)),
    Case("view_content", "GET", "/admin/content", None, {},
         lambda w, t, u, r: 'data-key="utter_greet"' in r.text),
    Case("view_content", "GET", "/admin/content/answer/utter_greet", None, {},
         lambda w, t, u, r: 'id="served"' in r.text),
    Case("propose_content", "POST", "/admin/content/propose", None,
         {"kind": "answer", "key": "utter_goodbye", "text": "Sampai jumpa.", "based_on": "0"},
         lambda w, t, u, r: _content_done(w, "utter_goodbye", u, "proposed")),
    Case("approve_content", "POST", "/admin/content/versions/{id}/approve", None, {},
         lambda w, t, u, r: _content_done(w, "utter_thanks", u, "approved"),
         lambda w: _proposal(w, "utter_thanks")),
    Case("reject_content", "POST", "/admin/content/versions/{id}/reject", None,
         {"reason": "belum tepat"},
         lambda w, t, u, r: _content_done(w, "utter_bot_challenge", u, "rejected"),
         lambda w: _proposal(w, "utter_bot_challenge")),
    Case("rollback_content", "POST", "/admin/content/rollback", None,
         {"kind": "answer", "key": "utter_capabilities", "to": "0", "mode": "now",
          "reason": "darurat"},
         lambda w, t, u, r: _content_done(w, "utter_capabilities", u, "rolled_back"),
         lambda w: _proposal(w, "utter_capabilities", approved=True)),
]


def _proposal(w: World, key: str, approved: bool = False) -> int:
    """A proposal by someone who is none of the acting users (approved: served now)."""
    versions = ContentVersions(w.db.engine)
    proposal = versions.propose("answer", key, f"Teks baru {key}.", "olga")
    if approved:
        versions.approve(proposal.id or 0, "pengulas")
    return proposal.id or 0


def _content_done(w: World, key: str, user: str, action: str) -> bool:
    last = ContentVersions(w.db.engine).audit("answer", key)[-1:]
    return [(a.actor, a.action) for a in last] == [(user, action)]


def _relabelled(w: World, t: int) -> bool:
    """The message that opened ticket ``t`` is in the trainers' inbox as a re-label."""
    opening = w.tickets.get(t).inbound_id
    with w.db.engine.connect() as conn:
        return conn.execute(select(models.review_items.c.suggested_intent).where(
            models.review_items.c.inbound_id == opening,
            models.review_items.c.source == "relabel")).scalar() == "faq/pengaduan"


@pytest.fixture(scope="module")
def matrix_world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    w = World(tmp_path_factory.mktemp("matrix"))
    for role in ROLES:
        w.add_user(role, role)
    w.add_user("olga", "agent")
    clients = {role: w.login(role) for role in ROLES}
    return w, clients


def test_every_permission_has_a_case() -> None:
    assert {case.action for case in CASES} == set(MATRIX)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method}-{c.action}-{c.path}")
def test_role_matrix(matrix_world: Any, case: Case, role: str,
                     caplog: pytest.LogCaptureFixture) -> None:
    world, clients = matrix_world
    client = clients[role]
    with world.db.engine.begin() as conn:
        conn.execute(models.admin_users.delete().where(models.admin_users.c.name == "baru"))
    ticket = world.escalate(f"NIK saya {NIK}, tolong dibantu",
                            "fact_check" if "fact" in case.action else "human_request")
    if case.holder is not None:
        holder = role if case.holder == "self" else case.holder
        assert world.tickets.claim(ticket.id, holder).won
    target = case.setup(world) if case.setup is not None else ticket.id
    path = case.path.replace("{id}", str(target))
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    if case.method == "GET":
        response = client.get(path)
    else:
        response = client.post(path, data={"csrf": csrf(client), **case.data})
    denial = f"admin denied: user={role} role={role} action={case.action}"
    if role in MATRIX[case.action]:
        assert response.status_code == (200 if case.method == "GET" or case.action == "reveal"
                                        else 303), response.text
        assert case.took_effect(world, target, role, response)
        assert denial not in caplog.text
    else:
        assert response.status_code == 403
        assert console.DENIED in response.text
        assert not case.took_effect(world, target, role, response)
        assert [r.levelno for r in caplog.records if r.getMessage() == denial] == [
            logging.WARNING]


def test_an_agent_must_claim_before_replying_to_an_open_ticket(world: World,
                                                              caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    ticket = world.escalate()
    client = world.login("agent")
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    response = post(client, f"/admin/tickets/{ticket.id}/reply", text="halo")
    assert response.status_code == 403
    assert "admin denied: user=agent role=agent action=reply_any" in caplog.text
    assert world.outbox_by("agent") == []


def test_pages_need_a_session(world: World) -> None:
    ticket = world.escalate()
    client = world.client()
    for path in ("/admin/", "/admin/fact-checks", f"/admin/tickets/{ticket.id}",
                 "/admin/users"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login"
    assert client.get("/admin/queue/rows").status_code == 401
    before = world.state()
    response = client.post(f"/admin/tickets/{ticket.id}/claim", data={"csrf": "x"})
    assert response.status_code == 403
    assert world.state() == before


# -- CSRF -------------------------------------------------------------------------------

CSRF_POSTS = [
    ("/admin/tickets/{id}/claim", None, {}),
    ("/admin/tickets/{id}/release", "self", {}),
    ("/admin/tickets/{id}/resolve", "self", {"note": "ok"}),
    ("/admin/tickets/{id}/hand_back", "self", {}),
    ("/admin/tickets/{id}/reply", "self", {"text": "Baik, kami bantu."}),
    ("/admin/tickets/{id}/reveal", None, {}),
    ("/admin/users", None, {"op": "add", "name": "baru", "role": "agent",
                            "password": PASSWORD}),
    ("/admin/logout", None, {}),
]


@pytest.mark.parametrize("path, holder, data", CSRF_POSTS, ids=[p[0] for p in CSRF_POSTS])
def test_a_post_without_the_right_csrf_token_is_refused_and_changes_nothing(
        world: World, path: str, holder: str | None, data: dict[str, str]) -> None:
    ticket = world.escalate()
    if holder:
        assert world.tickets.claim(ticket.id, "admin").won
    client = world.login("admin")
    path = path.replace("{id}", str(ticket.id))
    token = csrf(client)
    before = world.state()
    missing = client.post(path, data=data)
    wrong = client.post(path, data={**data, "csrf": token[:-2] + "xx"})
    other = world.login("supervisor")  # another session's token is wrong here too
    borrowed = client.post(path, data={**data, "csrf": csrf(other)})
    assert [missing.status_code, wrong.status_code, borrowed.status_code] == [403, 403, 403]
    assert console.FORM_EXPIRED in wrong.text
    after = world.state()
    assert after[:4] == before[:4] and after[5] == before[5]
    # The same request with the session's token does what it says.
    done = client.post(path, data={**data, "csrf": token})
    assert done.status_code in (200, 303)
    assert world.state() != after


# -- the conversation view --------------------------------------------------------------


def test_personal_data_is_masked_and_revealed_only_to_supervisors_and_admins(
        world: World) -> None:
    text = f"NIK saya {NIK}, hp {PHONE}, email {EMAIL}. Tolong KK saya diperbaiki."
    ticket = world.escalate(text, "privacy")
    for role in ("trainer", "agent"):
        client = world.login(role)
        page = client.get(f"/admin/tickets/{ticket.id}")
        assert page.status_code == 200
        assert "Tolong KK saya diperbaiki" in page.text
        for secret in (NIK, PHONE, EMAIL, "ani.warga"):
            assert secret not in page.text
        assert "[nik/kk]" in page.text and "[telepon]" in page.text and "[email]" in page.text
        assert post(client, f"/admin/tickets/{ticket.id}/reveal").status_code == 403
    assert "revealed" not in [action for _, action, _ in events(world, ticket.id)]

    supervisor = world.login("supervisor")
    masked = supervisor.get(f"/admin/tickets/{ticket.id}")
    assert NIK not in masked.text  # masked until asked for
    shown = post(supervisor, f"/admin/tickets/{ticket.id}/reveal")
    assert shown.status_code == 200
    for secret in (NIK, PHONE, EMAIL):
        assert secret in shown.text
    assert events(world, ticket.id)[-1] == ("supervisor", "revealed", None)
    again = supervisor.get(f"/admin/tickets/{ticket.id}")
    assert NIK not in again.text  # a reveal is one page, not a mode


def test_the_conversation_shows_every_message_and_reply_in_order_marked_by_source(
        world: World) -> None:
    ticket = world.escalate("pertama: saya butuh bantuan", chat="c-order")
    world.escalate("kedua: halo? masih di sana?", chat="c-order")
    client = world.login("agent")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    assert post(client, f"/admin/tickets/{ticket.id}/reply",
                text="Halo, saya Agent dari dinas.").status_code == 303
    page = client.get(f"/admin/tickets/{ticket.id}").text
    lines = re.findall(r'<li class="(\w+)" data-source="\w+"><span class="meta">([^<]*)</span>'
                       r"([^<]*)</li>", page)
    assert [(source, text) for source, _, text in lines] == [
        ("citizen", "pertama: saya butuh bantuan"), ("bot", "Mohon tunggu sebentar."),
        ("citizen", "kedua: halo? masih di sana?"), ("bot", "Mohon tunggu sebentar."),
        ("admin", "Halo, saya Agent dari dinas.")]
    assert lines[-1][1].startswith("Admin agent")
    assert "Garda (bot)" in lines[1][1] and "Warga" in lines[0][1]


def test_message_text_is_escaped(world: World) -> None:
    ticket = world.escalate('<script>alert("x")</script> tolong')
    page = world.login("agent").get(f"/admin/tickets/{ticket.id}")
    assert '<script>alert("x")</script>' not in page.text
    assert "&lt;script&gt;" in page.text
    assert "nonce-" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


# -- claiming ---------------------------------------------------------------------------


def test_of_agents_claiming_at_once_one_wins_and_the_others_are_told_who(
        world: World) -> None:
    agents = ["agent", "olga", "supervisor", "admin"]
    clients = {name: world.login(name) for name in agents}
    tokens = {name: csrf(client) for name, client in clients.items()}
    ticket = world.escalate()
    start = threading.Barrier(len(agents))

    def claim(name: str) -> tuple[str, httpx.Response]:
        start.wait()
        return name, clients[name].post(f"/admin/tickets/{ticket.id}/claim",
                                        data={"csrf": tokens[name]})

    with concurrent.futures.ThreadPoolExecutor(len(agents)) as pool:
        results = dict(pool.map(claim, agents))
    winners = [name for name, r in results.items() if r.status_code == 303]
    assert len(winners) == 1
    winner = winners[0]
    for name, response in results.items():
        if name != winner:
            assert response.status_code == 409
            assert console.CLAIMED_BY.format(holder=winner) in response.text
    assert world.tickets.get(ticket.id).assignee == winner
    assert [actor for actor, action, _ in events(world, ticket.id) if action == "claimed"] == [
        winner]


# -- replying ---------------------------------------------------------------------------


def test_a_reply_goes_to_the_outbox_with_its_author_and_pushes_the_conversation(
        world: World) -> None:
    ticket = world.escalate("tolong bantu saya", chat="c-reply")
    client = world.login("agent")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    response = post(client, f"/admin/tickets/{ticket.id}/reply",
                    text="  Selamat siang, kami bantu.\r\nMohon tunggu.  ")
    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/tickets/{ticket.id}?m=replied"
    rows = world.outbox_by("agent")
    assert len(rows) == 1
    row = rows[0]
    assert (row.ticket_id, row.inbound_id, row.status, row.channel) == (
        ticket.id, None, "pending", "test")
    assert '"Selamat siang, kami bantu.\\nMohon tunggu."' in row.payload
    assert '"chat_id": "c-reply"' in row.payload
    reply, to = world.channel.rendered[-1]
    assert reply == "Selamat siang, kami bantu.\nMohon tunggu."
    assert (to.chat_id, to.text, to.callback_id) == ("c-reply", "tolong bantu saya", None)
    assert world.queue.pushed == [ticket.conversation_id]
    assert events(world, ticket.id)[-1][:2] == ("agent", "replied")
    assert console.NOTICES["replied"] in client.get(response.headers["location"]).text


@pytest.mark.parametrize("text", ["", "   ", "\r\n\t "])
def test_an_empty_reply_is_refused(world: World, text: str) -> None:
    ticket = world.escalate()
    client = world.login("agent")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    before = world.state()
    response = post(client, f"/admin/tickets/{ticket.id}/reply", text=text)
    assert response.status_code == 400
    assert console.EMPTY_REPLY in response.text
    assert world.state() == before and world.queue.pushed == []


def test_a_reply_over_4000_characters_is_refused_and_kept_in_the_box(world: World) -> None:
    ticket = world.escalate()
    client = world.login("agent")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    long = "a" * 4001
    response = post(client, f"/admin/tickets/{ticket.id}/reply", text=long)
    assert response.status_code == 400
    assert "4.001 karakter" in response.text and long in response.text
    assert world.outbox_by("agent") == [] and world.queue.pushed == []
    assert post(client, f"/admin/tickets/{ticket.id}/reply", text="b" * 4000
                ).status_code == 303
    assert len(world.outbox_by("agent")) == 1


def test_approved_quick_replies_are_offered_by_title_and_can_be_sent(world: World) -> None:
    content = Content.load()
    name = next(n for n in sorted(content.responses) if n.startswith("utter_")
                and content.title(n))
    ticket = world.escalate()
    client = world.login("agent")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    page = client.get(f"/admin/tickets/{ticket.id}").text
    assert f'<option value="{name}"' in page
    options = re.findall(r'<option value="(\w+)" data-text=', page)
    assert options and all(o.startswith("utter_") for o in options)
    # Without JavaScript the box stays empty: the chosen reply is sent.
    assert post(client, f"/admin/tickets/{ticket.id}/reply", text="", quick=name
                ).status_code == 303
    assert world.channel.rendered[-1][0] == content.render(name)


def test_a_reply_to_a_closed_ticket_is_refused(world: World) -> None:
    ticket = world.escalate()
    world.tickets.resolve(ticket.id, "supervisor")
    client = world.login("supervisor")
    response = post(client, f"/admin/tickets/{ticket.id}/reply", text="halo")
    assert response.status_code == 409 and console.CLOSED in response.text
    assert world.outbox_by("supervisor") == []


# -- closing, releasing -----------------------------------------------------------------


@pytest.mark.parametrize("action, status", [("resolve", "resolved"),
                                            ("hand_back", "handed_back")])
def test_resolve_and_hand_back_close_the_ticket_with_the_note(world: World, action: str,
                                                              status: str) -> None:
    ticket = world.escalate()
    client = world.login("agent")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    assert post(client, f"/admin/tickets/{ticket.id}/{action}",
                note="warga sudah dibantu").status_code == 303
    closed = world.tickets.get(ticket.id)
    assert closed.status == status and closed.closed_at is not None
    assert events(world, ticket.id)[-1] == ("agent", status, "warga sudah dibantu")
    assert world.tickets.active(ticket.conversation_id) is None
    assert f'data-ticket="{ticket.id}"' not in client.get("/admin/queue/rows").text
    again = post(client, f"/admin/tickets/{ticket.id}/{action}")
    assert again.status_code == 409 and console.CLOSED in again.text


def test_a_supervisor_may_take_a_claim_away_and_it_is_logged_as_theirs(world: World) -> None:
    ticket = world.escalate()
    assert world.tickets.claim(ticket.id, "olga").won
    assert post(world.login("supervisor"), f"/admin/tickets/{ticket.id}/release"
                ).status_code == 303
    assert world.tickets.get(ticket.id).status == "open"
    assert events(world, ticket.id)[-1] == ("supervisor", "released", "klaim olga")


def console_of(world: World) -> console.Console:
    """The app's Console (its routes are its bound methods)."""
    mount = next(r for r in world.app.routes if isinstance(r, Mount) and r.path == "/admin")
    found = mount.routes[0].endpoint.__self__  # type: ignore[attr-defined]
    assert isinstance(found, console.Console)
    return found


@pytest.mark.parametrize("user, action, seen, meanwhile", [
    ("agent", "resolve", "agent", "olga"),       # lost the claim to a supervisor + olga
    ("agent", "hand_back", "agent", "olga"),
    ("agent", "release", "agent", "olga"),
    ("supervisor", "release", "olga", "agent"),  # the override takes only the claim seen
])
def test_a_move_made_on_a_ticket_that_changed_meanwhile_changes_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch, user: str, action: str, seen: str,
        meanwhile: str) -> None:
    """The holder rule is checked on the ticket as the user saw it; the move itself is
    conditional on it, so a claim that changed hands in between is left alone."""
    ticket = world.escalate()
    assert world.tickets.claim(ticket.id, seen).won
    client = world.login(user)
    token = csrf(client)
    tickets = console_of(world).tickets
    real_get = tickets.get

    def seen_then_changed(ticket_id: int) -> Ticket:
        found = real_get(ticket_id)  # what the permission check sees
        assert world.tickets.release(ticket_id, "admin", holder=seen).moved
        assert world.tickets.claim(ticket_id, meanwhile).won
        monkeypatch.setattr(tickets, "get", real_get)
        return found

    monkeypatch.setattr(tickets, "get", seen_then_changed)
    before = events(world, ticket.id)
    response = client.post(f"/admin/tickets/{ticket.id}/{action}", data={"csrf": token})
    assert response.status_code == 409 and console.CHANGED in response.text
    now = world.tickets.get(ticket.id)
    assert (now.status, now.assignee) == ("claimed", meanwhile)
    assert events(world, ticket.id) == [*before, ("admin", "released", f"klaim {seen}"),
                                        (meanwhile, "claimed", None)]


@pytest.mark.parametrize("moves", [("resolve", "hand_back"), ("resolve", "resolve"),
                                   ("hand_back", "hand_back")])
def test_the_holder_and_a_supervisor_closing_at_once_close_it_once(
        world: World, moves: tuple[str, str]) -> None:
    names = ("agent", "supervisor")
    clients = {name: world.login(name) for name in names}
    tokens = {name: csrf(client) for name, client in clients.items()}

    def close(ticket_id: int, start: threading.Barrier, name: str, move: str
              ) -> httpx.Response:
        start.wait()
        return clients[name].post(f"/admin/tickets/{ticket_id}/{move}",
                                  data={"csrf": tokens[name], "note": name})

    for _ in range(3):
        ticket = world.escalate()
        assert world.tickets.claim(ticket.id, "agent").won
        start = threading.Barrier(2)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = {name: pool.submit(close, ticket.id, start, name, move)
                    for name, move in zip(names, moves, strict=True)}
            results = {name: job.result() for name, job in jobs.items()}
        assert sorted(r.status_code for r in results.values()) == [303, 409]
        winner = next(name for name, r in results.items() if r.status_code == 303)
        closing = [(actor, action, detail) for actor, action, detail in events(world, ticket.id)
                   if action in ("resolved", "handed_back")]
        assert len(closing) == 1 and closing[0][0] == winner and closing[0][2] == winner
        loser = results[names[1 - names.index(winner)]]
        assert console.CLOSED in loser.text or console.CHANGED in loser.text


def test_releasing_an_open_ticket_says_it_is_not_claimed(world: World) -> None:
    ticket = world.escalate()
    response = post(world.login("agent"), f"/admin/tickets/{ticket.id}/release")
    assert response.status_code == 409 and console.NOT_CLAIMED in response.text


# -- the queue and the fact-check list --------------------------------------------------


def test_the_queue_is_ordered_and_marks_overdue_tickets(world: World) -> None:
    later = world.escalate(category="human_request")
    urgent = world.escalate(category="emergency")
    middle = world.escalate(category="privacy")
    assert world.tickets.claim(middle.id, "olga").won
    with world.db.engine.begin() as conn:
        conn.execute(update(models.tickets).where(models.tickets.c.id == later.id).values(
            claim_by=models.utcnow() - dt.timedelta(minutes=3)))
    client = world.login("trainer")
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "fetch(" in page.text and "/admin/queue/rows" in page.text  # refreshes itself
    # ... at once on a live event (an EventSource on /admin/events, allowed by the CSP's
    # connect-src 'self'), and every 30 s behind it; without JavaScript, every 30 s too.
    assert 'new EventSource(box.dataset.events)' in page.text
    assert 'data-events="/admin/events"' in page.text
    assert "setInterval(reload, 30000)" in page.text
    assert '<meta http-equiv="refresh" content="30">' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert "nonce-" in page.headers["content-security-policy"]
    rows = client.get("/admin/queue/rows").text
    order = [int(i) for i in re.findall(r'data-ticket="(\d+)"', rows)]
    assert order == [urgent.id, middle.id, later.id]
    overdue = re.findall(r'data-ticket="(\d+)" data-status="\w+" class="overdue"', rows)
    assert overdue == [str(later.id)]
    assert "TERLAMBAT" in rows and "olga" in rows and "<html" not in rows


def test_the_fact_check_list_shows_only_fact_check_tickets_masked(world: World) -> None:
    claim = world.escalate(f"katanya bansos cair lewat wa {PHONE}, benarkah?", "fact_check")
    other = world.escalate("saya mau bicara dengan petugas", "human_request")
    page = world.login("trainer").get("/admin/fact-checks")
    assert page.status_code == 200
    ids = [int(i) for i in re.findall(r'data-ticket="(\d+)"', page.text)]
    assert ids == [claim.id] and other.id not in ids
    assert "katanya bansos cair lewat wa [telepon]" in page.text and PHONE not in page.text


# -- users ------------------------------------------------------------------------------


def test_an_admin_adds_users_sets_roles_and_disables_them(world: World) -> None:
    admin = world.login("admin")
    assert post(admin, "/admin/users", op="add", name="Dewi", role="agent",
                password=PASSWORD).status_code == 303
    dewi = world.users.get("dewi")
    assert dewi is not None and dewi.role == "agent"
    short = post(admin, "/admin/users", op="add", name="eka", role="agent", password="pendek")
    assert short.status_code == 400 and world.users.get("eka") is None
    bad_role = post(admin, "/admin/users", op="add", name="eka", role="root",
                    password=PASSWORD)
    assert bad_role.status_code == 400 and world.users.get("eka") is None
    dewi_client = world.login("dewi")
    assert post(admin, "/admin/users", op="set_role", name="dewi", role="supervisor"
                ).status_code == 303
    assert 'data-user="dewi" data-role="supervisor"' in admin.get("/admin/users").text
    assert post(admin, "/admin/users", op="disable", name="dewi").status_code == 303
    assert dewi_client.get("/admin/").headers["location"] == "/admin/login"
    assert login(world.client(), "dewi", PASSWORD).status_code == 401
    mine = post(admin, "/admin/users", op="set_role", name="admin", role="trainer")
    assert mine.status_code == 400 and world.users.get("admin").role == "admin"


# -- logs -------------------------------------------------------------------------------


def test_no_password_token_or_citizen_text_is_logged(world: World,
                                                     caplog: pytest.LogCaptureFixture
                                                     ) -> None:
    caplog.set_level(logging.DEBUG)
    ticket = world.escalate(f"rahasia warga {NIK}")
    login(world.client(), "agent", "salah-sekali-sandinya")
    client = world.login("agent")
    token = client.cookies.get("garda_admin")
    assert post(client, f"/admin/tickets/{ticket.id}/claim").status_code == 303
    assert post(client, f"/admin/tickets/{ticket.id}/reply", text="balasan rahasia petugas"
                ).status_code == 303
    post(client, f"/admin/tickets/{ticket.id}/reveal")
    logged = caplog.text
    assert "admin login" in logged and "admin reply" in logged  # something was logged
    for secret in (PASSWORD, "salah-sekali-sandinya", token, "rahasia warga", NIK,
                   "balasan rahasia"):
        assert secret not in logged


# -- the CLI ----------------------------------------------------------------------------


def garda_admin(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "GARDA_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "bot.cli", "admin", *args], input=stdin,
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_the_cli_adds_users_and_sets_roles(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    added = garda_admin(url, "add-user", "Sari", "--role", "supervisor",
                        stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    users = Users(Database(url).engine)
    assert users.authenticate("sari", PASSWORD) is not None
    assert users.get("sari").role == "supervisor"

    assert garda_admin(url, "set-role", "sari", "agent").returncode == 0
    assert users.get("sari").role == "agent"

    again = garda_admin(url, "add-user", "sari", "--role", "agent", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "exists" in again.stderr
    missing = garda_admin(url, "set-role", "nobody", "agent")
    assert missing.returncode == 1 and "no user" in missing.stderr


@pytest.mark.parametrize("args, stdin, says", [
    (("add-user", "budi", "--role", "boss"), PASSWORD + "\n", "unknown role"),
    (("add-user", "budi", "--role", "agent"), "pendek\n", "at least 12 characters"),
    (("add-user", "budi", "--role", "agent"), "", "at least 12 characters"),
    (("set-role", "sari", "root"), "", "unknown role"),
])
def test_the_cli_refuses_a_bad_role_or_short_password_with_exit_code_2(
        tmp_path: Path, args: tuple[str, ...], stdin: str, says: str) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = Database(url)
    db.upgrade()
    Users(db.engine).add("sari", PASSWORD, "agent")
    result = garda_admin(url, *args, stdin=stdin)
    assert result.returncode == 2
    assert says in result.stderr
    users = Users(db.engine)
    assert users.get("budi") is None and users.get("sari").role == "agent"
