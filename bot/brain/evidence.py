"""Evidence for a topic: how close a message comes to that topic's training examples.

DIET's softmax confidence says which topic is *least unlikely*, not whether the message
is about any topic at all: "berapa jarak bumi ke bulan" scores 0.99 for PBB because
"berapa" is all it recognises. The evidence score is the highest TF-IDF cosine
similarity between the message and the training examples of the topic ranked first
(word unigrams and bigrams plus character n-grams, on normalised text). A message that
shares no content with any example of the topic gets low evidence however confident the
classifier is, and the router does not answer it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


class EvidenceIndex:
    def __init__(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        if len(texts) != len(labels):
            raise ValueError("texts and labels differ in length")
        self.words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                     token_pattern=r"(?u)\b\w+\b")  # noqa: S106
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
        usable = [(t, lab) for t, lab in zip(texts, labels, strict=True) if t.strip()]
        self.labels = np.array([lab for _, lab in usable])
        body = [t for t, _ in usable]
        self.matrix = self._stack(self.words.fit_transform(body), self.chars.fit_transform(body))

    @staticmethod
    def _stack(words: Any, chars: Any) -> Any:
        # Each part is L2-normalised by the vectorizer; the halves are weighted equally.
        return normalize(hstack([words, chars]).tocsr())

    def _vector(self, text: str) -> Any:
        return self._stack(self.words.transform([text]), self.chars.transform([text]))

    def support(self, text: str, label: str) -> float:
        """Highest cosine similarity between ``text`` and an example labelled ``label``."""
        rows = np.flatnonzero(self.labels == label)
        if not text.strip() or rows.size == 0:
            return 0.0
        scores = self.matrix[rows] @ self._vector(text).T
        return float(scores.max()) if scores.nnz else 0.0
