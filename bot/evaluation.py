"""Score the brain on labelled messages: what the benchmarks and the CI floor both use."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.brain.decision import Decision
from bot.brain.pipeline import Brain


@dataclass
class Scores:
    total: int = 0
    correct: int = 0  # top-1 topic equals the label, whatever the route
    answered_correct: int = 0  # answered with the right approved answer
    answered_wrong: int = 0  # answered with a wrong answer: the costly error
    routes: Counter[str] = field(default_factory=Counter)
    per_label: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def add(self, label: str, decision: Decision) -> None:
        self.total += 1
        predicted = decision.intent or "(none)"
        self.routes[decision.route] += 1
        if predicted == label:
            self.correct += 1
            self.per_label[label]["tp"] += 1
            if decision.route == "answer":
                self.answered_correct += 1
        else:
            self.per_label[label]["fn"] += 1
            self.per_label[predicted]["fp"] += 1
            self.confusions[(label, predicted)] += 1
            self.errors.append((decision.text, label, decision.intent, decision.route))
            if decision.route == "answer":
                self.answered_wrong += 1

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def f1(self, label: str) -> tuple[float, float, float]:
        c = self.per_label.get(label, Counter())
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    def labels(self) -> list[str]:
        return sorted(k for k, c in self.per_label.items() if c["tp"] + c["fn"])

    @property
    def macro_f1(self) -> float:
        labels = self.labels()
        return sum(self.f1(label)[2] for label in labels) / len(labels) if labels else 0.0

    def share(self, route: str) -> float:
        return self.routes[route] / self.total if self.total else 0.0


async def _decide_all(brain: Brain, texts: Sequence[str]) -> list[Decision]:
    return [await brain.decide(text) for text in texts]


def decide_all(brain: Brain, texts: Sequence[str]) -> list[Decision]:
    return asyncio.run(_decide_all(brain, texts))


def evaluate(brain: Brain, pairs: Iterable[tuple[str, str]]) -> Scores:
    pairs = list(pairs)
    scores = Scores()
    for (label, _), decision in zip(pairs, decide_all(brain, [t for _, t in pairs]), strict=True):
        scores.add(label, decision)
    return scores
