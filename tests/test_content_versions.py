"""Approved content with versions: the two-person rule, what is served, conflicts,
rollback, the audit log, the brain picking up approvals, and `garda content ...`.

On the embedded default (SQLite) and, where the servers are available, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from scripted import ScriptedParser
from sqlalchemy import func, select, text

from bot.admin.users import Users
from bot.brain.pipeline import Brain
from bot.brain.ranking import Routed
from bot.content import Content, ContentError
from bot.content_versions import (
    MAX_ANSWER,
    REVIEW_DAYS,
    ApprovedContent,
    Conflict,
    ContentVersions,
    InvalidText,
    Lapsed,
    NoSuchVersion,
    NotAllowed,
    NotPending,
    SelfApproval,
    UnknownKey,
    approved_overrides,
    diff_rows,
    unified_diff,
)
from bot.hoax.registry import MAX_CLARIFICATION, Registry
from bot.safety.triage import Verdict
from bot.store import models
from bot.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
KTP = "utter_faq/ktp_baru"
NEW_KTP = ("KTP-el baru dibuat di {disdukcapil_address} atau lewat {disdukcapil_online}. "
           "Bawa fotokopi KK. Layanan ini gratis.")
PASSWORD = "kata-sandi-yang-panjang"
FALLBACK = Routed("fallback", None, 0.1)
DAY = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'garda.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db(url: str) -> Database:
    database = Database(url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
def versions(db: Database, content: Content, registry: Registry) -> ContentVersions:
    return ContentVersions(db.engine, content, registry)


def audit(versions: ContentVersions) -> list[tuple[str, str, int, str | None]]:
    return [(a.actor, a.action, a.version, a.detail) for a in versions.audit()]


class NoSafety:
    """Safety triage that escalates nothing (this file tests content, not triage)."""

    def classify(self, text: object, normalized: str | None = None) -> Verdict:
        return Verdict(None, 0.0, "none")


def reply(brain: Brain, message: str = f"/{KTP.removeprefix('utter_')}") -> str:
    return asyncio.run(brain.decide(message)).reply


def rendered(content: Content, template: str) -> str:
    return template.format(**content.settings)


# -- the two-person rule ----------------------------------------------------------------


def test_an_author_cannot_approve_their_own_change(versions: ContentVersions) -> None:
    proposal = versions.propose("answer", KTP, NEW_KTP, "Sari", "alamat baru")
    assert (proposal.proposed_by, proposal.status, proposal.based_on) == ("sari", "proposed", 0)
    for same in ("sari", "Sari", " SARI "):
        with pytest.raises(SelfApproval):
            versions.approve(proposal.id, same)
    assert versions.get(proposal.id).status == "proposed"
    assert versions.served("answer", KTP).version == 0
    assert audit(versions) == [("sari", "proposed", 1, "alamat baru")]


def test_an_unapproved_change_is_never_served_and_an_approved_one_is_at_once(
        db: Database, url: str, versions: ContentVersions, content: Content) -> None:
    brain = Brain(ScriptedParser(FALLBACK), content).follow_approvals(url, poll_seconds=0)
    before = content.render(KTP)
    assert reply(brain) == before

    proposal = versions.propose("answer", KTP, NEW_KTP, "sari")
    assert reply(brain) == before            # proposed: never served
    assert brain.content.render(KTP) == before

    approved = versions.approve(proposal.id, "budi")
    assert (approved.status, approved.decided_by) == ("approved", "budi")
    assert reply(brain) == rendered(content, NEW_KTP)   # no restart: the next message
    assert Brain(ScriptedParser(FALLBACK), content).content.render(KTP) == before  # files only
    brain._approved.engine.dispose()


def test_rejected_and_withdrawn_changes_are_never_served(
        url: str, versions: ContentVersions, content: Content) -> None:
    brain = Brain(ScriptedParser(FALLBACK), content).follow_approvals(url, poll_seconds=0)
    first = versions.propose("answer", KTP, NEW_KTP, "sari")
    second = versions.propose("answer", KTP, NEW_KTP + " Tambahan.", "sari")
    with pytest.raises(NotAllowed):
        versions.reject(first.id, "budi", "  ")      # a rejection says why
    with pytest.raises(NotAllowed):
        versions.reject(first.id, "sari", "salah")   # an author withdraws instead
    with pytest.raises(NotAllowed):
        versions.withdraw(second.id, "budi")          # only the author withdraws
    assert versions.reject(first.id, "budi", "alamat belum resmi").status == "rejected"
    assert versions.withdraw(second.id, "Sari").status == "withdrawn"
    for decided in (first, second):
        with pytest.raises(NotPending):
            versions.approve(decided.id, "budi")
    assert versions.served("answer", KTP).version == 0
    assert reply(brain) == content.render(KTP)
    assert approved_overrides_of(versions) == {}
    assert audit(versions) == [
        ("sari", "proposed", 1, None), ("sari", "proposed", 2, None),
        ("budi", "rejected", 1, "alamat belum resmi"), ("sari", "withdrawn", 2, None)]
    brain._approved.engine.dispose()


def approved_overrides_of(versions: ContentVersions) -> dict:
    with versions.engine.connect() as conn:
        return approved_overrides(conn)


def test_a_proposal_written_against_a_replaced_text_is_a_conflict(
        versions: ContentVersions) -> None:
    first = versions.propose("answer", KTP, NEW_KTP, "sari")
    second = versions.propose("answer", KTP, NEW_KTP + " Versi lain.", "ani")
    versions.approve(first.id, "budi")
    with pytest.raises(Conflict, match="re-propose against the current text"):
        versions.approve(second.id, "budi")
    assert versions.get(second.id).status == "proposed"
    with pytest.raises(Conflict):
        versions.propose("answer", KTP, "Teks dari halaman lama.", "ani", based_on=0)
    again = versions.propose("answer", KTP, NEW_KTP + " Versi lain.", "ani", based_on=1)
    assert versions.approve(again.id, "budi").based_on == 1
    assert versions.served("answer", KTP).version == 3  # the refused proposal took none


def test_of_two_approvals_at_once_against_one_text_exactly_one_wins(
        versions: ContentVersions) -> None:
    proposals = [versions.propose("answer", KTP, f"{NEW_KTP} ({n})", f"penulis{n}")
                 for n in range(4)]
    barrier = threading.Barrier(len(proposals))

    def approve(version_id: int) -> str:
        barrier.wait()
        try:
            versions.approve(version_id, "budi")
            return "approved"
        except Conflict:
            return "conflict"

    with concurrent.futures.ThreadPoolExecutor(len(proposals)) as pool:
        outcomes = list(pool.map(approve, [p.id for p in proposals]))
    assert sorted(outcomes) == ["approved"] + ["conflict"] * 3
    assert [v.status for v in versions.versions("answer", KTP)].count("approved") == 2  # v0 too


# -- the texts ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind, key, text, code", [
    ("answer", KTP, "   \n ", "empty"),
    ("answer", KTP, "Hubungi {nomor_rahasia} sekarang.", "placeholder"),
    ("answer", KTP, "a\x00b", "control"),
    ("answer", KTP, "x" * (MAX_ANSWER + 1), "too_long"),
    ("hoax", "air-pdam-beracun", "y" * (MAX_CLARIFICATION + 1), "too_long"),
    ("hoax", "air-pdam-beracun", "TODO: tulis klarifikasinya", "todo"),
])
def test_a_text_that_breaks_the_files_rules_is_refused(
        versions: ContentVersions, kind: str, key: str, text: str, code: str) -> None:
    with pytest.raises(InvalidText) as refused:
        versions.propose(kind, key, text, "sari")
    assert code in [p.code for p in refused.value.problems]
    assert all(p.indonesian for p in refused.value.problems)
    assert versions.versions(kind, key)[1:] == [] and versions.audit() == []


def test_an_answer_at_the_length_limit_once_settings_are_filled_in_is_accepted(
        versions: ContentVersions, content: Content) -> None:
    filler = "x" * (MAX_ANSWER - len(content.settings["phone"]))
    assert versions.propose("answer", KTP, filler + "{phone}", "sari").version == 1
    with pytest.raises(InvalidText):
        versions.propose("answer", KTP, filler + "x{phone}", "sari")


def test_unknown_keys_and_kinds_are_refused(versions: ContentVersions) -> None:
    for kind, key in (("answer", "utter_tidak_ada"), ("hoax", "tidak-ada"),
                      ("hoax", KTP), ("berita", KTP)):
        with pytest.raises(UnknownKey, match=r"no |unknown kind"):
            versions.propose(kind, key, "teks", "sari")


def test_approval_checks_the_text_again_against_the_settings_of_that_moment(
        db: Database, versions: ContentVersions, content: Content, registry: Registry) -> None:
    proposal = versions.propose("answer", KTP, "Datang ke {mpp_hours}.", "sari")
    settings = {k: v for k, v in content.settings.items() if k != "mpp_hours"}
    later = ContentVersions(db.engine, Content(content.responses, settings), registry)
    with pytest.raises(InvalidText, match="mpp_hours"):
        later.approve(proposal.id, "budi")
    assert versions.get(proposal.id).status == "proposed"


# -- review dates and rollback ------------------------------------------------------------


def test_an_approved_version_is_served_until_180_days_after_its_approval(
        versions: ContentVersions, content: Content) -> None:
    proposal = versions.propose("answer", KTP, NEW_KTP, "sari", now=DAY)
    versions.approve(proposal.id, "budi", now=DAY)
    overrides = approved_overrides_of(versions)
    override = overrides[("answer", KTP)]
    assert (override.approved_by, override.approved_at, override.review_by) == (
        "budi", DAY.date(), DAY.date() + dt.timedelta(days=REVIEW_DAYS))
    served = content.with_overrides({KTP: override})
    assert served.render(KTP, DAY.date()) == rendered(content, NEW_KTP)
    assert served.title(KTP) == content.title(KTP)  # title, owner, sources stay the file's
    with pytest.raises(ContentError, match="review_by"):
        served.render(KTP, override.review_by + dt.timedelta(days=1))


def test_an_approval_in_the_small_hours_of_jakarta_is_not_dated_in_the_future(
        versions: ContentVersions, content: Content) -> None:
    early = dt.datetime(2026, 11, 26, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    proposal = versions.propose("answer", KTP, NEW_KTP, "sari", now=early)
    versions.approve(proposal.id, "budi", now=early)
    override = approved_overrides_of(versions)[("answer", KTP)]
    assert override.approved_at == dt.date(2026, 11, 25)  # the UTC day, as render's today
    content.with_overrides({KTP: override}).render(KTP, dt.date(2026, 11, 25))


def test_a_rollback_proposes_the_earlier_text_for_a_second_person(
        versions: ContentVersions, content: Content) -> None:
    first = versions.propose("answer", KTP, NEW_KTP, "sari")
    versions.approve(first.id, "budi")
    back = versions.rollback("answer", KTP, 0, "ani", "alamat lama masih berlaku")
    assert (back.version, back.status, back.based_on) == (2, "proposed", 1)
    assert back.text == versions.file_version("answer", KTP).text
    assert back.reason == "rollback to v0: alamat lama masih berlaku"
    assert versions.served("answer", KTP).version == 1  # still the approved v1
    with pytest.raises(SelfApproval):
        versions.approve(back.id, "ani")
    versions.approve(back.id, "budi")
    assert versions.served("answer", KTP).version == 2
    override = approved_overrides_of(versions)[("answer", KTP)]
    assert override.text == back.text and override.approved_by == "budi"  # a new review


def test_only_an_approved_version_not_served_now_can_come_back(
        versions: ContentVersions) -> None:
    first = versions.propose("answer", KTP, NEW_KTP, "sari")
    versions.approve(first.id, "budi")
    rejected = versions.propose("answer", KTP, NEW_KTP + " Ditolak.", "sari")
    versions.reject(rejected.id, "budi", "tidak perlu")
    for to in (1, 2):  # served now; never approved
        with pytest.raises(NotAllowed):
            versions.rollback("answer", KTP, to, "ani")
    with pytest.raises(NoSuchVersion, match="no version 9"):
        versions.rollback("answer", KTP, 9, "ani")


def test_an_immediate_rollback_serves_an_approved_text_at_once_under_its_old_approval(
        versions: ContentVersions, content: Content) -> None:
    first = versions.propose("answer", KTP, NEW_KTP, "sari", now=DAY)
    versions.approve(first.id, "budi", now=DAY)
    later = DAY + dt.timedelta(days=3)
    wrong = versions.propose("answer", KTP, "Hubungi 0800-SALAH. {phone}", "sari", now=later)
    versions.approve(wrong.id, "ani", now=later)

    with pytest.raises(NotAllowed, match="reason"):
        versions.rollback("answer", KTP, 1, "ani", immediate=True, now=later)
    back = versions.rollback("answer", KTP, 1, "ani", "nomor salah", immediate=True,
                             now=later + dt.timedelta(hours=1))
    assert (back.version, back.status, back.restores, back.decided_by) == (
        3, "approved", 1, "ani")
    override = approved_overrides_of(versions)[("answer", KTP)]
    # Served with v1's approval (budi, DAY): one person restoring a text is no new review.
    assert (override.text, override.approved_by, override.approved_at) == (
        NEW_KTP, "budi", DAY.date())
    assert audit(versions)[-1] == ("ani", "rolled_back", 3, "v2 -> v1: nomor salah")

    # Back to the file's text: the file's own text and approval record, no override.
    to_file = versions.rollback("answer", KTP, 0, "ani", "kembali ke berkas", immediate=True,
                                now=later + dt.timedelta(hours=2))
    assert to_file.restores == 0 and approved_overrides_of(versions) == {}
    found = versions.versions("answer", KTP)
    assert versions.review_by(found, to_file.version) == content.responses[KTP].review_by


def test_an_immediate_rollback_to_a_lapsed_approval_is_refused(
        versions: ContentVersions) -> None:
    first = versions.propose("answer", KTP, NEW_KTP, "sari", now=DAY)
    versions.approve(first.id, "budi", now=DAY)
    later = DAY + dt.timedelta(days=REVIEW_DAYS + 5)
    second = versions.propose("answer", KTP, NEW_KTP + " Baru.", "sari", now=later)
    versions.approve(second.id, "budi", now=later)
    with pytest.raises(Lapsed):
        versions.rollback("answer", KTP, 1, "ani", "darurat", immediate=True, now=later)
    assert versions.rollback("answer", KTP, 1, "ani", "minta ditinjau", now=later).status == \
        "proposed"  # proposing it again for a fresh approval is fine


def test_the_audit_log_says_who_did_what_and_when(versions: ContentVersions) -> None:
    first = versions.propose("answer", KTP, NEW_KTP, "sari", "alamat baru")
    versions.approve(first.id, "budi")
    second = versions.propose("hoax", "air-pdam-beracun", "Informasi itu tidak benar.", "ani")
    versions.reject(second.id, "budi", "kurang lengkap")
    third = versions.propose("hoax", "air-pdam-beracun", "Informasi itu keliru.", "ani")
    versions.withdraw(third.id, "ani")
    back = versions.rollback("answer", KTP, 0, "sari")
    versions.approve(back.id, "ani")
    versions.rollback("answer", KTP, 1, "budi", "darurat", immediate=True)
    assert audit(versions) == [
        ("sari", "proposed", 1, "alamat baru"),
        ("budi", "approved", 1, None),
        ("ani", "proposed", 1, None),
        ("budi", "rejected", 1, "kurang lengkap"),
        ("ani", "proposed", 2, None),
        ("ani", "withdrawn", 2, None),
        ("sari", "proposed", 2, "rollback to v0"),
        ("ani", "approved", 2, None),
        ("budi", "rolled_back", 3, "v2 -> v1: darurat"),
    ]
    entries = versions.audit()
    assert [(e.kind, e.key) for e in entries[:2]] == [("answer", KTP)] * 2
    assert all(e.at.tzinfo is not None for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert [a.action for a in versions.audit("hoax", "air-pdam-beracun")] == [
        "proposed", "rejected", "proposed", "withdrawn"]


def test_every_version_is_kept(versions: ContentVersions) -> None:
    texts = [f"{NEW_KTP} Revisi {n}." for n in range(1, 4)]
    for body in texts:
        versions.approve(versions.propose("answer", KTP, body, "sari").id, "budi")
    found = versions.versions("answer", KTP)
    assert [v.version for v in found] == [0, 1, 2, 3]
    assert [v.text for v in found[1:]] == texts
    assert found[0].from_file and found[0].text == versions.file_version("answer", KTP).text
    with versions.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.content_versions)
                            ).scalar() == 3


# -- serving ------------------------------------------------------------------------------


def test_a_hoax_clarification_change_is_served_only_after_approval(
        url: str, versions: ContentVersions, content: Content, registry: Registry) -> None:
    entry = registry.entries["air-pdam-beracun"]
    brain = Brain(ScriptedParser(FALLBACK), content, hoaxes=[entry],
                  safety=NoSafety()).follow_approvals(url, poll_seconds=0)  # type: ignore[arg-type]
    message = entry.examples[0]
    assert asyncio.run(brain.decide(message)).reply == entry.render(content.settings)

    new = "Tidak benar. Air PDAM aman; laporkan keluhan ke {pdam_contact}."
    proposal = versions.propose("hoax", entry.id, new, "sari")
    decision = asyncio.run(brain.decide(message))
    assert (decision.route, decision.hoax_id) == ("hoax", entry.id)
    assert decision.reply == entry.render(content.settings)
    versions.approve(proposal.id, "budi")
    decision = asyncio.run(brain.decide(message))
    assert decision.hoax_id == entry.id
    assert rendered(content, new) in decision.reply
    assert decision.reply.startswith("[HOAKS]") and "Sumber resmi:" in decision.reply
    brain._approved.engine.dispose()


def test_approvals_are_read_at_most_every_poll_seconds_and_kept_when_the_database_fails(
        db: Database, versions: ContentVersions, content: Content,
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    served = ApprovedContent(db.engine, content, poll=5.0, clock=lambda: now[0])
    before = content.render(KTP)
    assert served.content().render(KTP) == before
    versions.approve(versions.propose("answer", KTP, NEW_KTP, "sari").id, "budi")
    now[0] += 4.9
    assert served.content().render(KTP) == before  # not due yet
    now[0] += 0.2
    assert served.content().render(KTP) == rendered(content, NEW_KTP)

    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE content_versions"))
    caplog.set_level(logging.WARNING, logger="bot.content_versions")
    for _ in range(3):
        now[0] += 6
        assert served.content().render(KTP) == rendered(content, NEW_KTP)  # the last read
    warnings = [r for r in caplog.records if "not re-read" in r.getMessage()]
    assert len(warnings) == 1


def test_the_poll_interval_comes_from_the_environment() -> None:
    from bot.config import ConfigError
    from bot.content_versions import poll_seconds

    assert poll_seconds({}) == 5.0
    assert poll_seconds({"GARDA_CONTENT_POLL_SECONDS": "0.5"}) == 0.5
    for bad in ("lima", "-1"):
        with pytest.raises(ConfigError, match="GARDA_CONTENT_POLL_SECONDS"):
            poll_seconds({"GARDA_CONTENT_POLL_SECONDS": bad})


def test_a_response_removed_from_the_files_is_not_served_from_the_database(
        content: Content) -> None:
    from bot.content import Override

    override = Override("teks", "budi", DAY.date(), DAY.date(), 1)
    assert "utter_hilang" not in content.with_overrides({"utter_hilang": override})


# -- diffs --------------------------------------------------------------------------------


def test_diffs_pair_changed_lines_and_keep_the_rest() -> None:
    rows = diff_rows("satu\ndua\ntiga", "satu\nDUA\ntiga\nempat")
    assert [(r.tag, r.old, r.new) for r in rows] == [
        ("equal", "satu", "satu"), ("replace", "dua", "DUA"), ("equal", "tiga", "tiga"),
        ("insert", None, "empat")]
    assert [(r.old_number, r.new_number) for r in rows] == [(1, 1), (2, 2), (3, 3), (None, 4)]
    assert unified_diff("a\nb", "a\nc", "v0", "v1").splitlines() == [
        "--- v0", "+++ v1", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]


# -- the CLI --------------------------------------------------------------------------------


def garda_content(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GARDA_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "bot.cli", "content", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_the_cli_keeps_the_two_person_rule(tmp_path: Path, content: Content) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = Database(url)
    db.upgrade()
    users = Users(db.engine)
    for name, role in (("sari", "trainer"), ("budi", "supervisor"), ("ani", "admin"),
                       ("olga", "agent")):
        users.add(name, PASSWORD, role)
    new_file = tmp_path / "ktp.txt"
    new_file.write_text(NEW_KTP + "\n", "utf-8")

    agent = garda_content(url, "propose", KTP, "--by", "olga", "--text", NEW_KTP)
    assert agent.returncode == 1 and "olga is a agent" in agent.stderr
    stranger = garda_content(url, "propose", KTP, "--by", "siapa", "--text", NEW_KTP)
    assert stranger.returncode == 1 and "not an active console user" in stranger.stderr
    bad = garda_content(url, "propose", KTP, "--by", "sari", "--text", "Hubungi {rahasia}")
    assert bad.returncode == 1 and "placeholder {rahasia}" in bad.stderr

    proposed = garda_content(url, "propose", KTP, "--by", "Budi", "--file", str(new_file),
                             "--reason", "alamat baru")
    assert proposed.returncode == 0, proposed.stderr
    assert f"+{NEW_KTP}" in proposed.stdout and "proposed answer" in proposed.stdout
    version_id = ContentVersions(db.engine).pending()[0].id
    own = garda_content(url, "approve", str(version_id), "--by", "BUDI")
    assert own.returncode == 1 and "a different person must approve it" in own.stderr
    trainer = garda_content(url, "approve", str(version_id), "--by", "sari")
    assert trainer.returncode == 1 and "only admin, supervisor may approve" in trainer.stderr
    assert ContentVersions(db.engine).served("answer", KTP).version == 0

    approved = garda_content(url, "approve", str(version_id), "--by", "ani")
    assert approved.returncode == 0, approved.stderr
    served = ContentVersions(db.engine).served("answer", KTP)
    assert (served.version, served.text, served.decided_by) == (1, NEW_KTP, "ani")

    again = garda_content(url, "approve", str(version_id), "--by", "ani")
    assert again.returncode == 1 and "not waiting for a decision" in again.stderr
    now = garda_content(url, "rollback", KTP, "--to", "0", "--by", "sari", "--now",
                        "--reason", "salah")
    assert now.returncode == 1 and "roll back at once" in now.stderr
    back = garda_content(url, "rollback", KTP, "--to", "0", "--by", "sari")
    assert back.returncode == 0 and "not served until someone other than sari" in back.stdout
    rollback_id = ContentVersions(db.engine).pending()[0].id
    rejected = garda_content(url, "reject", str(rollback_id), "--by", "budi", "--reason",
                             "v1 sudah benar")
    assert rejected.returncode == 0, rejected.stderr

    history = garda_content(url, "history", KTP)
    assert history.returncode == 0, history.stderr
    out = history.stdout
    assert "v1 is served" in out and "* v1  approved  proposed by budi" in out
    assert "v2  rejected  proposed by sari" in out and "reason: rollback to v0" in out
    assert f"+{NEW_KTP}" in out
    for line in ("budi proposed v1: alamat baru", "ani approved v1", "sari proposed v2",
                 "budi rejected v2: v1 sudah benar"):
        assert line in out
    unknown = garda_content(url, "history", "utter_tidak_ada")
    assert unknown.returncode == 1 and "no answer or hoax entry" in unknown.stderr
    db.dispose()


def test_immediate_rollback_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = Database(url)
    db.upgrade()
    users = Users(db.engine)
    users.add("sari", PASSWORD, "trainer")
    users.add("budi", PASSWORD, "supervisor")
    versions = ContentVersions(db.engine)
    versions.approve(versions.propose("answer", KTP, NEW_KTP, "sari").id, "budi")
    missing = garda_content(url, "rollback", KTP, "--to", "0", "--by", "budi", "--now")
    assert missing.returncode == 1 and "needs a reason" in missing.stderr
    done = garda_content(url, "rollback", KTP, "--to", "0", "--by", "budi", "--now",
                         "--reason", "alamat salah")
    assert done.returncode == 0, done.stderr
    served = ContentVersions(db.engine).served("answer", KTP)
    assert (served.version, served.restores) == (2, 0)
    assert served.text == versions.file_version("answer", KTP).text
    db.dispose()


def test_version_rows_hold_no_surprises(versions: ContentVersions) -> None:
    """The proposal's fields as stored (times are aware, reason trimmed, CRLF folded)."""
    proposal = versions.propose("answer", KTP, NEW_KTP.replace(". ", ".\r\n"), "  Sari ",
                                "  alasan  ")
    stored = versions.get(proposal.id)
    assert "\r" not in stored.text and stored.reason == "alasan"
    assert stored.proposed_at is not None and stored.proposed_at.tzinfo is not None
    assert dataclasses.asdict(stored)["decided_by"] is None
