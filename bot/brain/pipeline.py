"""From one citizen message to one Decision.

normalise -> safety triage -> hoax match -> Rasa NLU + TopicRouter -> Decision.
A sensitive message (bot/safety) gets its category's approved holding reply and is
escalated to people. A message that reads like a claim but matches no approved hoax gets the
fact-check holding reply and is escalated to the team (category ``fact_check``).
The Rasa model and the hoax index are built once; :meth:`Brain.decide` is then cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.brain.decision import ESCALATE, HOAX, OUT_OF_SCOPE, Button, Decision
from bot.brain.ranking import ANSWER, CLARIFY, FALLBACK, Routed
from bot.content import Content
from bot.hoax.claims import ASKS_TRUE, FORWARDED, QUESTION, claim_kind
from bot.hoax.matcher import HoaxMatcher, cached_matcher, routine_texts
from bot.hoax.registry import HoaxEntry, Registry, RegistryError
from bot.nlu.normalizer import Normalizer
from bot.paths import in_project_root
from bot.safety.categories import CRITICAL, FACT_CHECK, categories
from bot.safety.triage import SafetyTriage, default_triage

if TYPE_CHECKING:
    from bot.content_versions import ApprovedContent

logger = logging.getLogger(__name__)

# Text beyond this many characters does not change what a citizen is asking and only
# slows the featurizers down; the Decision still echoes the whole message.
MAX_NLU_CHARS = 2000
RETRIEVAL_INTENT = "faq"
NONE_PAYLOAD = "/none"
COMMANDS = {"/start": "greet", "/help": "capabilities", "/menu": "capabilities"}


def response_for(topic: str) -> str:
    """The domain response that answers ``topic`` (the same convention as data/rules)."""
    return f"utter_{topic}"


class Brain:
    # The registry version answering (bot/trainer/registry.py), "bootstrap" for
    # models/garda.tar.gz; None for a Brain built from parts.
    model_id: str | None = None

    def __init__(
        self,
        agent: Any,
        content: Content,
        normalizer: Normalizer | None = None,
        hoaxes: Sequence[HoaxEntry] | None = None,
        safety: SafetyTriage | None = None,
    ) -> None:
        """``hoaxes``: the registry entries to match (default: the servable entries of
        ``data/hoaxes/``). Each is checked again before it is sent, so one that lapses
        while Garda runs is never served. ``safety``: the triage classifier (default: the
        one trained from ``data/safety/``). Both are built on first use (:meth:`warm`), so
        a Brain that only renders replies costs nothing."""
        self.agent = agent
        self._content = content
        self._approved: ApprovedContent | None = None
        self.normalizer = normalizer or Normalizer()
        self._own_normalizer = normalizer is not None
        self._entries = None if hoaxes is None else tuple(hoaxes)
        self._hoax_index: dict[str, HoaxEntry] | None = None
        self._matcher: HoaxMatcher | None = None
        self._safety = safety
        self.topics = {
            name.removeprefix("utter_")
            for name in content.responses
            if name.startswith(f"utter_{RETRIEVAL_INTENT}/")
        }

    @property
    def content(self) -> Content:
        """The approved replies: the files', with the newest versions approved in the
        console laid over them once :meth:`follow_approvals` was called."""
        return self._content if self._approved is None else self._approved.content()

    def follow_approvals(self, database_url: str, poll_seconds: float | None = None) -> Brain:
        """Serve versions approved in the database (bot/content_versions.py), re-read at
        most every ``poll_seconds`` (default GARDA_CONTENT_POLL_SECONDS, 5): an approval
        reaches citizens within seconds, without a restart. Without it (tests, ``garda
        triage``) only the files are served."""
        from bot.content_versions import ApprovedContent

        self._approved = ApprovedContent(database_url, self._content, poll_seconds)
        return self

    @property
    def hoaxes(self) -> dict[str, HoaxEntry]:
        if self._hoax_index is None:
            if self._entries is None:
                self._entries = tuple(Registry.load().servable())
            self._hoax_index = {entry.id: entry for entry in self._entries}
        return self._hoax_index

    @property
    def matcher(self) -> HoaxMatcher:
        if self._matcher is None:
            entries = tuple(self.hoaxes.values())
            self._matcher = (HoaxMatcher(entries, self.normalizer) if self._own_normalizer
                             else cached_matcher(entries, tuple(routine_texts())))
        return self._matcher

    @property
    def safety(self) -> SafetyTriage:
        if self._safety is None:
            self._safety = default_triage()
        return self._safety

    def warm(self) -> Brain:
        """Build the hoax index and the safety classifier now, not on the first message."""
        _ = self.matcher, self.safety
        return self

    @classmethod
    def load(cls, model_path: Path | None = None, content: Content | None = None, *,
             model_id: str | None = None, safety: SafetyTriage | None = None) -> Brain:
        """The Rasa archive ``model_path``; without it, the model registry's version
        ``model_id`` (default: the active one, models/registry/CURRENT) with the safety
        classifier saved beside it, or the bootstrap model (models/garda.tar.gz, the safety
        classifier fitted now) when no version is active (bot/trainer/registry.py)."""
        from rasa.core.agent import Agent

        if model_path is None:
            from bot.trainer.registry import resolve

            model_id, model_path, safety_path = resolve(model_id)
            if safety is None and safety_path is not None:
                safety = SafetyTriage.load(safety_path)
        path = model_path
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {path}; run `garda train` first")
        with in_project_root():
            agent = Agent.load(str(path))
        brain = cls(agent, content or Content.load(), safety=safety).warm()
        brain.model_id = model_id
        return brain

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

        verdict = self.safety.classify(stripped)
        claim_text = self.matcher.normalize(stripped)
        kind = claim_kind(claim_text, stripped)
        hoax = self._hoax(original, sender, stripped, claim_text)
        # A known hoax gets its clarification, even when it sounds alarming ("penculik
        # mobil putih, sebarkan!"): unless the safety classifier reads a critical category
        # (emergency, self-harm, threat) in a message that is not a forwarded or
        # questioned claim: "anak saya barusan dibawa mobil putih, tolong!" is an
        # emergency first, whatever hoax it resembles.
        if hoax is not None and (verdict.category not in CRITICAL or kind is not None):
            return hoax
        if verdict.category is not None:
            if kind == FORWARDED and verdict.category not in CRITICAL:
                # A chain message that is hostile or alarming but not about anyone in
                # danger: it is a rumour to check before it is anything else.
                return self.escalation(original, FACT_CHECK, sender, verdict.probability)
            return self.escalation(original, verdict.category, sender, verdict.probability)

        parsed = await self.agent.parse_message(stripped[:MAX_NLU_CHARS])
        routed = Routed.from_dict(parsed.get("garda") or {"route": FALLBACK})
        if (
            kind == FORWARDED
            or (kind == QUESTION and routed.route != ANSWER)
            or (kind == ASKS_TRUE and routed.route == FALLBACK)
        ):
            # Reads like a claim the registry does not cover: hold, and tell the team.
            return self.escalation(original, FACT_CHECK, sender, routed.confidence, routed.topic)
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

    def _hoax(self, original: str, sender: str | None, stripped: str,
              claim_text: str) -> Decision | None:
        match = self.matcher.match(stripped, claim_text)
        if match is None:
            return None
        entry = self.hoaxes[match.hoax_id]
        if self._approved is not None:
            entry = self._approved.hoax(entry)
        try:
            reply = entry.render(self.content.settings)
        except RegistryError as error:
            logger.warning("hoax entry not served: %s", error)
            return None
        return Decision(text=original, route=HOAX, intent=None, confidence=match.score,
                        category=None, hoax_id=entry.id, reply=reply, sender=sender)

    def escalation(self, text: str, category: str, sender: str | None = None,
                   confidence: float = 0.0, intent: str | None = None) -> Decision:
        """For people, not the bot: the category's approved holding reply
        (settings/escalation.yml); the runtime opens the ticket."""
        reply = categories()[category].reply
        return self._decision(text, sender, ESCALATE, intent, confidence, reply,
                              category=category)

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
        category: str | None = None,
    ) -> Decision:
        """A Decision whose reply is the approved ``response`` (default: the intent's own)."""
        return Decision(
            text=text,
            route=route,
            intent=intent,
            confidence=confidence,
            category=category,
            hoax_id=None,
            reply=self.content.render(response or response_for(str(intent))),
            buttons=buttons,
            sender=sender,
        )
