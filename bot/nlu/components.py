"""Garda's custom Rasa graph components, named in ``config.yml``.

Both are thin: the logic lives in :mod:`bot.nlu.normalizer` and :mod:`bot.brain.ranking`,
where it is unit-tested without Rasa.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

import joblib
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
from bot.brain.evidence import EvidenceIndex
from bot.brain.ranking import Thresholds, route_message, topic_ranking
from bot.nlu.normalizer import Normalizer

logger = logging.getLogger(__name__)

ROUTING_KEY = "garda"
EVIDENCE_FILE = "evidence.joblib"


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
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class TopicRouter(GraphComponent):
    """Ranks topics across DIET and the ResponseSelector and decides answer/clarify/fallback.

    A FAQ topic's confidence is P(faq) x P(topic | faq); other intents keep DIET's
    confidence. Below ``evidence_threshold`` (similarity to the top topic's training
    examples, learned at training time: bot.brain.evidence) it is a fallback. Otherwise
    it answers at ``answer_threshold``; below that the two most likely FAQ topics are
    offered as buttons when together they reach ``clarify_threshold``, else a fallback.
    The thresholds are calibrated by ``garda calibrate`` (see docs/nlu.md).
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "retrieval_intent": "faq",
            "out_of_scope_intent": "out_of_scope",
            "answer_threshold": 0.6,
            "clarify_threshold": 0.5,
            "evidence_threshold": 0.0,
        }

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        index: EvidenceIndex | None = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._index = index
        self._thresholds = Thresholds(
            answer=float(self._config["answer_threshold"]),
            clarify=float(self._config["clarify_threshold"]),
            evidence=float(self._config["evidence_threshold"]),
        )

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TopicRouter:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        texts, labels = [], []
        for example in training_data.intent_examples:
            texts.append(example.get(TEXT) or "")
            labels.append(example.get_full_intent())
        index = EvidenceIndex(texts, labels)
        with self._model_storage.write_to(self._resource) as directory:
            joblib.dump(index, directory / EVIDENCE_FILE)
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> TopicRouter:
        with model_storage.read_from(resource) as directory:
            index = joblib.load(directory / EVIDENCE_FILE)
        return cls(config, model_storage, resource, index)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            ranking = topic_ranking(
                message.get(INTENT_RANKING_KEY) or [],
                message.get("response_selector") or {},
                self._config["retrieval_intent"],
            )
            evidence = 1.0
            if ranking and self._index is not None:
                evidence = self._index.support(message.get(TEXT) or "", ranking[0][0])
            routed = route_message(
                ranking,
                self._thresholds,
                retrieval_intent=self._config["retrieval_intent"],
                out_of_scope_intent=self._config["out_of_scope_intent"],
                evidence=evidence,
            )
            message.set(ROUTING_KEY, routed.as_dict(), add_to_output=True)
        return messages
