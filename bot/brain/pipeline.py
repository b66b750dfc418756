"""From one citizen message to one Decision.

normalise -> (safety triage, hoax match: later issues) -> Rasa NLU + TopicRouter -> Decision.
The Rasa model is loaded once; :meth:`Brain.decide` is then cheap per message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bot.brain.decision import Button, Decision
from bot.brain.ranking import ANSWER, CLARIFY, FALLBACK, Routed
from bot.content import Content
from bot.nlu.normalizer import Normalizer
from bot.paths import in_project_root

logger = logging.getLogger(__name__)

# Text beyond this many characters does not change what a citizen is asking and only
# slows the featurizers down; the Decision still echoes the whole message.
MAX_NLU_CHARS = 2000
RETRIEVAL_INTENT = "faq"
NONE_PAYLOAD = "/none"
OUT_OF_SCOPE = "out_of_scope"
COMMANDS = {"/start": "greet", "/help": "capabilities", "/menu": "capabilities"}


def response_for(topic: str) -> str:
    """The domain response that answers ``topic`` (the same convention as data/rules)."""
    return f"utter_{topic}"


class Brain:
    def __init__(self, agent: Any, content: Content, normalizer: Normalizer | None = None) -> None:
        self.agent = agent
        self.content = content
        self.normalizer = normalizer or Normalizer()
        self.topics = {
            name.removeprefix("utter_")
            for name in content.responses
            if name.startswith(f"utter_{RETRIEVAL_INTENT}/")
        }

    @classmethod
    def load(cls, model_path: Path | None = None, content: Content | None = None) -> Brain:
        from rasa.core.agent import Agent

        from bot.training import model_path as default_model_path

        path = model_path or default_model_path()
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {path}; run `garda train` first")
        with in_project_root():
            agent = Agent.load(str(path))
        return cls(agent, content or Content.load())

    async def decide(self, text: Any, sender: str | None = None) -> Decision:
        original = text if isinstance(text, str) else ""
        stripped = original.strip()

        if stripped.startswith("/"):
            command = stripped.split(maxsplit=1)[0].split("@", 1)[0].lower()
            if command in COMMANDS:
                return self._decision(original, sender, ANSWER, COMMANDS[command], 1.0)
            if command == NONE_PAYLOAD:
                return self._decision(original, sender, FALLBACK, None, 0.0, "utter_fallback")
            topic = command[1:]
            if topic in self.topics:
                return self._decision(original, sender, ANSWER, topic, 1.0)
            # An unknown "/word": Rasa would read it as an intent; read it as text instead.
            stripped = stripped.lstrip("/")

        if not self.normalizer.normalize(stripped[:MAX_NLU_CHARS]):
            return self._decision(original, sender, FALLBACK, None, 0.0, "utter_empty")

        parsed = await self.agent.parse_message(stripped[:MAX_NLU_CHARS])
        routed = Routed.from_dict(parsed.get("garda") or {"route": FALLBACK})
        if routed.route == ANSWER and routed.topic:
            return self._decision(original, sender, ANSWER, routed.topic, routed.confidence)
        if routed.route == CLARIFY:
            buttons = (
                *(
                    Button(title=self.content.title(response_for(t)), payload=f"/{t}")
                    for t, _ in routed.options
                ),
                Button(title="Bukan keduanya", payload=NONE_PAYLOAD),
            )
            return self._decision(original, sender, CLARIFY, routed.topic, routed.confidence,
                                  "utter_clarify", buttons)
        reply = "utter_out_of_scope" if routed.topic == OUT_OF_SCOPE else "utter_fallback"
        return self._decision(original, sender, FALLBACK, routed.topic, routed.confidence, reply)

    def media(self, sender: str | None = None, detail: str | None = None) -> Decision:
        """A photo, voice note, sticker, location or file: Garda reads text only."""
        return self._decision("", sender, FALLBACK, None, 0.0, "utter_media")

    def failure(self, text: str, sender: str | None = None) -> Decision:
        """The approved reply when deciding failed (a bug or a broken model): never silence."""
        return self._decision(text, sender, FALLBACK, None, 0.0, "utter_fallback")

    def _decision(
        self,
        text: str,
        sender: str | None,
        route: str,
        intent: str | None,
        confidence: float,
        response: str | None = None,
        buttons: tuple[Button, ...] = (),
    ) -> Decision:
        """A Decision whose reply is the approved ``response`` (default: the intent's own)."""
        return Decision(
            text=text,
            route=route,
            intent=intent,
            confidence=confidence,
            category=None,
            hoax_id=None,
            reply=self.content.render(response or response_for(str(intent))),
            buttons=buttons,
            sender=sender,
        )
