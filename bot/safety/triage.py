"""Safety triage: is this message for a person rather than the FAQ bot, and why?

A linear classifier (multinomial logistic regression) over the two text views of
:mod:`bot.brain.features`, trained at start-up from the project's own examples:
``data/safety/<category>.yml`` for each detected category, and as the ``none`` class
``data/safety/none.yml`` (civil criticism, political opinion, routine questions that use
alarming words) together with every routine NLU example in ``data/nlu``. No external
data is used for the model, so it behaves the same on every machine.

A message is escalated to the category the classifier ranks first when that category's
probability reaches its calibrated threshold (:data:`THRESHOLDS`). The critical
categories (emergency, self-harm, threat) are checked first and on their own: a message
that reaches an emergency's threshold is escalated as one even if another category ranks
higher, because missing an emergency costs more than a false alarm. ``garda safety
calibrate`` chooses the thresholds on the development set ``data/safety/dev/`` and k-fold
held-out training data (docs/escalation.md).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from bot.brain.features import char_vectorizer, word_vectorizer
from bot.nlu.normalizer import Normalizer
from bot.nlu_data import read_examples, training_files
from bot.paths import project_root
from bot.safety.categories import CRITICAL, DETECTED

NONE = "none"
logger = logging.getLogger(__name__)
# Calibrated by `garda safety calibrate` (docs/escalation.md).
THRESHOLDS: dict[str, float] = {
    "emergency": 0.75, "self_harm": 0.75, "threat": 0.75, "hate_speech": 0.90,
    "abuse": 0.90, "privacy": 0.90, "corruption": 0.90, "human_request": 0.90,
}
C = 10.0
MAX_CHARS = 2000
# Version of the file :meth:`SafetyTriage.save` writes; a different one is refused on load.
SAVED_FORMAT = 1


LEXICON = Path(__file__).with_name("lexicon.yml")
LEXICON_WEIGHT = 1.0


class Lexicon:
    """Curated cue words per category (``bot/safety/lexicon.yml``), as features."""

    def __init__(self, path: Path = LEXICON) -> None:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        self.phrases: list[tuple[str, ...]] = []
        self.prefixes: list[tuple[str, ...]] = []
        for name in DETECTED:
            entries = [str(e).strip().lower() for e in data.get(name) or ()]
            self.phrases.append(tuple(f" {e} " for e in entries if not e.endswith("*")))
            self.prefixes.append(tuple(e[:-1] for e in entries if e.endswith("*")))

    def features(self, normalized: Sequence[str]) -> sparse.csr_matrix:
        """One row per text: log(1 + cue words found) for each detected category."""
        rows = []
        for text in normalized:
            padded, words = f" {text} ", text.split()
            rows.append([
                sum(phrase in padded for phrase in phrases)
                + sum(word.startswith(prefixes) for word in words) if prefixes else
                sum(phrase in padded for phrase in phrases)
                for phrases, prefixes in zip(self.phrases, self.prefixes, strict=True)
            ])
        return sparse.csr_matrix(LEXICON_WEIGHT * np.log1p(np.asarray(rows, dtype=np.float32)))


class SafetyDataError(Exception):
    """data/safety/ is missing a category or holds a file it cannot read."""


def data_dir() -> Path:
    return project_root() / "data" / "safety"


def load_examples(folder: Path | None = None) -> dict[str, tuple[str, ...]]:
    """{category or "none": examples} from ``data/safety/*.yml``."""
    folder = folder or data_dir()
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        name = data.get("category")
        if name not in (*DETECTED, NONE) or name != path.stem:
            raise SafetyDataError(f"{path.name}: category must be its file name, one of "
                                  f"{', '.join((*DETECTED, NONE))}")
        found[name] = tuple(str(e).strip() for e in data.get("examples") or () if str(e).strip())
    missing = [name for name in (*DETECTED, NONE) if not found.get(name)]
    if missing:
        raise SafetyDataError(f"{folder}: no examples for {', '.join(missing)}")
    return found


def routine_texts() -> tuple[str, ...]:
    return tuple(text for _, text in read_examples(training_files()))


@dataclass(frozen=True)
class Verdict:
    category: str | None   # None: not for a person (the ordinary path answers it)
    probability: float     # of the category (or of the best one, when None)
    best: str              # the category ranked first, "none" included


class SafetyTriage:
    def __init__(
        self,
        examples: Mapping[str, Sequence[str]] | None = None,
        background: Iterable[str] | None = None,
        normalizer: Normalizer | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.normalizer = normalizer or Normalizer()
        self.thresholds = dict(THRESHOLDS if thresholds is None else thresholds)
        examples = load_examples() if examples is None else examples
        texts: list[str] = []
        labels: list[str] = []
        for name, items in examples.items():
            for text in items:
                normal = self.normalize(text)
                if normal:
                    texts.append(normal)
                    labels.append(name)
        for text in routine_texts() if background is None else background:
            normal = self.normalize(text)
            if normal:
                texts.append(normal)
                labels.append(NONE)
        self.words = word_vectorizer()
        self.chars = char_vectorizer()
        self.lexicon = Lexicon()
        features = sparse.hstack([self.words.fit_transform(texts),
                                  self.chars.fit_transform(texts),
                                  self.lexicon.features(texts)]).tocsr()
        # Multinomial: on held-out training data it ranked the right category first for 75%
        # of escalations against 67% for one-vs-rest (docs/escalation.md).
        self.model = LogisticRegression(C=C, max_iter=2000, class_weight="balanced")
        self.model.fit(features, labels)
        self.classes = [str(c) for c in self.model.classes_]

    def save(self, path: Path) -> None:
        """Keep the fitted classifier (vectorizers, model, cue lexicon, thresholds) in one
        file: a model version in the registry pins its escalation classifier with it, and
        loading it skips the fit at start-up. The normalizer is not kept: like the Rasa
        model's, it is the code and lexicon of the running Garda."""
        import joblib
        import sklearn

        state = {"format": SAVED_FORMAT, "sklearn": sklearn.__version__, "words": self.words,
                 "chars": self.chars, "lexicon": self.lexicon, "model": self.model,
                 "thresholds": self.thresholds}
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        joblib.dump(state, partial)
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path, normalizer: Normalizer | None = None) -> SafetyTriage:
        """A classifier :meth:`save` wrote. A pickle runs code when loaded: only ever load
        files Garda wrote itself into its own registry."""
        import joblib
        import sklearn

        state = joblib.load(path)
        if not isinstance(state, dict) or state.get("format") != SAVED_FORMAT:
            raise SafetyDataError(f"{path}: not a safety classifier saved by this Garda")
        if state.get("sklearn") != sklearn.__version__:
            raise SafetyDataError(f"{path}: saved with scikit-learn {state.get('sklearn')}, "
                                  f"this is {sklearn.__version__}; train the model again")
        triage = cls.__new__(cls)
        triage.normalizer = normalizer or Normalizer()
        triage.thresholds = dict(state["thresholds"])
        triage.words, triage.chars = state["words"], state["chars"]
        triage.lexicon, triage.model = state["lexicon"], state["model"]
        triage.classes = [str(c) for c in triage.model.classes_]
        return triage

    def normalize(self, text: object) -> str:
        if not isinstance(text, str):
            return ""
        return self.normalizer.normalize(text[:MAX_CHARS])

    def probabilities(self, normalized: str) -> dict[str, float]:
        features = sparse.hstack([self.words.transform([normalized]),
                                  self.chars.transform([normalized]),
                                  self.lexicon.features([normalized])])
        return dict(zip(self.classes, map(float, self.model.predict_proba(features)[0]),
                        strict=True))

    def classify(self, text: object, normalized: str | None = None) -> Verdict:
        normal = self.normalize(text) if normalized is None else normalized
        if not normal:
            return Verdict(None, 0.0, NONE)
        return self.decide(self.probabilities(normal))

    def decide(self, probabilities: Mapping[str, float]) -> Verdict:
        """The verdict for a probability vector (see the module docstring)."""
        best = max(probabilities, key=lambda c: probabilities[c])
        for name in CRITICAL:
            if probabilities.get(name, 0.0) >= self.thresholds[name]:
                return Verdict(name, probabilities[name], best)
        if best != NONE and probabilities[best] >= self.thresholds[best]:
            return Verdict(best, probabilities[best], best)
        return Verdict(None, probabilities[best], best)


@functools.lru_cache(maxsize=2)
def cached_triage(examples: tuple[tuple[str, tuple[str, ...]], ...],
                  background: tuple[str, ...]) -> SafetyTriage:
    """One classifier per (data, background) in a process: every Brain may share it."""
    return SafetyTriage(dict(examples), background)


# What a fitted classifier depends on: its data, its features' code and lexicons.
_SOURCES = (Path(__file__), LEXICON, Path(__file__).parent.parent / "brain" / "features.py",
            Path(__file__).parent.parent / "nlu" / "normalizer.py")


def fit_key() -> str:
    """A digest of everything a fitted default classifier depends on: the examples, the
    routine texts, the code and lexicons of its features, the thresholds and scikit-learn's
    version. Equal keys mean an equal classifier, so a saved one may stand in for a fit."""
    import hashlib

    import sklearn

    digest = hashlib.sha256()
    normalizer_lexicons = sorted((Path(__file__).parent.parent / "nlu" / "lexicon").glob("*"))
    for path in (*sorted(data_dir().glob("*.yml")), *training_files(), *_SOURCES,
                 *normalizer_lexicons):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{sklearn.__version__} {sorted(THRESHOLDS.items())} {C}".encode())
    return digest.hexdigest()


def default_triage() -> SafetyTriage:
    """The classifier of the project's own data, fitted once per data version on a machine.

    The fit takes 10-20 s (more on a busy machine) and every process that starts a brain
    needs it; the fitted classifier is kept in ``.garda/cache/`` under :func:`fit_key`,
    so only the first process after a data change pays for it. A file that cannot be read
    is ignored and fitted again.
    """
    return _saved_or_fitted(fit_key())


@functools.lru_cache(maxsize=2)
def _saved_or_fitted(key: str) -> SafetyTriage:
    from bot.paths import state_dir

    examples, routine = tuple(sorted(load_examples().items())), routine_texts()
    cache = state_dir() / "cache"
    path = cache / f"safety-{key[:24]}.joblib"
    if path.is_file():
        try:
            return SafetyTriage.load(path)
        except Exception as error:  # a damaged cache is fitted again, never fatal
            logger.warning("ignoring the cached safety classifier: %s", type(error).__name__)
    triage = cached_triage(examples, routine)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        triage.save(path)
        for old in cache.glob("safety-*.joblib"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as error:
        logger.warning("could not cache the safety classifier: %s", type(error).__name__)
    return triage
