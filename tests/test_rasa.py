"""Rasa's own checks on the project: data validation and the test stories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.safety.categories import categories
from bot.training import RASA_DATA

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}

pytestmark = pytest.mark.slow


def _rasa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args], cwd=ROOT, env=ENV,
        capture_output=True, text=True, timeout=900, check=False,
    )


# Sent by bot.brain itself (no intent leads to them), so no Rasa rule uses them.
BRAIN_ONLY_RESPONSES = ("utter_clarify", "utter_empty", "utter_fallback", "utter_media",
                        "utter_fact_check",
                        *(c.reply for c in categories().values()))


def test_rasa_data_validate_passes_without_unexplained_warnings() -> None:
    result = _rasa("data", "validate", "--config", "config.yml", "--domain", "domain.yml",
                   "--data", *RASA_DATA)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    warnings = [line for line in output.splitlines() if "UserWarning" in line]
    unexplained = [
        w for w in warnings
        if not any(f"'{r}'" in w for r in BRAIN_ONLY_RESPONSES)
        # Rasa's importer adds a domain with the retrieval intent `faq` and merges it with
        # domain.yml, which must list `faq` too (rasa/shared/importers/importer.py).
        and "duplicated intents have been found across multiple domain files: faq" not in w
    ]
    assert unexplained == [], unexplained


@pytest.mark.model
def test_rasa_test_stories_pass_with_fail_on_prediction_errors(
    trained_model: Path, tmp_path: Path
) -> None:
    result = _rasa("test", "core", "--model", str(trained_model),
                   "--stories", "tests/test_stories.yml", "--fail-on-prediction-errors",
                   "--out", str(tmp_path / "results"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (tmp_path / "results" / "story_report.json").is_file()
