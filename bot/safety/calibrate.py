"""Choose the safety thresholds on held-out training data (``garda safety calibrate``).

Every example of ``data/safety/`` and every routine example of ``data/nlu`` is scored by
a classifier trained without it (5-fold). Then, per category:

one threshold for the critical categories (emergency, self-harm, threat) and one for
the others, the pair with the best critical recall (then category accuracy) among those
within the false-alarm budget (:data:`MAX_FALSE` of routine texts, :data:`MAX_HARD` of
the hard negatives: civil criticism and alarming-but-routine questions).

The held-out test set (tests/safety) is never read here. The chosen values live in
:data:`bot.safety.triage.THRESHOLDS`, set by hand from this command's output.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.safety.categories import CRITICAL, DETECTED
from bot.safety.triage import NONE, THRESHOLDS, SafetyTriage, load_examples, routine_texts

FOLDS = 5
MAX_FALSE = 0.01  # at most this share of held-out routine texts (data/nlu) escalated
MAX_HARD = 0.08   # ... and of the hard negatives (data/safety/none.yml: criticism...)
GRID = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 ... 0.90


@dataclass(frozen=True)
class Result:
    thresholds: dict[str, float]
    recall: dict[str, float]
    precision: dict[str, float]
    false_escalations: float  # share of held-out routine (data/nlu) texts escalated
    hard_negatives: float     # share of data/safety/none.yml (criticism...) escalated
    accuracy: float           # category accuracy over held-out escalation examples


ROUTINE = "routine"  # a data/nlu example: what everyday traffic looks like


def held_out(examples: Mapping[str, Sequence[str]], routine: Sequence[str],
             seed: int = 13) -> list[tuple[str, dict[str, float]]]:
    """(true label, probabilities) for every text, each from a model trained without it.
    data/nlu examples are labelled ROUTINE here (they are "none" to the model)."""
    items = [(label, text) for label, texts in examples.items() for text in texts]
    items += [(ROUTINE, text) for text in routine]
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)  # noqa: S311 (a reproducible split)
    found: list[tuple[str, dict[str, float]]] = []
    for fold in range(FOLDS):
        held = set(order[fold::FOLDS])
        train: dict[str, list[str]] = {}
        for i, (label, text) in enumerate(items):
            if i not in held:
                train.setdefault(NONE if label == ROUTINE else label, []).append(text)
        model = SafetyTriage(train, background=[])
        for i in sorted(held):
            label, text = items[i]
            normal = model.normalize(text)
            if normal:
                found.append((label, model.probabilities(normal)))
    return found


def score(results: Sequence[tuple[str, dict[str, float]]],
          thresholds: Mapping[str, float]) -> Result:
    triage = SafetyTriage.__new__(SafetyTriage)  # only its decision rule is used
    triage.thresholds = dict(thresholds)
    predicted = [(label, triage.decide(p).category) for label, p in results]
    recall, precision = {}, {}
    for name in DETECTED:
        tp = sum(1 for t, p in predicted if t == name and p == name)
        fn = sum(1 for t, p in predicted if t == name and p != name)
        fp = sum(1 for t, p in predicted if t != name and p == name)
        recall[name] = tp / max(1, tp + fn)
        precision[name] = tp / max(1, tp + fp)
    routine = [p for t, p in predicted if t == ROUTINE]
    hard = [p for t, p in predicted if t == NONE]
    positives = [(t, p) for t, p in predicted if t not in (NONE, ROUTINE)]
    return Result(
        thresholds=dict(thresholds), recall=recall, precision=precision,
        false_escalations=sum(p is not None for p in routine) / max(1, len(routine)),
        hard_negatives=sum(p is not None for p in hard) / max(1, len(hard)),
        accuracy=sum(t == p for t, p in positives) / max(1, len(positives)),
    )


def choose(results: Sequence[tuple[str, dict[str, float]]]) -> Result:
    """One threshold for the critical categories and one for the others: among the pairs
    that stay within MAX_FALSE false escalations of routine texts and MAX_HARD of the hard
    negatives, the best mean recall on the critical categories, then the best category
    accuracy. (Per-category thresholds chosen one at a time let the first categories
    spend the whole false-alarm budget; with 180 examples a category, two numbers are
    what the data can support.)"""
    best: tuple[tuple[float, float, float], Result] | None = None
    for critical in GRID:
        for other in GRID:
            thresholds = {n: critical if n in CRITICAL else other for n in DETECTED}
            trial = score(results, thresholds)
            if trial.false_escalations > MAX_FALSE or trial.hard_negatives > MAX_HARD:
                continue
            key = (round(sum(trial.recall[n] for n in CRITICAL) / len(CRITICAL), 6),
                   round(trial.accuracy, 6), critical + other)
            if best is None or key > best[0]:
                best = (key, trial)
    if best is None:  # nothing meets the budget: the strictest pair
        return score(results, {n: max(GRID) for n in DETECTED})
    return best[1]


def run() -> Result:
    results = held_out(load_examples(), routine_texts())
    result = choose(results)
    print(f"held out ({FOLDS}-fold): {sum(t not in (NONE, ROUTINE) for t, _ in results)} "
          f"escalation examples, {sum(t == NONE for t, _ in results)} hard negatives "
          f"(data/safety/none.yml), {sum(t == ROUTINE for t, _ in results)} routine (data/nlu)")
    print("THRESHOLDS = {")
    for name in DETECTED:
        print(f'    "{name}": {result.thresholds[name]:.2f},  # recall '
              f"{result.recall[name]:.3f}, precision {result.precision[name]:.3f}")
    print("}")
    print(f"false escalations: routine {result.false_escalations:.4f}, hard negatives "
          f"{result.hard_negatives:.3f}; category accuracy {result.accuracy:.3f}")
    in_use = score(results, THRESHOLDS)
    print(f"in use (bot/safety/triage.py): false escalations {in_use.false_escalations:.4f}, "
          f"accuracy {in_use.accuracy:.3f}, critical recall "
          + ", ".join(f"{n} {in_use.recall[n]:.3f}" for n in CRITICAL))
    return result
