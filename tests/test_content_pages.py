"""The console's content pages (/admin/content): proposals shown as diffs, approval by a
different person only, refusals logged, conflicts, rollback, and an approval reaching
citizens through a running worker without a restart.

In process over HTTPS (the cookies are Secure), on SQLite and, where the servers are
available, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from test_runtime import RecordingChannel, make_runtime, msg, until

from bot.admin import content_pages
from bot.admin.users import Users
from bot.brain.pipeline import Brain
from bot.config import Settings
from bot.content import Content
from bot.content_versions import ContentVersions
from bot.gateway.app import create_app
from bot.gateway.runtime import BrainRunner, Runtime
from bot.store import models
from bot.store.db import Database
from bot.store.queue import InProcessQueue

PASSWORD = "kata-sandi-yang-panjang"
KTP = "utter_faq/ktp_baru"
PAGE = f"/admin/content/answer/{KTP}"
NEW_KTP = "KTP-el baru dibuat di {disdukcapil_address}. Layanan ini gratis."
USERS = (("sari", "trainer"), ("olga", "agent"), ("budi", "supervisor"), ("ani", "admin"))


class Console:
    """The console over its own database, with one user per role."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.db.upgrade()
        settings = Settings(database_url=url)
        self.runtime = Runtime(settings, self.db, InProcessQueue(), {}, role="gateway")
        self.app = create_app(settings, self.runtime)
        users = Users(self.db.engine)
        for name, role in USERS:
            users.add(name, PASSWORD, role)
        self.versions = ContentVersions(self.db.engine)

    def login(self, name: str) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        page = client.get("/admin/login")
        response = client.post("/admin/login", data={
            "csrf": field(page.text, "csrf"), "name": name, "password": PASSWORD})
        assert response.status_code == 303, response.text
        return client


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no {name} field on the page"
    return found.group(1)


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    token = field(client.get("/admin/content").text, "csrf")
    return client.post(path, data={"csrf": token, **data})


def propose(client: TestClient, text: str, reason: str = "", based_on: str | None = None,
            key: str = KTP, kind: str = "answer") -> httpx.Response:
    page = client.get(f"/admin/content/{kind}/{key}")
    assert page.status_code == 200, page.text
    return client.post("/admin/content/propose", data={
        "csrf": field(page.text, "csrf"), "kind": kind, "key": key, "text": text,
        "reason": reason, "based_on": based_on or field(page.text, "based_on")})


def denial(caplog: pytest.LogCaptureFixture, user: str, role: str, action: str) -> int:
    line = f"admin denied: user={user} role={role} action={action}"
    return sum(r.getMessage() == line and r.levelno == logging.WARNING
               for r in caplog.records)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def console(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = (f"sqlite:///{tmp_path / 'console.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    made = Console(url)
    yield made
    made.db.dispose()


def test_a_change_is_shown_as_a_diff_and_served_only_after_another_person_approves_it(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    content = Content.load()
    before = content.render(KTP)
    ani, budi = console.login("ani"), console.login("budi")
    response = propose(ani, NEW_KTP, "alamat baru")
    assert response.status_code == 303
    assert response.headers["location"] == f"{PAGE}?m=proposed"
    proposal = console.versions.pending()[0]
    assert (proposal.proposed_by, proposal.version, proposal.based_on) == ("ani", 1, 0)

    own_page = ani.get(PAGE).text
    assert content_pages.NOTICES["proposed"] not in own_page  # no ?m=
    assert f'id="proposal-{proposal.id}"' in own_page and 'data-diff="v0-v1"' in own_page
    assert "Ini usulan Anda" in own_page
    assert f"/content/versions/{proposal.id}/approve" not in own_page  # hidden for the author
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    refused = post(ani, f"/admin/content/versions/{proposal.id}/approve")
    assert refused.status_code == 403 and content_pages.OWN_APPROVAL in refused.text
    assert denial(caplog, "ani", "admin", "approve_own_content") == 1
    assert console.versions.get(proposal.id).status == "proposed"
    assert ContentVersions(console.db.engine).served("answer", KTP).version == 0

    other_page = budi.get(PAGE).text
    assert f"/content/versions/{proposal.id}/approve" in other_page
    approved = post(budi, f"/admin/content/versions/{proposal.id}/approve")
    assert approved.status_code == 303 and approved.headers["location"].endswith("m=approved")
    served = console.versions.served("answer", KTP)
    assert (served.version, served.decided_by) == (1, "budi")
    brain = Brain(None, content).follow_approvals(console.db.url, poll_seconds=0)
    assert brain.content.render(KTP) == NEW_KTP.format(**content.settings) != before
    page = budi.get(f"{PAGE}?m=approved").text
    assert content_pages.NOTICES["approved"] in page
    assert 'id="served" data-version="1"' in page
    assert re.search(r"ani</td><td>mengusulkan</td><td>v1</td><td>alamat baru", page)
    assert re.search(r"budi</td><td>menyetujui</td><td>v1</td>", page)
    brain._approved.engine.dispose()


@pytest.mark.parametrize("user, role", [("sari", "trainer"), ("olga", "agent")])
def test_roles_without_approval_see_no_buttons_and_are_refused(
        console: Console, caplog: pytest.LogCaptureFixture, user: str, role: str) -> None:
    proposal = console.versions.propose("answer", KTP, NEW_KTP, "budi")
    client = console.login(user)
    page = client.get(PAGE).text
    assert f"/content/versions/{proposal.id}/approve" not in page
    assert f"/content/versions/{proposal.id}/reject" not in page
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    for action in ("approve", "reject"):
        response = post(client, f"/admin/content/versions/{proposal.id}/{action}",
                        reason="tidak")
        assert response.status_code == 403
        assert denial(caplog, user, role, f"{action}_content") == 1
    assert console.versions.get(proposal.id).status == "proposed"
    assert ('id="propose"' in page) == (role == "trainer")  # trainers propose, agents do not


def test_an_agent_cannot_propose(console: Console, caplog: pytest.LogCaptureFixture) -> None:
    client = console.login("olga")
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    response = post(client, "/admin/content/propose", kind="answer", key=KTP, text=NEW_KTP,
                    reason="", based_on="0")
    assert response.status_code == 403
    assert denial(caplog, "olga", "agent", "propose_content") == 1
    assert console.versions.pending() == []


def test_a_proposal_is_shown_escaped(console: Console) -> None:
    sari = console.login("sari")
    hostile = "Halo <script>alert('x')</script> & <b>tebal</b>\n<img src=x onerror=alert(1)>"
    assert propose(sari, hostile, reason="<i>alasan</i>").status_code == 303
    for client in (sari, console.login("budi")):
        page = client.get(PAGE).text
        for raw in ("<script>alert", "<img src=x", "<b>tebal", "<i>alasan"):
            assert raw not in page
        assert ("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; "
                "&lt;b&gt;tebal&lt;/b&gt;") in page
        assert "&lt;i&gt;alasan&lt;/i&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_text_that_breaks_the_rules_is_refused_and_kept_in_the_box(console: Console) -> None:
    sari = console.login("sari")
    response = propose(sari, "Hubungi {nomor_rahasia} sekarang.", "nomor baru")
    assert response.status_code == 400
    assert content_pages.INVALID in response.text
    assert "Isian {nomor_rahasia} tidak ada di settings/institution.yml." in response.text
    assert "Hubungi {nomor_rahasia} sekarang.</textarea>" in response.text
    assert 'value="nomor baru"' in response.text
    assert console.versions.pending() == [] and console.versions.audit() == []


def test_a_stale_proposal_is_a_conflict_and_cannot_be_approved(console: Console) -> None:
    sari, budi = console.login("sari"), console.login("budi")
    first = console.versions.propose("answer", KTP, NEW_KTP, "sari")
    second = console.versions.propose("answer", KTP, NEW_KTP + " Juga.", "ani")
    old_form = sari.get(PAGE).text  # shows v0
    assert post(budi, f"/admin/content/versions/{first.id}/approve").status_code == 303

    page = budi.get(PAGE).text
    assert "tidak dapat disetujui lagi" in page
    assert f"/content/versions/{second.id}/approve" not in page
    response = post(budi, f"/admin/content/versions/{second.id}/approve")
    assert response.status_code == 409 and content_pages.CONFLICT in response.text
    assert console.versions.get(second.id).status == "proposed"

    typed = sari.post("/admin/content/propose", data={
        "csrf": field(old_form, "csrf"), "kind": "answer", "key": KTP,
        "text": "Teks dari halaman lama.", "reason": "", "based_on": field(old_form, "based_on")})
    assert typed.status_code == 409 and "Teks dari halaman lama.</textarea>" in typed.text
    assert [v.version for v in console.versions.pending()] == [2]


def test_rejecting_needs_a_reason_and_another_person_and_withdrawing_the_author(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    budi, ani = console.login("budi"), console.login("ani")
    proposal = console.versions.propose("answer", KTP, NEW_KTP, "budi")
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    assert post(ani, f"/admin/content/versions/{proposal.id}/reject",
                reason=" ").status_code == 400
    own = post(budi, f"/admin/content/versions/{proposal.id}/reject", reason="batal")
    assert own.status_code == 403 and denial(caplog, "budi", "supervisor",
                                             "reject_own_content") == 1
    other = post(ani, f"/admin/content/versions/{proposal.id}/withdraw")
    assert other.status_code == 403 and denial(caplog, "ani", "admin",
                                               "withdraw_other_content") == 1
    assert console.versions.get(proposal.id).status == "proposed"
    assert post(ani, f"/admin/content/versions/{proposal.id}/reject",
                reason="alamat belum resmi").status_code == 303
    assert console.versions.get(proposal.id).status == "rejected"
    again = post(budi, f"/admin/content/versions/{proposal.id}/withdraw")
    assert again.status_code == 409 and content_pages.DECIDED in again.text

    mine = console.versions.propose("answer", KTP, NEW_KTP + " Lagi.", "budi")
    assert post(budi, f"/admin/content/versions/{mine.id}/withdraw").status_code == 303
    assert console.versions.get(mine.id).status == "withdrawn"
    assert console.versions.served("answer", KTP).version == 0


def test_rollback_is_proposed_by_anyone_who_proposes_and_immediate_only_for_leads(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    versions = console.versions
    versions.approve(versions.propose("answer", KTP, NEW_KTP, "sari").id, "budi")
    sari, budi = console.login("sari"), console.login("budi")
    page = sari.get(PAGE).text
    now_form = 'name="mode" value="now"'
    assert "Usulkan kembali ke v0" in page and now_form not in page
    assert now_form in budi.get(PAGE).text

    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    now = post(sari, "/admin/content/rollback", kind="answer", key=KTP, to="0", mode="now",
               reason="salah")
    assert now.status_code == 403 and denial(caplog, "sari", "trainer", "rollback_content") == 1
    proposed = post(sari, "/admin/content/rollback", kind="answer", key=KTP, to="0",
                    mode="propose")
    assert proposed.status_code == 303
    back = versions.pending()[0]
    assert (back.version, back.reason, back.proposed_by) == (2, "rollback to v0", "sari")
    assert versions.served("answer", KTP).version == 1

    no_reason = post(budi, "/admin/content/rollback", kind="answer", key=KTP, to="0",
                     mode="now", reason="")
    assert no_reason.status_code == 400 and content_pages.REASON_NEEDED in no_reason.text
    done = post(budi, "/admin/content/rollback", kind="answer", key=KTP, to="0", mode="now",
                reason="alamat lama masih berlaku")
    assert done.status_code == 303 and done.headers["location"].endswith("m=rolled_back")
    served = versions.served("answer", KTP)
    assert (served.version, served.restores) == (3, 0)
    assert versions.audit()[-1].action == "rolled_back"
    # The pending rollback proposal was written against v1: it is stale now.
    assert "tidak dapat disetujui lagi" in budi.get(PAGE).text


def test_the_list_shows_keys_with_proposals_waiting_first(console: Console) -> None:
    console.versions.propose("hoax", "air-pdam-beracun", "Informasi itu tidak benar.", "sari")
    console.versions.propose("answer", KTP, NEW_KTP, "sari")
    page = console.login("olga").get("/admin/content")
    assert page.status_code == 200 and 'href="/admin/content"' in page.text  # the nav link
    rows = re.findall(r'data-kind="(\w+)" data-key="([^"]+)" data-pending="(\d+)"', page.text)
    assert rows[:2] == [("answer", KTP, "1"), ("hoax", "air-pdam-beracun", "1")]
    assert all(pending == "0" for _, _, pending in rows[2:])
    assert len(rows) > 40


def test_unknown_content_is_not_found(console: Console) -> None:
    client = console.login("budi")
    assert client.get("/admin/content/answer/utter_tidak_ada").status_code == 404
    assert client.get("/admin/content/berita/utter_greet").status_code == 404
    assert post(client, "/admin/content/versions/999/approve").status_code == 404


def test_content_pages_need_a_session(console: Console) -> None:
    client = TestClient(console.app, base_url="https://testserver", follow_redirects=False)
    for path in ("/admin/content", PAGE):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login"


def test_an_approval_reaches_citizens_through_a_running_worker_without_a_restart(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'garda.db'}"
    channel = RecordingChannel()
    runtime = make_runtime((url, None), channel)
    runtime.brain = BrainRunner(lambda: Brain(None, Content.load()).follow_approvals(
        url, poll_seconds=0.5))
    console = Console(url)
    content = Content.load()

    def replies() -> list[str]:
        with runtime.db.engine.connect() as conn:
            rows = conn.execute(select(models.outbox.c.payload)
                                .order_by(models.outbox.c.id)).scalars().all()
        return [json.loads(r)["text"] for r in rows]

    def approve_in_the_console() -> None:
        assert propose(console.login("sari"), NEW_KTP).status_code == 303
        proposal = console.versions.pending()[0]
        assert post(console.login("budi"),
                    f"/admin/content/versions/{proposal.id}/approve").status_code == 303

    async def scenario() -> None:
        await runtime.start()
        try:
            await runtime.ingest(msg("a1", text="/faq/ktp_baru"))
            await until(lambda: len(channel.sent) == 1)
            await asyncio.to_thread(approve_in_the_console)
            approved_at = time.monotonic()
            number = 1
            while NEW_KTP.format(**content.settings) not in replies():
                assert time.monotonic() - approved_at < 5, "not served within 5 seconds"
                number += 1
                await runtime.ingest(msg(f"a{number}", text="/faq/ktp_baru"))
                await until(lambda n=number: len(channel.sent) == n)
                await asyncio.sleep(0.2)
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    texts = replies()
    assert texts[0] == content.render(KTP)
    assert texts[-1] == NEW_KTP.format(**content.settings)
    console.db.dispose()

