"""The Decision: the one value every path agrees on (see docs/architecture.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

ROUTES = ("answer", "hoax", "escalate", "clarify", "fallback")
HOAX = "hoax"
ESCALATE = "escalate"
OUT_OF_SCOPE = "out_of_scope"  # the intent of requests outside the institution's services


@dataclass(frozen=True)
class Button:
    title: str
    payload: str


@dataclass(frozen=True)
class Decision:
    """What Garda does with one message.

    ``reply`` is always approved content (a domain response or an approved hoax
    clarification); ``buttons`` carry payloads that Garda itself understands
    (``/faq/<topic>``, ``/none``).
    """

    text: str
    route: str
    intent: str | None
    confidence: float
    category: str | None
    hoax_id: str | None
    reply: str
    buttons: tuple[Button, ...] = field(default=())
    sender: str | None = None

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["confidence"] = round(float(self.confidence), 4)
        data["buttons"] = [asdict(b) for b in self.buttons]
        if self.sender is None:
            data.pop("sender")
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False)
