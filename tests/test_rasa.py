"""Rasa's own checks on the project: data validation and the test stories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}

pytestmark = pytest.mark.slow


def _rasa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args], cwd=ROOT, env=ENV,
        capture_output=True, text=True, timeout=900, check=False,
    )


def test_rasa_data_validate_passes() -> None:
    result = _rasa("data", "validate", "--config", "config.yml", "--domain", "domain.yml",
                   "--data", "data", "--fail-on-warnings")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


@pytest.mark.model
def test_rasa_test_stories_pass_with_fail_on_prediction_errors(
    trained_model: Path, tmp_path: Path
) -> None:
    result = _rasa("test", "core", "--model", str(trained_model),
                   "--stories", "tests/test_stories.yml", "--fail-on-prediction-errors",
                   "--out", str(tmp_path / "results"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert (tmp_path / "results" / "story_report.json").is_file()
