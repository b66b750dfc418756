"""A stand-in for Rasa's parser, for brain tests that script what the model says."""

from __future__ import annotations

from typing import Any

from bot.brain.ranking import Routed


class ScriptedParser:
    """Answers parse_message with a fixed routing result and records what it was asked."""

    def __init__(self, routed: Routed) -> None:
        self.routed = routed
        self.seen: list[str] = []

    async def parse_message(self, text: str) -> dict[str, Any]:
        self.seen.append(text)
        return {"text": text, "garda": self.routed.as_dict()}
