"""The console's Training page (/admin/training) and the ticket page's re-label form.

In process (Starlette's TestClient over HTTPS, as tests/test_admin_console.py does), and
once in a real browser (headless Chromium through Selenium, as
tests/test_console_browser.py does): a trainer labels a group and the example is in the
data file. The project the console reads and writes is a copy in tmp_path (GARDA_HOME):
the real data/nlu is never modified.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from test_admin_console import PASSWORD, World, csrf
from test_console_browser import Garda, evidence_on_failure, wait_until
from test_console_browser import browser as browser  # a fixture, used by name
from test_trainer_inbox import THRESHOLD, Chats, by_inbound, items

from bot.admin import console
from bot.admin.users import Users
from bot.store import models
from bot.trainer import inbox
from bot.trainer.nludata import read_pairs

ROOT = Path(__file__).resolve().parent.parent
PHONE = "081234567890"
LABELLERS = ("trainer", "supervisor", "admin")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of what the console reads (content, settings, training data), as GARDA_HOME."""
    home = tmp_path / "project"
    for name in ("domain.yml", "config.yml"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, home / name)
    shutil.copytree(ROOT / "settings", home / "settings")
    shutil.copytree(ROOT / "data" / "nlu", home / "data" / "nlu")
    monkeypatch.setenv("GARDA_HOME", str(home))
    return home


@pytest.fixture
def world(tmp_path: Path, project: Path) -> World:
    w = World(tmp_path)
    for role in ("trainer", "agent", "supervisor", "admin"):
        w.add_user(role, role)
    return w


def block(path: Path, intent: str) -> list[str]:
    data = yaml.safe_load(path.read_text("utf-8"))
    found = next(b for b in data["nlu"] if b.get("intent") == intent)
    return [line[2:] for line in found["examples"].splitlines()]


def seed(world: World) -> dict[str, int]:
    """Three groups: two citizens asking the same (one tapped a button), one not
    understood with a phone number, one confident answer picked for a spot check."""
    chats = Chats(world.db)
    ids = {
        "pdam": chats.say("c1", "air pdam mati dari subuh", "clarify", "faq/pdam", 0.4),
    }
    chats.say("c1", "/faq/pdam", "answer", "faq/pdam", 1.0, kind="button")
    ids["pdam2"] = chats.say("c2", "Air PDAM mati dari subuhhh", "answer", "faq/pdam",
                             THRESHOLD + 0.01)
    ids["phone"] = chats.say("c3", f"tolong telp sy di {PHONE} soal izin hajatan",
                             "fallback", None, 0.1)
    return ids


def group_keys(page: str) -> list[tuple[str, int]]:
    return [(key, int(count)) for key, count in
            re.findall(r'data-cluster="([0-9a-f]+)" data-count="(\d+)"', page)]


def form_csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_the_training_page_shows_groups_largest_first_masked_with_the_closest_examples(
        world: World) -> None:
    ids = seed(world)
    client = world.login("trainer")
    page = client.get("/admin/training")
    assert page.status_code == 200
    assert [count for _, count in group_keys(page.text)] == [2, 1]
    assert group_keys(page.text)[0][0] == by_inbound(world.db, ids["pdam"]).cluster_key
    assert PHONE not in page.text and "[telepon]" in page.text
    assert 'data-open="3" data-groups="2"' in page.text
    assert "Terima: faq/pdam" in page.text  # the proposal: the button the citizen chose
    assert re.search(r"<strong>faq/pdam</strong> \(\d\.\d\d\): ", page.text)
    assert f'href="{console.PREFIX}/training">Pelatihan</a>' in page.text
    assert "Pelatihan</a>" not in world.login("agent").get("/admin/").text


@pytest.mark.parametrize("role", ["agent"])
def test_agents_may_neither_see_nor_label_the_inbox(world: World, role: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    ids = seed(world)
    key = by_inbound(world.db, ids["phone"]).cluster_key
    client = world.login(role)
    caplog.set_level(logging.WARNING, logger="bot.admin.console")
    assert client.get("/admin/training").status_code == 403
    response = client.post("/admin/training", data={"csrf": csrf(client), "cluster": key,
                                                    "op": "discard"})
    assert response.status_code == 403 and console.DENIED in response.text
    assert by_inbound(world.db, ids["phone"]).status == inbox.OPEN
    assert f"admin denied: user={role} role={role} action=label" in caplog.text


@pytest.mark.parametrize("role", LABELLERS)
def test_trainers_supervisors_and_admins_label_a_group_into_the_data_copy(
        world: World, project: Path, role: str) -> None:
    ids = seed(world)
    client = world.login(role)
    page = client.get("/admin/training").text
    key = by_inbound(world.db, ids["pdam"]).cluster_key
    response = client.post("/admin/training", data={
        "csrf": form_csrf(page), "cluster": key, "op": "accept", "proposed": "faq/pdam"})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/training?m=accepted"
    assert "contohnya ditulis ke data/nlu" in client.get(response.headers["location"]).text
    assert block(project / "data" / "nlu" / "faq_lingkungan.yml", "faq/pdam")[-1] == (
        "Air PDAM mati dari subuhhh")
    rows = [by_inbound(world.db, ids[name]) for name in ("pdam", "pdam2")]
    assert {(r.status, r.label, r.decided_by) for r in rows} == {
        (inbox.ACCEPTED, "faq/pdam", role)}
    assert "Air PDAM" not in (ROOT / "data" / "nlu" / "faq_lingkungan.yml").read_text("utf-8")


def test_choose_new_topic_and_discard(world: World, project: Path) -> None:
    ids = seed(world)
    chats = Chats(world.db)
    other = chats.say("c4", "jadwal posyandu bulan depan", "answer", "faq/puskesmas",
                      THRESHOLD)
    client = world.login("trainer")

    def decide(name: str, **data: str) -> Any:
        page = client.get("/admin/training").text
        return client.post("/admin/training", data={
            "csrf": form_csrf(page), "cluster": by_inbound(world.db, ids[name] if name in ids
                                                           else other).cluster_key, **data})

    assert decide("other", op="choose", intent="faq/vaksinasi").status_code == 303
    assert by_inbound(world.db, other).status == inbox.RELABELLED
    assert block(project / "data" / "nlu" / "faq_sosial_kesehatan.yml",
                 "faq/vaksinasi")[-1] == "jadwal posyandu bulan depan"
    assert decide("phone", op="new_topic").headers["location"].endswith("m=new_topic")
    assert by_inbound(world.db, ids["phone"]).status == inbox.NEW_TOPIC
    assert decide("pdam", op="discard").headers["location"].endswith("m=discarded")
    assert {r.status for r in items(world.db)} == {inbox.RELABELLED, inbox.NEW_TOPIC,
                                                   inbox.DISCARDED}
    empty = client.get("/admin/training?m=discarded").text
    assert "Kotak tinjauan kosong" in empty and "dibuang dari kotak tinjauan" in empty


@pytest.mark.parametrize("data, status, message", [
    ({"op": "choose", "intent": ""}, 400, "Pilih intent"),
    ({"op": "choose", "intent": "faq/tidak_ada"}, 400, "tidak ada di data/nlu"),
    ({"op": "rename"}, 400, "Tindakan tidak dikenal"),
])
def test_a_bad_form_is_explained_and_changes_nothing(world: World, project: Path,
                                                      data: dict[str, str], status: int,
                                                      message: str) -> None:
    ids = seed(world)
    client = world.login("trainer")
    before = {p: p.read_bytes() for p in (project / "data" / "nlu").glob("*.yml")}
    response = client.post("/admin/training", data={
        "csrf": csrf(client), "cluster": by_inbound(world.db, ids["phone"]).cluster_key,
        **data})
    assert response.status_code == status and message in response.text
    assert {r.status for r in items(world.db)} == {inbox.OPEN}
    assert {p: p.read_bytes() for p in (project / "data" / "nlu").glob("*.yml")} == before


def test_a_refused_example_or_a_decided_group_is_explained(world: World) -> None:
    chats = Chats(world.db)
    known = chats.say("k1", "cara bikin ktp gmn min", "answer", "faq/ktp_baru", THRESHOLD)
    key = by_inbound(world.db, known).cluster_key
    client = world.login("trainer")
    refused = client.post("/admin/training", data={
        "csrf": csrf(client), "cluster": key, "op": "accept", "proposed": "faq/ktp_baru"})
    assert refused.status_code == 422 and "sudah ada di data latih" in refused.text
    assert by_inbound(world.db, known).status == inbox.OPEN
    assert client.post("/admin/training", data={"csrf": csrf(client), "cluster": key,
                                                "op": "discard"}).status_code == 303
    again = client.post("/admin/training", data={"csrf": csrf(client), "cluster": key,
                                                 "op": "discard"})
    assert again.status_code == 409 and "sudah diputuskan" in again.text


def test_a_label_without_the_csrf_token_is_refused(world: World) -> None:
    ids = seed(world)
    client = world.login("trainer")
    response = client.post("/admin/training", data={
        "csrf": "x" * 43, "cluster": by_inbound(world.db, ids["phone"]).cluster_key,
        "op": "discard"})
    assert response.status_code == 403 and console.FORM_EXPIRED in response.text
    assert {r.status for r in items(world.db)} == {inbox.OPEN}


# -- re-labelling from a ticket -------------------------------------------------------


def test_an_agent_relabels_a_ticket_message_and_the_trainers_see_it(world: World) -> None:
    ticket = world.escalate(f"sy mau lapor lampu jalan mati, hp {PHONE}")
    client = world.login("agent")
    page = client.get(f"/admin/tickets/{ticket.id}").text
    assert f'action="/admin/tickets/{ticket.id}/relabel"' in page
    assert f'<option value="{ticket.inbound_id}" selected>' in page
    assert PHONE not in page.split('id="relabel"')[1]
    response = client.post(f"/admin/tickets/{ticket.id}/relabel", data={
        "csrf": form_csrf(page), "inbound": str(ticket.inbound_id), "intent": "faq/pengaduan"})
    assert response.status_code == 303
    shown = client.get(response.headers["location"]).text
    assert console.NOTICES["relabelled"] in shown
    assert "memberi label untuk pelatihan" in shown
    row = by_inbound(world.db, ticket.inbound_id)
    assert (row.source, row.suggested_intent, row.status) == (inbox.RELABEL, "faq/pengaduan",
                                                              inbox.OPEN)
    assert PHONE not in row.text
    training = world.login("trainer").get("/admin/training").text
    assert "Terima: faq/pengaduan" in training
    # A trainer only reads tickets: no re-label form, and a POST is refused.
    trainer = world.login("trainer")
    assert "/relabel" not in trainer.get(f"/admin/tickets/{ticket.id}").text
    assert trainer.post(f"/admin/tickets/{ticket.id}/relabel", data={
        "csrf": csrf(trainer), "intent": "faq/pengaduan"}).status_code == 403


def test_a_relabel_must_name_an_intent_and_a_message_of_the_ticket(world: World) -> None:
    ticket = world.escalate("sy mau bicara dgn petugas")
    other = world.escalate("jalan depan rumah rusak parah")
    client = world.login("supervisor")
    for data in ({"intent": ""}, {"intent": "faq/tidak_ada"},
                 {"intent": "faq/pengaduan", "inbound": str(other.inbound_id)}):
        response = client.post(f"/admin/tickets/{ticket.id}/relabel",
                               data={"csrf": csrf(client), **data})
        assert response.status_code == 400, data
    with world.db.engine.connect() as conn:
        assert conn.execute(select(models.review_items)).all() == []
    # Without a message named, the one that opened the ticket is meant.
    response = client.post(f"/admin/tickets/{ticket.id}/relabel",
                           data={"csrf": csrf(client), "intent": "bot_challenge"})
    assert response.status_code == 303
    assert by_inbound(world.db, ticket.inbound_id).suggested_intent == "bot_challenge"


# -- in a real browser ----------------------------------------------------------------


@pytest.mark.browser
def test_a_trainer_labels_a_group_in_a_real_browser_and_it_is_in_the_data_file(
        tmp_path: Path, project: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    garda = Garda(tmp_path)
    Users(garda.db.engine).add("tina", PASSWORD, "trainer")
    chats = Chats(garda.db)
    for n in range(2):
        chats.say(f"b{n}", "bayar pbb bs lwt indomaret ga", "answer", "faq/pbb", THRESHOLD)
    single = chats.say("b9", "kapan pemutihan denda pbb", "fallback", "faq/pbb", 0.3)
    data_file = next(p for p in sorted((project / "data" / "nlu").glob("*.yml"))
                     if any(i == "faq/pbb" for i, _ in read_pairs(p)))
    driver = browser

    def css(selector: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, selector)

    with garda.serving() as base, evidence_on_failure(driver, tmp_path):
        driver.get(f"{base}/admin/login")
        css("input[name=name]").send_keys("tina")
        css("input[name=password]").send_keys(PASSWORD)
        css("main form button[type=submit]").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/", "the queue after login")
        driver.find_element(By.LINK_TEXT, "Pelatihan").click()
        wait_until(lambda: driver.current_url == f"{base}/admin/training", "the Training page")
        groups = driver.find_elements(By.CSS_SELECTOR, "section.group")
        assert [g.get_attribute("data-count") for g in groups] == ["2", "1"]
        key = by_inbound(garda.db, single).cluster_key
        group = f'section.group[data-cluster="{key}"]'
        assert "kapan pemutihan denda pbb" in css(f"{group} blockquote").text
        assert css(f"{group} ol.near li").text.startswith("faq/")
        Select(css(f"{group} select[name=intent]")).select_by_value("faq/pbb")
        css(f'{group} button[value="choose"]').click()
        wait_until(lambda: "contohnya ditulis ke data/nlu" in css("p.notice").text,
                   "the label's notice")
        assert not driver.find_elements(By.CSS_SELECTOR, group)
        assert len(driver.find_elements(By.CSS_SELECTOR, "section.group")) == 1

    assert block(data_file, "faq/pbb")[-1] == "kapan pemutihan denda pbb"
    row = by_inbound(garda.db, single)
    assert (row.status, row.label, row.decided_by) == (inbox.ACCEPTED, "faq/pbb", "tina")
    assert "pemutihan denda" not in (ROOT / data_file.relative_to(project)).read_text("utf-8")
