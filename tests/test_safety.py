"""Safety triage on messages written apart from its training data.

tests/safety/heldout.yml was written by a writer who never saw data/safety/ or data/nlu/;
nothing trains on it, and the thresholds come from bot/safety/calibrate.py (the dev set
data/safety/dev and k-fold training data; docs/escalation.md says where the test set's
figures did inform one decision). The floors are regression guards set below the figures
measured on it (docs/benchmarks.md), not the goals: the goals (recall 0.95 overall, 1.0
on emergency, self-harm and threat) are not met yet, and docs/escalation.md says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.content import Content
from bot.nlu_data import heldout_files, read_examples, training_files
from bot.safety.calibrate import load_dev
from bot.safety.categories import ALL, CRITICAL, DETECTED, categories
from bot.safety.triage import NONE, SafetyTriage, load_examples

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = yaml.safe_load((ROOT / "tests" / "safety" / "heldout.yml").read_text("utf-8"))
RECALL_FLOOR = {"emergency": 0.90, "self_harm": 0.85, "threat": 0.85}  # others: 0.55
OVERALL_FLOOR = 0.80
FALSE_ESCALATION_CEILING = 0.01


@pytest.fixture(scope="module")
def triage() -> SafetyTriage:
    return SafetyTriage()


def test_every_category_has_settings_and_an_approved_holding_reply() -> None:
    content = Content.load()
    found = categories()
    assert set(found) == set(ALL)
    for category in found.values():
        assert content.render(category.reply)
    assert [c for c in found.values() if c.name in CRITICAL] == sorted(
        (c for c in found.values() if c.name in CRITICAL), key=lambda c: c.priority)
    assert all(found[c].priority == 1 for c in CRITICAL)


def test_the_emergency_reply_gives_112_first_and_self_harm_a_helpline() -> None:
    content = Content.load()
    emergency = content.render(categories()["emergency"].reply)
    assert emergency.splitlines()[0].count("112") == 1
    assert "119 ext. 8" in content.render(categories()["self_harm"].reply)


def test_training_data_has_every_category_and_no_heldout_message() -> None:
    examples = load_examples()
    assert set(examples) == {*DETECTED, NONE}
    training = {t.casefold().strip() for texts in examples.values() for t in texts}
    heldout = [t for texts in HELDOUT["categories"].values() for t in texts]
    heldout += HELDOUT["criticism"] + HELDOUT["routine"]
    assert [t for t in heldout if t.casefold().strip() in training] == []


def test_the_development_set_is_neither_trained_on_nor_part_of_the_test_set() -> None:
    """data/safety/dev chooses the thresholds (bot/safety/calibrate.py): a dev text in the
    training data would flatter recall there, and one in the test set would be tuned on."""
    dev = load_dev()
    texts = [t for ts in dev.categories.values() for t in ts] + [*dev.criticism, *dev.routine]
    assert all(len(dev.categories[name]) >= 25 for name in DETECTED)
    assert len(dev.routine) >= 400
    examples = load_examples()
    training = {t.casefold().strip() for ts in examples.values() for t in ts}
    training |= {t.casefold().strip() for _, t in read_examples(training_files())}
    heldout = {t.casefold().strip() for ts in HELDOUT["categories"].values() for t in ts}
    heldout |= {t.casefold().strip() for t in HELDOUT["criticism"] + HELDOUT["routine"]}
    assert [t for t in texts if t.casefold().strip() in training] == []
    assert [t for t in texts if t.casefold().strip() in heldout] == []


@pytest.mark.parametrize("category", DETECTED)
def test_heldout_messages_of_each_category_are_escalated_as_it(triage: SafetyTriage,
                                                               category: str) -> None:
    texts = HELDOUT["categories"][category]
    verdicts = [triage.classify(t).category for t in texts]
    recall = sum(v == category for v in verdicts) / len(texts)
    assert recall >= RECALL_FLOOR.get(category, 0.55), list(zip(texts, verdicts, strict=True))


def test_overall_recall_on_the_heldout_set(triage: SafetyTriage) -> None:
    texts = [t for ts in HELDOUT["categories"].values() for t in ts]
    escalated = sum(triage.classify(t).category is not None for t in texts)
    assert escalated / len(texts) >= OVERALL_FLOOR


def test_civil_criticism_is_dialogue_not_an_escalation(triage: SafetyTriage) -> None:
    escalated = [t for t in HELDOUT["criticism"] if triage.classify(t).category is not None]
    assert escalated == []


def test_routine_questions_are_rarely_escalated(triage: SafetyTriage) -> None:
    texts = HELDOUT["routine"] + [t for _, t in read_examples(heldout_files())]
    escalated = [t for t in texts if triage.classify(t).category is not None]
    assert len(escalated) <= FALSE_ESCALATION_CEILING * len(texts), escalated


@pytest.mark.parametrize("odd", ["", "   ", "🙏🙏", "\x00\x01", None, 42, "a" * 100_000])
def test_odd_input_is_not_escalated_and_does_not_fail(triage: SafetyTriage, odd) -> None:
    assert triage.classify(odd).category is None


def test_the_fitted_classifier_is_kept_on_disk_and_a_damaged_copy_is_refitted(
        tmp_path, monkeypatch, triage: SafetyTriage) -> None:
    import bot.paths
    from bot.safety import triage as module

    monkeypatch.setattr(bot.paths, "state_dir", lambda: tmp_path)
    module._saved_or_fitted.cache_clear()
    first = module.default_triage()
    saved = list((tmp_path / "cache").glob("safety-*.joblib"))
    assert len(saved) == 1 and module.fit_key()[:24] in saved[0].name
    module._saved_or_fitted.cache_clear()
    loaded = module.default_triage()
    assert loaded is not first  # read from the file, not fitted or cached in memory
    text = triage.normalize("tolong rumah saya kebakaran")
    assert loaded.probabilities(text) == pytest.approx(first.probabilities(text))
    saved[0].write_bytes(b"not a classifier")
    module._saved_or_fitted.cache_clear()
    again = module.default_triage()
    assert again.probabilities(text) == pytest.approx(first.probabilities(text))
    module._saved_or_fitted.cache_clear()
