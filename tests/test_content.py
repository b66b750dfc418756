from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.content import Content, ContentError
from bot.nlu_data import required_responses

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


def _write_domain(
    tmp_path: Path, metadata: str, text: str = "Halo dari {institution_name}"
) -> Path:
    domain = tmp_path / "domain.yml"
    domain.write_text(
        textwrap.dedent(
            f"""\
            version: "3.1"
            responses:
              utter_greet:
              - text: "{text}"
                metadata:
            """
        )
        + textwrap.indent(textwrap.dedent(metadata), " " * 6),
        encoding="utf-8",
    )
    return domain


APPROVED = """\
title: Salam
owner: Humas
approved_by: Kepala Humas
approved_at: "2026-01-01"
review_by: "2027-01-01"
"""


def test_project_content_passes_the_check(content: Content) -> None:
    assert content.problems(dt.date(2026, 11, 26), required_responses()) == []


def test_every_answer_renders_with_the_institution_settings(content: Content) -> None:
    for name in required_responses():
        text = content.render(name, dt.date(2026, 11, 26))
        assert text and "{" not in text, name


def test_settings_are_filled_into_answers(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yml"
    settings.write_text("institution_name: Pemkot Contoh\n", encoding="utf-8")
    content = Content.load(_write_domain(tmp_path, APPROVED), settings)
    assert content.render("utter_greet", dt.date(2026, 6, 1)) == "Halo dari Pemkot Contoh"


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        (APPROVED.replace('review_by: "2027-01-01"', 'review_by: "2026-05-01"'), "review_by"),
        (APPROVED.replace("approved_by: Kepala Humas\n", ""), "approved_by"),
        (APPROVED.replace("owner: Humas\n", ""), "owner"),
        (APPROVED.replace('approved_at: "2026-01-01"', 'approved_at: "kemarin"'), "approved_at"),
        (APPROVED.replace('approved_at: "2026-01-01"', 'approved_at: "2026-12-31"'), "future"),
    ],
)
def test_unapproved_or_expired_answers_are_refused(
    tmp_path: Path, metadata: str, problem: str
) -> None:
    settings = tmp_path / "settings.yml"
    settings.write_text("institution_name: Pemkot Contoh\n", encoding="utf-8")
    content = Content.load(_write_domain(tmp_path, metadata), settings)
    today = dt.date(2026, 6, 1)
    problems = content.problems(today)
    assert any(problem in p for p in problems), problems
    with pytest.raises(ContentError):
        content.render("utter_greet", today)


def test_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    settings = tmp_path / "settings.yml"
    settings.write_text("institution_name: Pemkot Contoh\n", encoding="utf-8")
    content = Content.load(_write_domain(tmp_path, APPROVED, "Buka {jam_buka}"), settings)
    assert any("jam_buka" in p for p in content.problems(dt.date(2026, 6, 1)))


def test_missing_required_response_is_reported(content: Content) -> None:
    problems = content.problems(dt.date(2026, 11, 26), ("utter_faq/tidak_ada",))
    assert problems == ["utter_faq/tidak_ada: response is missing"]


def test_content_check_command_fails_on_expired_content(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "bot.cli", "content", "check"], cwd=ROOT,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    # A copy of the project whose greeting expired yesterday must fail the check.
    for name in ("config.yml", "data", "settings"):
        src = ROOT / name
        (tmp_path / name).symlink_to(src, target_is_directory=src.is_dir())
    domain = (ROOT / "domain.yml").read_text("utf-8")
    yesterday = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    (tmp_path / "domain.yml").write_text(
        domain.replace('review_by: "2027-05-31"', f'review_by: "{yesterday}"', 1), "utf-8"
    )
    bad = subprocess.run([sys.executable, "-m", "bot.cli", "content", "check"], cwd=ROOT,
                         env={"GARDA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "has passed" in bad.stderr


# National facts the demo content must get right.
def test_civil_registry_documents_are_free(content: Content) -> None:
    text = content.render("utter_faq/biaya_adminduk", dt.date(2026, 11, 26)).lower()
    assert "gratis" in text or "tidak dipungut biaya" in text


def test_emergency_answer_starts_with_112(content: Content) -> None:
    text = content.render("utter_faq/nomor_darurat", dt.date(2026, 11, 26))
    first_number = next(tok for tok in text.replace(":", " ").split() if tok[:1].isdigit())
    assert first_number.startswith("112")


def test_casn_information_only_from_the_official_bkn_portal(content: Content) -> None:
    text = content.render("utter_faq/cpns", dt.date(2026, 11, 26))
    assert "sscasn.bkn.go.id" in text
