"""Match a message to the approved hoax registry, or abstain.

Each entry is indexed by its title, claim summary and every example phrasing (short
questions and long forwarded chain messages alike). A message is scored against every
indexed text with two TF-IDF views of the same normalised text (the foundation's
:class:`~bot.nlu.normalizer.Normalizer`, so slang, elongations, links and personal numbers
look the same here as in the NLU pipeline):

* words, stemmed with Sastrawi (Indonesian affixes: "didaftarkan", "pendaftaran" and
  "daftar" meet), and
* character n-grams (3-5) inside word boundaries, which survive typos and run-together
  words ("suryapaloh") (both from :mod:`bot.brain.features`).

The score of a text is the mean of the two cosines; an entry scores its best text. Both
views are sparse inverted indexes, so a message costs one sparse product per view
whatever the registry's size (see docs/benchmarks.md for 5,000 entries).

Entries written with example phrasings (the institution's own curated registry) are
also *learned*: a logistic regression over the same two views, with one class per such
entry and one for the routine background, decides whether a message is about one of them
(:data:`P_THRESHOLD`, or :data:`P_CUE` for claim-like messages). Measured on held-out
registry examples it finds far more than similarity alone and names the wrong entry far
less often (docs/hoax.md). Title-only entries (an imported national fact-check feed of
thousands) are matched by similarity with the margin rule below; both parts cost one
sparse product per message.

Abstaining is the default. The same index also holds a *routine background*: the
project's own NLU training examples (``data/nlu``), none of which is a hoax. A message
matches an entry only when it is closer to that entry than to anything routine, by at
least the calibrated margin: "bpjs kesehatan" is as close to routine BPJS questions as
to the "BPJS dibubarkan" hoax, so it abstains; "bpjs mau dibubarkan?" is not. The
margin is :data:`THRESHOLD`, or the lower :data:`CUE_THRESHOLD` when the message itself
reads like a claim (it asks whether something is true, or it is a forwarded chain
message), and the entry's own score must reach :data:`MIN_SCORE`. The values are chosen
by ``garda hoax calibrate`` (see docs/hoax.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bot.brain.features import char_vectorizer, word_vectorizer
from bot.hoax.claims import claim_kind
from bot.hoax.registry import HoaxEntry
from bot.nlu.normalizer import Normalizer
from bot.nlu_data import read_examples, training_files

# Calibrated by `garda hoax calibrate` (docs/hoax.md); a test re-checks the rule.
THRESHOLD = 0.15      # margin over the closest routine example, plain messages
CUE_THRESHOLD = 0.10  # the same for messages that read like claims
MIN_SCORE = 0.30      # an entry's own score, whatever the margin
P_THRESHOLD = 0.60    # learned entries: the classifier's probability, plain messages
P_CUE = 0.50          # ... and for messages that read like claims
MIN_EXAMPLES = 3      # an entry with this many example phrasings is learned
C = 20.0              # inverse regularisation of the classifier
# Beyond this many characters a chain message does not become more of a claim; its
# first part carries the claim, the rest is usually "sebarkan" and links.
MAX_CHARS = 4000
WORD_WEIGHT = 0.5


@dataclass(frozen=True)
class Match:
    hoax_id: str
    score: float       # the entry's best cosine
    margin: float      # score minus the best routine cosine
    probability: float | None = None  # the classifier's, for a learned entry


def routine_texts() -> list[str]:
    """The routine background: every NLU training example of the project."""
    return [text for _, text in read_examples(training_files())]


class HoaxMatcher:
    """An index over registry entries (give it only the entries that may be served)."""

    def __init__(
        self,
        entries: Sequence[HoaxEntry],
        normalizer: Normalizer | None = None,
        background: Sequence[str] | None = None,
        threshold: float = THRESHOLD,
        cue_threshold: float = CUE_THRESHOLD,
        min_score: float = MIN_SCORE,
        p_threshold: float = P_THRESHOLD,
        p_cue: float = P_CUE,
        learn: bool = True,
    ) -> None:
        """``background``: routine texts (default :func:`routine_texts`); ``learn=False``
        matches every entry by similarity alone."""
        self.normalizer = normalizer or Normalizer()
        self.threshold = threshold
        self.cue_threshold = cue_threshold
        self.min_score = min_score
        self.p_threshold = p_threshold
        self.p_cue = p_cue
        self.ids = [e.id for e in entries]
        self.learned = np.asarray(
            [learn and len(e.examples) >= MIN_EXAMPLES for e in entries], dtype=bool)
        self.classifier: LogisticRegression | None = None
        rows: list[str] = []
        owners: list[int] = []
        for number, entry in enumerate(entries):
            for text in entry.texts():
                normal = self.normalize(text)
                if normal:
                    rows.append(normal)
                    owners.append(number)
        self.entry_rows = len(rows)
        if rows:  # without entries there is nothing to match, and no background needed
            for text in routine_texts() if background is None else background:
                normal = self.normalize(text)
                if normal:
                    rows.append(normal)
        self.owner = np.asarray(owners, dtype=np.int64)
        self.words: TfidfVectorizer | None = None
        self.chars: TfidfVectorizer | None = None
        if not rows:
            return
        self.words = word_vectorizer()
        self.chars = char_vectorizer()
        # Stored transposed (features x rows, CSR): a query's non-zero features pick rows.
        word_rows = self.words.fit_transform(rows)
        char_rows = self.chars.fit_transform(rows)
        self.word_index = sparse.csr_matrix(word_rows.T)
        self.char_index = sparse.csr_matrix(char_rows.T)
        if self.learned.any():
            self._learn(sparse.hstack([word_rows, char_rows]).tocsr())

    def _learn(self, features: sparse.csr_matrix) -> None:
        """One class per learned entry (its index), -1 for routine and unlearned rows."""
        labels = np.full(features.shape[0], -1, dtype=np.int64)
        owners = self.owner
        labels[: self.entry_rows] = np.where(self.learned[owners], owners, -1)
        # Rows of unlearned entries are neither routine nor a learned entry: leave them out.
        keep = np.ones(features.shape[0], dtype=bool)
        keep[: self.entry_rows] = self.learned[owners]
        if len(np.unique(labels[keep])) < 2:  # one entry and no background: nothing to learn
            self.learned[:] = False
            return
        # One-vs-rest (liblinear): about 0.5 s here against 4 s for the multinomial fit, and
        # linear in the number of learned entries.
        self.classifier = LogisticRegression(C=C, solver="liblinear", class_weight="balanced")
        self.classifier.fit(features[keep], labels[keep])

    def __len__(self) -> int:
        return len(self.ids)

    def normalize(self, text: object) -> str:
        if not isinstance(text, str):
            return ""
        return self.normalizer.normalize(text[:MAX_CHARS])

    def score_all(self, normalized: str) -> tuple[np.ndarray, float]:
        """Each entry's best score, and the best routine score, for a normalised message."""
        return self._score(normalized)[:2]

    def _score(self, normalized: str) -> tuple[np.ndarray, float, tuple[int, float] | None]:
        """Entry scores, the routine score, and the classifier's (entry index, probability)
        when it picks a learned entry."""
        best = np.zeros(len(self.ids), dtype=np.float32)
        if not normalized or self.words is None or self.chars is None:
            return best, 0.0, None
        q_words = self.words.transform([normalized])
        q_chars = self.chars.transform([normalized])
        learned: tuple[int, float] | None = None
        if self.classifier is not None:
            probabilities = self.classifier.predict_proba(sparse.hstack([q_words, q_chars]))[0]
            top = int(np.argmax(probabilities))
            label = int(self.classifier.classes_[top])
            if label >= 0:
                learned = (label, float(probabilities[top]))
        # (1 x features) @ (features x rows): only the query's own features' postings are read.
        per_row = WORD_WEIGHT * (q_words @ self.word_index).toarray().ravel()
        per_row += (1 - WORD_WEIGHT) * (q_chars @ self.char_index).toarray().ravel()
        np.maximum.at(best, self.owner, per_row[: self.entry_rows].astype(np.float32))
        routine = per_row[self.entry_rows:]
        return best, float(routine.max()) if len(routine) else 0.0, learned

    def scores(self, normalized: str) -> np.ndarray:
        """Each entry's best score against an already normalised message."""
        return self.score_all(normalized)[0]

    def rank(self, text: str, k: int = 5, normalized: str | None = None) -> list[Match]:
        """The ``k`` best entries for ``text``, best first, whatever their score."""
        normal = self.normalize(text) if normalized is None else normalized
        best, routine = self.score_all(normal)
        if not len(best):
            return []
        k = min(k, len(best))
        top = np.argpartition(-best, k - 1)[:k]
        top = top[np.argsort(-best[top], kind="stable")]
        return [Match(self.ids[i], float(best[i]), float(best[i]) - routine) for i in top]

    def threshold_for(self, normalized: str, raw: str = "") -> float:
        return self.cue_threshold if claim_kind(normalized, raw) else self.threshold

    def accepts(self, match: Match, normalized: str, raw: str = "") -> bool:
        """Would Garda answer with ``match``? (see the module docstring)"""
        cued = bool(claim_kind(normalized, raw))
        if match.probability is not None:
            return match.probability >= (self.p_cue if cued else self.p_threshold)
        return (match.score >= self.min_score
                and match.margin >= (self.cue_threshold if cued else self.threshold))

    def best(self, text: str, normalized: str | None = None) -> Match | None:
        """The candidate Garda would consider: the classifier's learned entry if it names
        one, else the most similar entry that is not learned."""
        normal = self.normalize(text) if normalized is None else normalized
        scores, routine, learned = self._score(normal)
        if learned is not None:
            i, probability = learned
            return Match(self.ids[i], float(scores[i]), float(scores[i]) - routine, probability)
        candidates = np.where(~self.learned)[0]
        if not len(candidates):
            return None
        i = int(candidates[np.argmax(scores[candidates])])
        return Match(self.ids[i], float(scores[i]), float(scores[i]) - routine)

    def match(self, text: str, normalized: str | None = None) -> Match | None:
        """The entry ``text`` is about, or None (abstain: see the module docstring)."""
        normal = self.normalize(text) if normalized is None else normalized
        found = self.best(text, normal)
        if found is not None and self.accepts(found, normal, text):
            return found
        return None


@functools.lru_cache(maxsize=4)
def cached_matcher(entries: tuple[HoaxEntry, ...], background: tuple[str, ...]) -> HoaxMatcher:
    """One matcher per (registry, routine background) in a process: building one fits the
    classifier (about a second), and every Brain of a process may share it."""
    return HoaxMatcher(entries, background=background)
