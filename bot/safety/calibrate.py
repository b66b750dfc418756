"""Choose the safety thresholds (``garda safety calibrate``).

Two sources, neither of them the test set (tests/safety is never read here):

- the **development set** ``data/safety/dev/``, written by writers who never saw the
  training data, and never trained on: escalation examples of every category, civil
  criticism, and routine traffic (``dev.yml``'s ``routine`` and ``routine.yml``). It is
  scored by the classifier trained on all of ``data/safety`` and ``data/nlu``, exactly as
  the service runs it;
- **k-fold held-out training data**: every example of ``data/safety`` and every routine
  example of ``data/nlu`` scored by a classifier trained without it (5-fold). It gives
  the hard negatives' false-alarm rate on far more texts than the dev set holds.

The rule: one threshold for the critical categories (emergency, self-harm, threat) and one
for the others; among the pairs within the budgets (:data:`MAX_ROUTINE` of the dev set's
routine traffic escalated, :data:`MAX_CRITICISM` of its criticism, :data:`MAX_HARD` of the
k-fold hard negatives, :data:`MAX_KFOLD_ROUTINE` of the k-fold ``data/nlu`` examples), the
best dev recall on the critical categories, then the best dev recall overall, then
category accuracy.

Why the dev set and not k-fold alone: k-fold examples come from the same writer as the
rest of the training data; recall measured on new writers is what matters. Why the
k-fold ``data/nlu`` budget stays: the dev set's routine traffic is general chat, while
``data/nlu`` is what FAQ questions look like. A first version of this rule without that
budget chose 0.70/0.50, and the FAQ test set then had 2.4% of its questions escalated
(docs/escalation.md tells the whole story).

The chosen values live in :data:`bot.safety.triage.THRESHOLDS`, set by hand from this
command's output: a threshold change is a reviewed commit, not a side effect.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.safety.categories import CRITICAL, DETECTED
from bot.safety.triage import (
    NONE,
    THRESHOLDS,
    SafetyTriage,
    data_dir,
    load_examples,
    routine_texts,
)

FOLDS = 5
MAX_ROUTINE = 0.01    # dev routine traffic escalated: the false-escalation goal
MAX_CRITICISM = 0.05  # dev civil criticism escalated
MAX_HARD = 0.08       # k-fold hard negatives (data/safety/none.yml) escalated
MAX_KFOLD_ROUTINE = 0.01  # k-fold data/nlu examples escalated: FAQ-style questions
GRID = tuple(round(0.05 * i, 2) for i in range(2, 19))  # 0.10 ... 0.90

ROUTINE = "routine"      # everyday traffic (data/nlu k-fold, or the dev set's routine)
CRITICISM = "criticism"  # the dev set's civil criticism and political opinion


@dataclass(frozen=True)
class DevSet:
    categories: dict[str, tuple[str, ...]]
    criticism: tuple[str, ...]
    routine: tuple[str, ...]


def dev_dir() -> Path:
    return data_dir() / "dev"


def load_dev(folder: Path | None = None) -> DevSet:
    """``data/safety/dev/*.yml``: ``categories``, ``criticism`` and ``routine`` lists."""
    folder = folder or dev_dir()
    categories: dict[str, list[str]] = {name: [] for name in DETECTED}
    criticism: list[str] = []
    routine: list[str] = []
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        for name, texts in (data.get("categories") or {}).items():
            if name not in categories:
                raise ValueError(f"{path.name}: unknown category {name!r}")
            categories[name] += [str(t) for t in texts or ()]
        criticism += [str(t) for t in data.get(CRITICISM) or ()]
        routine += [str(t) for t in data.get(ROUTINE) or ()]
    return DevSet({k: tuple(v) for k, v in categories.items()}, tuple(criticism),
                  tuple(routine))


def dev_scores(triage: SafetyTriage, dev: DevSet) -> list[tuple[str, dict[str, float]]]:
    """(true label, probabilities) for every dev text; negatives labelled CRITICISM/ROUTINE."""
    labelled = [(name, text) for name, texts in dev.categories.items() for text in texts]
    labelled += [(CRITICISM, text) for text in dev.criticism]
    labelled += [(ROUTINE, text) for text in dev.routine]
    found = []
    for label, text in labelled:
        normal = triage.normalize(text)
        if normal:
            found.append((label, triage.probabilities(normal)))
    return found


@dataclass(frozen=True)
class Result:
    thresholds: dict[str, float]
    recall: dict[str, float]     # dev recall per category (escalated at all)
    overall: float               # dev recall over every category
    accuracy: float              # dev category accuracy among escalated
    routine: float               # dev routine traffic escalated
    criticism: float             # dev criticism escalated
    hard_negatives: float        # k-fold data/safety/none.yml escalated
    kfold_routine: float         # k-fold data/nlu escalated


def held_out(examples: Mapping[str, Sequence[str]], routine: Sequence[str],
             seed: int = 13) -> list[tuple[str, dict[str, float]]]:
    """(true label, probabilities) for every text, each from a model trained without it.

    data/nlu examples are labelled ROUTINE here (they are "none" to the model).
    """
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


def _share(predicted: Sequence[str | None]) -> float:
    return sum(p is not None for p in predicted) / max(1, len(predicted))


def score(dev: Sequence[tuple[str, dict[str, float]]],
          kfold: Sequence[tuple[str, dict[str, float]]],
          thresholds: Mapping[str, float]) -> Result:
    triage = SafetyTriage.__new__(SafetyTriage)  # only its decision rule is used
    triage.thresholds = dict(thresholds)
    predicted = [(label, triage.decide(p).category) for label, p in dev]
    positives = [(t, p) for t, p in predicted if t in DETECTED]
    recall = {name: _share([p for t, p in positives if t == name]) for name in DETECTED}
    escalated = [(t, p) for t, p in positives if p is not None]
    folded = [(label, triage.decide(p).category) for label, p in kfold]
    return Result(
        thresholds=dict(thresholds), recall=recall,
        overall=_share([p for _, p in positives]),
        accuracy=sum(t == p for t, p in escalated) / max(1, len(escalated)),
        routine=_share([p for t, p in predicted if t == ROUTINE]),
        criticism=_share([p for t, p in predicted if t == CRITICISM]),
        hard_negatives=_share([p for t, p in folded if t == NONE]),
        kfold_routine=_share([p for t, p in folded if t == ROUTINE]),
    )


def within_budget(result: Result) -> bool:
    return (result.routine <= MAX_ROUTINE and result.criticism <= MAX_CRITICISM
            and result.hard_negatives <= MAX_HARD and result.kfold_routine <= MAX_KFOLD_ROUTINE)


def choose(dev: Sequence[tuple[str, dict[str, float]]],
           kfold: Sequence[tuple[str, dict[str, float]]]) -> Result:
    """The threshold pair within budget with the best dev recall on the critical
    categories, then overall, then category accuracy; ties go to the stricter pair.

    (Per-category thresholds chosen one at a time let the first categories spend the
    whole false-alarm budget; with 30-45 dev examples a category, two numbers are what
    the data can support.)
    """
    best: tuple[tuple[float, float, float, float], Result] | None = None
    for critical in GRID:
        for other in GRID:
            trial = score(dev, kfold, {n: critical if n in CRITICAL else other
                                       for n in DETECTED})
            if not within_budget(trial):
                continue
            key = (round(sum(trial.recall[n] for n in CRITICAL) / len(CRITICAL), 6),
                   round(trial.overall, 6), round(trial.accuracy, 6), critical + other)
            if best is None or key > best[0]:
                best = (key, trial)
    if best is None:  # nothing meets the budget: the strictest pair
        return score(dev, kfold, {n: max(GRID) for n in DETECTED})
    return best[1]


def describe(result: Result) -> str:
    recall = ", ".join(f"{n} {result.recall[n]:.3f}" for n in DETECTED)
    return (f"dev recall overall {result.overall:.3f} ({recall}); category accuracy "
            f"{result.accuracy:.3f}; escalated: dev routine {result.routine:.4f}, dev "
            f"criticism {result.criticism:.3f}, k-fold hard negatives "
            f"{result.hard_negatives:.3f}, k-fold data/nlu {result.kfold_routine:.4f}")


def run() -> Result:
    examples, routine = load_examples(), routine_texts()
    dev = load_dev()
    dev_found = dev_scores(SafetyTriage(examples, routine), dev)
    kfold = held_out(examples, routine)
    print(f"dev set (data/safety/dev): {sum(map(len, dev.categories.values()))} escalation "
          f"examples, {len(dev.criticism)} criticism, {len(dev.routine)} routine; "
          f"{FOLDS}-fold: {sum(t == NONE for t, _ in kfold)} hard negatives, "
          f"{sum(t == ROUTINE for t, _ in kfold)} data/nlu examples")
    result = choose(dev_found, kfold)
    print("THRESHOLDS = {")
    for name in DETECTED:
        print(f'    "{name}": {result.thresholds[name]:.2f},')
    print("}")
    print("chosen: " + describe(result))
    print("in use: " + describe(score(dev_found, kfold, THRESHOLDS)))
    return result
