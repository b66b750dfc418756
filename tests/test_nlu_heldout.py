"""The held-out NLU test set: kept apart from training, and scored against a floor in CI.

tests/nlu/heldout_*.yml was written by someone who never saw data/nlu/; nothing in the
project trains or tunes on it (calibration uses a split of data/nlu/, bot/calibrate.py).
The floors are regression guards set below the measured figures in docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.evaluation import Scores, evaluate
from bot.nlu.normalizer import Normalizer
from bot.nlu_data import heldout_files, intents, read_examples, training_files

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {  # file -> (top-1 accuracy, most wrong answers as a share of the file)
    "heldout_informal.yml": (0.93, 0.03),
    "heldout_formal.yml": (0.88, 0.03),
    "heldout_english.yml": (0.80, 0.05),
}


def test_heldout_files_exist_and_cover_every_intent() -> None:
    files = {p.name for p in heldout_files()}
    assert files == set(FLOORS)
    covered = {intent for intent, _ in read_examples(heldout_files())}
    assert covered == set(intents())


def test_no_heldout_example_is_a_training_example() -> None:
    norm = Normalizer()
    training = {norm.normalize(text) for _, text in read_examples(training_files())}
    training_bags = {frozenset(t.split()) for t in training}
    leaked = []
    for _, text in read_examples(heldout_files()):
        normalised = norm.normalize(text)
        if normalised in training or frozenset(normalised.split()) in training_bags:
            leaked.append(text)
    assert leaked == []


@pytest.fixture(scope="module")
def scores(brain) -> dict[str, Scores]:
    return {path.name: evaluate(brain, read_examples([path])) for path in heldout_files()}


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_heldout_accuracy_stays_above_its_floor(scores: dict[str, Scores], name: str) -> None:
    floor, max_wrong = FLOORS[name]
    result = scores[name]
    assert result.accuracy >= floor, (result.accuracy, result.errors[:20])
    assert result.answered_wrong / result.total <= max_wrong, result.errors[:20]


@pytest.mark.model
def test_routine_heldout_questions_are_never_called_hoaxes_and_rarely_escalated(
    scores: dict[str, Scores],
) -> None:
    """Never a hoax; escalated (safety triage, fact-check) at most 1% of the time: the
    escalation issue's false-escalation goal."""
    total = sum(result.total for result in scores.values())
    escalated = sum(result.routes["escalate"] for result in scores.values())
    assert all(result.routes["hoax"] == 0 for result in scores.values())
    assert escalated <= 0.01 * total
