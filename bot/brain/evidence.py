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
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
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
        return self._stack(_tfidf(self.words, text), _tfidf(self.chars, text))

    def _rows(self, label: str) -> Any:
        """The examples of one topic (sliced once: the index is pickled in the model)."""
        cache: dict[str, Any] = self.__dict__.setdefault("_by_label", {})
        if label not in cache:
            cache[label] = self.matrix[np.flatnonzero(self.labels == label)]
        return cache[label]

    def support(self, text: str, label: str) -> float:
        """Highest cosine similarity between ``text`` and an example labelled ``label``."""
        rows = self._rows(label)
        if not text.strip() or rows.shape[0] == 0:
            return 0.0
        scores = rows @ self._vector(text).T
        return float(scores.max()) if scores.nnz else 0.0


def _tfidf(vectorizer: TfidfVectorizer, text: str) -> Any:
    """``vectorizer.transform([text])``, without sklearn 1.1 rebuilding the idf vector from
    its diagonal matrix on every call (a tenth of the brain's time per message)."""
    idf = vectorizer.__dict__.get("_garda_idf")
    if idf is None:
        idf = vectorizer.__dict__["_garda_idf"] = np.asarray(vectorizer.idf_)
    counts = CountVectorizer.transform(vectorizer, [text]).astype(np.float64)
    if vectorizer.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1
    counts.data *= idf[counts.indices]
    return normalize(counts, norm=vectorizer.norm, copy=False)
