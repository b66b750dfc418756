"""Text features shared by Garda's own classifiers (hoax matcher, safety triage).

Two sparse TF-IDF views of normalised text: words stemmed with Sastrawi (Indonesian
affixes: "didaftarkan", "pendaftaran" and "daftar" meet) and character 3-5-grams inside
word boundaries (typos, run-together words). Both are fitted on the project's own data;
nothing is downloaded.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return StemmerFactory().create_stemmer()


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Sastrawi's stem of one lower-case word (placeholders and numbers kept as they are)."""
    if not word.isalpha() or len(word) <= 3:
        return word
    return _stemmer().stem(word) or word


def stemmed_words(text: str) -> list[str]:
    return [stem(w) for w in text.split()]


def word_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer=stemmed_words, sublinear_tf=True, dtype=np.float32)


def char_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                           dtype=np.float32)
