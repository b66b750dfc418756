"""Calibrate the TopicRouter thresholds on a development split of the training data.

The held-out test set (tests/nlu/) is never read here: thresholds and pipeline choices are
made on a stratified, seeded split of data/nlu/ (train on the rest, measure on the split),
then the shipped model is trained on all of data/nlu/ with the chosen thresholds.

    garda calibrate            # report
    garda calibrate --write    # also write the thresholds into config.yml
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.nlu_data import read_examples, training_files
from bot.paths import project_root, state_dir
from bot.training import rasa_train

OUT_OF_SCOPE = "out_of_scope"
FAQ_PREFIX = "faq/"
# Of the messages Garda answers, at most this share may get a wrong answer.
MAX_WRONG_ANSWER_RATE = 0.02
# Of the messages offered two buttons, at least this share must have the right topic among them.
MIN_CLARIFY_HIT_RATE = 0.6
ANSWER_GRID = [round(0.20 + 0.05 * i, 2) for i in range(16)]  # 0.20 .. 0.95
EVIDENCE_GRID = [round(0.05 * i, 2) for i in range(13)]  # 0.00 .. 0.60


def stratified_split(
    pairs: Sequence[tuple[str, str]], dev_share: float, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in pairs:
        by_intent[pair[0]].append(pair)
    rng = random.Random(seed)  # noqa: S311 (a reproducible split, not a secret)
    train, dev = [], []
    for intent in sorted(by_intent):
        items = list(by_intent[intent])
        rng.shuffle(items)
        cut = max(1, round(len(items) * dev_share))
        dev.extend(items[:cut])
        train.extend(items[cut:])
    return train, dev


def write_nlu(pairs: Sequence[tuple[str, str]], path: Path) -> None:
    grouped: dict[str, list[str]] = defaultdict(list)
    for intent, text in pairs:
        grouped[intent].append(text)
    blocks = [
        {"intent": intent, "examples": "".join(f"- {t}\n" for t in texts)}
        for intent, texts in grouped.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({"version": "3.1", "nlu": blocks}, allow_unicode=True, sort_keys=False),
        "utf-8",
    )


@dataclass(frozen=True)
class Observation:
    label: str
    ranking: tuple[tuple[str, float], ...]
    evidence: float = 1.0

    @property
    def top(self) -> tuple[str, float]:
        return self.ranking[0] if self.ranking else ("", 0.0)

    def faq_options(self) -> list[tuple[str, float]]:
        return [pair for pair in self.ranking if pair[0].startswith(FAQ_PREFIX)][:2]


def answered(observations: Sequence[Observation], answer: float,
             evidence: float) -> list[Observation]:
    return [o for o in observations
            if o.top[1] >= answer and o.evidence >= evidence and o.top[0] != OUT_OF_SCOPE]


def choose_thresholds(observations: Sequence[Observation]) -> tuple[float, float]:
    """(answer, evidence): the pair that answers the most dev messages while at most
    MAX_WRONG_ANSWER_RATE of the answered ones get a wrong answer."""
    best: tuple[int, float, float] | None = None
    for answer in ANSWER_GRID:
        for evidence in EVIDENCE_GRID:
            hit = answered(observations, answer, evidence)
            wrong = sum(o.top[0] != o.label for o in hit)
            if hit and wrong / len(hit) <= MAX_WRONG_ANSWER_RATE:
                key = (len(hit), -answer, -evidence)
                if best is None or key > (best[0], -best[1], -best[2]):
                    best = (len(hit), answer, evidence)
    return (best[1], best[2]) if best else (ANSWER_GRID[-1], EVIDENCE_GRID[-1])


def choose_clarify_threshold(observations: Sequence[Observation], answer: float,
                             evidence: float) -> float:
    below = [o for o in observations
             if o.top[1] < answer and o.evidence >= evidence and len(o.faq_options()) == 2]
    for threshold in ANSWER_GRID:
        offered = [o for o in below if sum(c for _, c in o.faq_options()) >= threshold]
        if len(offered) < 5:
            break
        hits = [o for o in offered if o.label in {t for t, _ in o.faq_options()}]
        if len(hits) / len(offered) >= MIN_CLARIFY_HIT_RATE:
            return threshold
    return min(answer, 0.5)


def observe(model: Path, dev: Sequence[tuple[str, str]]) -> list[Observation]:
    from bot.brain.pipeline import Brain

    brain = Brain.load(model)

    async def run() -> list[Observation]:
        found = []
        for label, text in dev:
            parsed = await brain.agent.parse_message(text)
            ranking = tuple(
                (item["topic"], float(item["confidence"]))
                for item in (parsed.get("garda") or {}).get("ranking", [])
            )
            evidence = float((parsed.get("garda") or {}).get("evidence", 1.0))
            found.append(Observation(label, ranking, evidence))
        return found

    return asyncio.run(run())


def write_thresholds(config: Path, answer: float, clarify: float, evidence: float) -> None:
    text = config.read_text("utf-8")
    text = re.sub(r"(evidence_threshold:\s*)[0-9.]+", rf"\g<1>{evidence}", text)
    text = re.sub(r"(answer_threshold:\s*)[0-9.]+", rf"\g<1>{answer}", text)
    text = re.sub(r"(clarify_threshold:\s*)[0-9.]+", rf"\g<1>{clarify}", text)
    config.write_text(text, "utf-8")


def run(dev_share: float = 0.2, seed: int = 13, write: bool = False,
        config: Path | None = None) -> dict[str, float]:
    root = project_root()
    config = config or root / "config.yml"
    pairs = read_examples(training_files(root))
    train, dev = stratified_split(pairs, dev_share, seed)
    work = state_dir() / "calibration"
    shutil.rmtree(work, ignore_errors=True)
    write_nlu(train, work / "data" / "nlu" / "train.yml")
    shutil.copytree(root / "data" / "rules", work / "data" / "rules")
    print(f"Training on {len(train)} examples, measuring on {len(dev)} (seed {seed})...",
          file=sys.stderr)
    started = time.monotonic()
    model = rasa_train(config, work / "data", work, "calibration")
    train_seconds = time.monotonic() - started
    observations = observe(model, dev)
    answer, evidence = choose_thresholds(observations)
    clarify = choose_clarify_threshold(observations, answer, evidence)
    accuracy = sum(o.top[0] == o.label for o in observations) / len(observations)
    hit = answered(observations, answer, evidence)
    wrong = sum(o.top[0] != o.label for o in hit)
    oos = [o for o in observations if o.label == OUT_OF_SCOPE]
    oos_answered = sum(o in hit for o in oos)
    report = {
        "dev_examples": float(len(dev)),
        "dev_top1_accuracy": round(accuracy, 4),
        "answer_threshold": answer,
        "clarify_threshold": clarify,
        "evidence_threshold": evidence,
        "answered_share": round(len(hit) / len(observations), 4),
        "wrong_answer_share_of_answered": round(wrong / len(hit), 4) if hit else 0.0,
        "out_of_scope_dev_examples_answered": float(oos_answered),
        "train_seconds": round(train_seconds, 1),
    }
    for key, value in report.items():
        print(f"{key}: {value}")
    print("answer evidence answered wrong/answered  (curve on the dev split)")
    for threshold in (0.3, 0.5, 0.7, 0.9):
        for floor in (0.0, 0.1, 0.2, 0.3):
            got = answered(observations, threshold, floor)
            bad = sum(o.top[0] != o.label for o in got)
            print(f"curve {threshold:5.2f} {floor:8.2f} {len(got) / len(observations):8.3f} "
                  f"{bad / len(got) if got else 0.0:14.3f}")
    confusions = Counter((o.label, o.top[0]) for o in observations if o.top[0] != o.label)
    print("top confusions (expected -> ranked first: count): " + "; ".join(
        f"{a} -> {b}: {n}" for (a, b), n in confusions.most_common(12)))
    (work / "observations.json").write_text(json.dumps(
        [{"label": o.label, "text": text, "ranking": o.ranking, "evidence": o.evidence}
         for o, (_, text) in zip(observations, dev, strict=True)], ensure_ascii=False, indent=1),
        "utf-8")
    if write:
        write_thresholds(config, answer, clarify, evidence)
        print(f"Wrote the thresholds into {config}.", file=sys.stderr)
    return report
