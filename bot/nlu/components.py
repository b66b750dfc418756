"""Garda's custom Rasa graph components, named in ``config.yml``.

Both are thin: the logic lives in :mod:`bot.nlu.normalizer` and :mod:`bot.brain.ranking`,
where it is unit-tested without Rasa.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    INTENT_RANKING_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

# Rasa validates the graph from these signatures, so they use typing.List/Dict as Rasa does.
from bot.brain.ranking import Thresholds, route_message, topic_ranking
from bot.nlu.normalizer import Normalizer

logger = logging.getLogger(__name__)

ROUTING_KEY = "garda"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class IndonesianNormalizer(GraphComponent):
    """Rewrites each message's text into normalised chat Indonesian (bot.nlu.normalizer)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # Extra slang lexicon CSVs (``slang,formal`` or two unnamed columns), layered
            # under the curated one. A missing file is logged and skipped.
            "lexicons": [],
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = {**self.get_default_config(), **config}
        self._normalizer = Normalizer(self._config["lexicons"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> IndonesianNormalizer:
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            if example.get(TEXT) is not None:
                example.set(TEXT, self._normalizer.normalize(example.get(TEXT)))
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            message.set(TEXT, self._normalizer.normalize(message.get(TEXT)))
        return messages


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class TopicRouter(GraphComponent):
    """Ranks topics across DIET and the ResponseSelector and decides answer/clarify/fallback.

    A FAQ topic's confidence is P(faq) x P(topic | faq); other intents keep DIET's
    confidence. Below ``answer_threshold`` the two most likely FAQ topics are offered as
    buttons when together they reach ``clarify_threshold``; below that it is a fallback.
    The thresholds are calibrated by ``garda calibrate`` (see docs/nlu.md).
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "retrieval_intent": "faq",
            "out_of_scope_intent": "out_of_scope",
            "answer_threshold": 0.6,
            "clarify_threshold": 0.5,
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = {**self.get_default_config(), **config}
        self._thresholds = Thresholds(
            answer=float(self._config["answer_threshold"]),
            clarify=float(self._config["clarify_threshold"]),
        )

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TopicRouter:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            ranking = topic_ranking(
                message.get(INTENT_RANKING_KEY) or [],
                message.get("response_selector") or {},
                self._config["retrieval_intent"],
            )
            routed = route_message(
                ranking,
                self._thresholds,
                retrieval_intent=self._config["retrieval_intent"],
                out_of_scope_intent=self._config["out_of_scope_intent"],
            )
            message.set(ROUTING_KEY, routed.as_dict(), add_to_output=True)
        return messages
