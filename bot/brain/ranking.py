"""One ranking over every topic, and the answer / clarify / fallback rule.

DIET ranks the intents (``greet``, ``faq``, ``feedback``...), the ResponseSelector ranks the
FAQ topics given ``faq``. A citizen does not care about that split, so the two are merged
into one ranking: a FAQ topic's score is P(faq) x P(topic | faq).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ANSWER = "answer"
CLARIFY = "clarify"
FALLBACK = "fallback"


@dataclass(frozen=True)
class Thresholds:
    """``answer``: the top topic's score needed to answer it.

    ``clarify``: below ``answer``, the summed score of the two best FAQ topics needed to
    offer them as buttons; below that Garda says it did not understand.
    ``evidence``: the least similarity to the top topic's training examples
    (bot.brain.evidence) for Garda to answer or clarify at all; below it, a fallback.
    """

    answer: float
    clarify: float
    evidence: float = 0.0

    def __post_init__(self) -> None:
        if not all(0.0 <= v <= 1.0 for v in (self.answer, self.clarify, self.evidence)):
            raise ValueError(f"thresholds must lie in [0, 1]: {self}")


@dataclass(frozen=True)
class Routed:
    route: str
    topic: str | None
    confidence: float
    options: tuple[tuple[str, float], ...] = field(default=())
    evidence: float = 1.0
    ranking: tuple[tuple[str, float], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "topic": self.topic,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "options": [{"topic": t, "confidence": c} for t, c in self.options],
            "ranking": [{"topic": t, "confidence": c} for t, c in self.ranking],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Routed:
        return cls(
            route=data["route"],
            topic=data.get("topic"),
            confidence=float(data.get("confidence") or 0.0),
            evidence=float(data.get("evidence", 1.0)),
            options=tuple((o["topic"], float(o["confidence"])) for o in data.get("options", [])),
            ranking=tuple((o["topic"], float(o["confidence"])) for o in data.get("ranking", [])),
        )


def topic_ranking(
    intent_ranking: Iterable[Mapping[str, Any]],
    response_selector: Mapping[str, Any],
    retrieval_intent: str = "faq",
) -> list[tuple[str, float]]:
    """Merge DIET's intent ranking and the ResponseSelector's ranking, best first."""
    ranking: list[tuple[str, float]] = []
    retrieval_confidence = 0.0
    for item in intent_ranking:
        name, confidence = item.get("name"), float(item.get("confidence") or 0.0)
        if not name:
            continue
        if name == retrieval_intent:
            retrieval_confidence = confidence
        else:
            ranking.append((name, confidence))
    selector = response_selector.get(retrieval_intent) or {}
    for item in selector.get("ranking") or []:
        key = item.get("intent_response_key")
        if key:
            ranking.append((key, retrieval_confidence * float(item.get("confidence") or 0.0)))
    ranking.sort(key=lambda pair: (-pair[1], pair[0]))
    return ranking


def route_message(
    ranking: list[tuple[str, float]],
    thresholds: Thresholds,
    retrieval_intent: str = "faq",
    out_of_scope_intent: str = "out_of_scope",
    keep: int = 5,
    evidence: float = 1.0,
) -> Routed:
    """Decide answer, clarify or fallback from a merged ranking (see module docstring).

    ``evidence`` is the top topic's evidence score; below ``thresholds.evidence`` the
    message shares too little with anything Garda was taught to answer it or guess.
    """
    top = tuple(ranking[:keep])
    if not ranking:
        return Routed(FALLBACK, None, 0.0, ranking=top, evidence=0.0)
    best, confidence = ranking[0]
    if evidence < thresholds.evidence:
        return Routed(FALLBACK, best, confidence, ranking=top, evidence=evidence)
    if confidence >= thresholds.answer:
        route = FALLBACK if best == out_of_scope_intent else ANSWER
        return Routed(route, best, confidence, ranking=top, evidence=evidence)
    prefix = retrieval_intent + "/"
    options = tuple(pair for pair in ranking if pair[0].startswith(prefix))[:2]
    if len(options) == 2 and options[0][1] + options[1][1] >= thresholds.clarify:
        return Routed(CLARIFY, best, confidence, options=options, ranking=top,
                      evidence=evidence)
    return Routed(FALLBACK, best, confidence, ranking=top, evidence=evidence)
