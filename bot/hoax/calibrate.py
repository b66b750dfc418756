"""Choose the matcher's thresholds on held-out data: routine questions must not reach them.

Negatives are every training example in ``data/nlu/`` (routine questions, chit-chat,
out-of-scope requests); positives are the registry's own example phrasings. Both are
scored k-fold: each by a matcher built without it (an example never matches itself, a
routine text is never its own background).

* Learned entries: P_THRESHOLD and P_CUE (claim-like messages) are the pair with the
  best recall, a wrong entry counting as :data:`WRONG_COST` misses, among pairs that
  accept at most :data:`MAX_ALARM_RATE` of the routine examples, P_CUE being at most
  :data:`CUE_DISCOUNT` below P_THRESHOLD. A few routine examples are about hoax
  themes themselves ("ada yg nawarin lulus cpns asal bayar, itu beneran?"), so zero is
  not the right target.
* Title-only entries (similarity): THRESHOLD is the highest routine margin plus
  :data:`MARGIN`, rounded up to 0.05; CUE_THRESHOLD is lower by at most CUE_DISCOUNT
  and above every claim-like routine margin plus the margin.

The held-out test sets (tests/nlu, tests/hoax) are never read here. The chosen values
live in :mod:`bot.hoax.matcher`, set by hand from ``garda hoax calibrate``'s output.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.hoax.claims import claim_kind
from bot.hoax.matcher import (
    CUE_THRESHOLD,
    MIN_SCORE,
    P_CUE,
    P_THRESHOLD,
    THRESHOLD,
    HoaxMatcher,
    Match,
    routine_texts,
)
from bot.hoax.registry import HoaxEntry, Registry
from bot.nlu.normalizer import Normalizer

MARGIN = 0.05
CUE_DISCOUNT = 0.10
GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.30 ... 0.95
WRONG_COST = 5  # a wrong clarification costs as much recall as missing five hoaxes
MAX_ALARM_RATE = 0.002  # at most 1 in 500 held-out routine examples accepted
FOLDS = 5


def _round_up(value: float) -> float:
    return math.ceil(value * 20 - 1e-9) / 20


def _folds(items: Sequence, seed: int) -> list[list]:
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)  # noqa: S311 (a reproducible split)
    return [shuffled[fold::FOLDS] for fold in range(FOLDS)]


def held_out(entries: Sequence[HoaxEntry], routine: Sequence[str], normalizer: Normalizer,
             seed: int = 13) -> list[tuple[str | None, str, Match | None]]:
    """(expected id or None for routine, text, candidate) for every registry example and
    every routine text, each scored by a matcher built without it (k-fold)."""
    items: list[tuple[str | None, int, str]] = [
        (e.id, i, text) for e in entries for i, text in enumerate(e.examples)]
    items += [(None, i, text) for i, text in enumerate(routine)]
    found = []
    for held in _folds(items, seed):
        out = {(hoax_id, i) for hoax_id, i, _ in held}
        reduced = [
            replace(e, examples=tuple(t for i, t in enumerate(e.examples) if (e.id, i) not in out))
            for e in entries
        ]
        background = [t for i, t in enumerate(routine) if (None, i) not in out]
        matcher = HoaxMatcher(reduced, normalizer, background)
        for hoax_id, _, text in held:
            found.append((hoax_id, text, matcher.best(text)))
    return found


@dataclass(frozen=True)
class Point:
    p_threshold: float
    p_cue: float
    recall: float
    wrong: int
    false_alarms: int


def operating_points(results: Sequence[tuple[str | None, str, Match | None]],
                     normalizer: Normalizer) -> list[Point]:
    cued = [bool(claim_kind(normalizer.normalize(t), t)) for _, t, _ in results]
    points = []
    for p_threshold in GRID:
        # A cue may lower the bar by at most CUE_DISCOUNT: data/nlu has few claim-like
        # texts, so nothing else would stop P_CUE from sliding to the bottom of the grid.
        for p_cue in (g for g in GRID if p_threshold - CUE_DISCOUNT - 1e-9 <= g <= p_threshold):
            matcher = HoaxMatcher([], normalizer, [], p_threshold=p_threshold, p_cue=p_cue)
            recall = wrong = alarms = positives = 0
            for (expected, text, best), is_cued in zip(results, cued, strict=True):
                accepted = best is not None and (
                    best.probability >= (p_cue if is_cued else p_threshold)
                    if best.probability is not None else
                    matcher.accepts(best, normalizer.normalize(text), text))
                if expected is None:
                    alarms += int(accepted)
                    continue
                positives += 1
                recall += int(accepted and best is not None and best.hoax_id == expected)
                wrong += int(accepted and best is not None and best.hoax_id != expected)
            points.append(Point(p_threshold, p_cue, recall / max(1, positives), wrong, alarms))
    return points


def choose(points: Sequence[Point], negatives: int, positives: int) -> Point:
    """Among points that accept at most MAX_ALARM_RATE of routine texts, the best recall
    with each wrong entry counted as WRONG_COST misses; ties go to the stricter point."""
    allowed = [p for p in points if p.false_alarms <= MAX_ALARM_RATE * negatives]
    return max(allowed, key=lambda p: (round(p.recall - WRONG_COST * p.wrong / max(1, positives),
                                             6), p.p_threshold, p.p_cue))


def negative_scores(entries: Sequence[HoaxEntry], routine: Sequence[str], normalizer: Normalizer,
                    seed: int = 13) -> list[tuple[Match, str, bool]]:
    """Similarity only: (best match, text, reads like a claim) for every routine text, each
    with itself left out of the background (k-fold)."""
    found = []
    for held in _folds(routine, seed):
        out = set(held)
        matcher = HoaxMatcher(entries, normalizer, [t for t in routine if t not in out],
                              learn=False)
        for text in held:
            normal = matcher.normalize(text)
            ranked = matcher.rank(text, 1, normal)
            if ranked:
                found.append((ranked[0], text, bool(claim_kind(normal, text))))
    return found


@dataclass(frozen=True)
class Calibration:
    point: Point            # the classifier's thresholds for learned entries
    points: list[Point]
    positives: int
    negatives: int
    threshold: float        # similarity margin for title-only entries
    cue_threshold: float
    worst_negative: float
    worst_negative_text: str


def calibrate(entries: Sequence[HoaxEntry] | None = None,
              routine: Sequence[str] | None = None) -> Calibration:
    normalizer = Normalizer()
    entries = list(Registry.load().servable() if entries is None else entries)
    routine = list(routine_texts() if routine is None else routine)
    results = held_out(entries, routine, normalizer)
    points = operating_points(results, normalizer)
    positives = sum(1 for expected, _, _ in results if expected is not None)
    point = choose(points, len(routine), positives)

    neg = [(m, t, c) for m, t, c in negative_scores(entries, routine, normalizer)
           if m.score >= MIN_SCORE]
    plain = max(((m.margin, t) for m, t, c in neg if not c), default=(0.0, ""))
    cued = max((m.margin for m, _, c in neg if c), default=0.0)
    threshold = max(0.05, _round_up(plain[0] + MARGIN))
    cue_threshold = max(0.05, _round_up(cued + MARGIN), round(threshold - CUE_DISCOUNT, 2))
    return Calibration(point, points, positives, len(routine),
                       threshold, cue_threshold, plain[0], plain[1])


def run() -> Calibration:
    result = calibrate()
    point = result.point
    print(f"held out ({FOLDS}-fold): {result.positives} registry examples, "
          f"{result.negatives} routine examples (data/nlu)")
    print(f"learned entries (rule: at most {MAX_ALARM_RATE:.1%} of routine accepted, "
          "then best recall):")
    print(f"  P_THRESHOLD = {point.p_threshold:.2f}")
    print(f"  P_CUE       = {point.p_cue:.2f}")
    print(f"  recall {point.recall:.3f}, wrong entry {point.wrong}, routine accepted "
          f"{point.false_alarms}")
    print("title-only entries (similarity; rule: above every routine margin + "
          f"{MARGIN}): highest routine margin {result.worst_negative:+.3f} "
          f"({result.worst_negative_text!r})")
    print(f"  THRESHOLD     = {result.threshold:.2f}")
    print(f"  CUE_THRESHOLD = {result.cue_threshold:.2f}")
    print(f"in use (bot/hoax/matcher.py): P_THRESHOLD {P_THRESHOLD:.2f}, P_CUE {P_CUE:.2f}, "
          f"THRESHOLD {THRESHOLD:.2f}, CUE_THRESHOLD {CUE_THRESHOLD:.2f}, "
          f"MIN_SCORE {MIN_SCORE:.2f}")
    return result
