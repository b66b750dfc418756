"""Shared fixtures. The Rasa model is trained at most once per test run (and not at all when
`make setup` already trained it for the current data): see bot.training."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import logs

logs.configure()

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def trained_model() -> Path:
    from bot import training

    training.train(quiet=True)
    return training.model_path()


@pytest.fixture(scope="session")
def brain(trained_model: Path):
    from bot.brain.pipeline import Brain

    return Brain.load(trained_model)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"external data not present at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA
