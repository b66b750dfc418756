from __future__ import annotations

import pytest

from bot.brain.evidence import EvidenceIndex


@pytest.fixture(scope="module")
def index() -> EvidenceIndex:
    texts = ["cara bayar pbb", "denda pbb telat bayar", "syarat bikin sim", "perpanjang sim c",
             "halo admin"]
    labels = ["faq/pbb", "faq/pbb", "faq/sim", "faq/sim", "greet"]
    return EvidenceIndex(texts, labels)


def test_a_message_like_the_topics_examples_has_high_evidence(index: EvidenceIndex) -> None:
    assert index.support("bayar pbb dimana", "faq/pbb") > 0.4


def test_a_message_sharing_only_a_question_word_has_low_evidence(index: EvidenceIndex) -> None:
    high = index.support("bayar pbb dimana", "faq/pbb")
    assert index.support("berapa jarak bumi ke bulan", "faq/pbb") < high / 3


def test_evidence_is_measured_against_the_named_topic_only(index: EvidenceIndex) -> None:
    assert index.support("syarat bikin sim", "faq/sim") == pytest.approx(1.0)
    assert index.support("syarat bikin sim", "faq/pbb") < 0.3


def test_empty_text_and_unknown_topic_have_no_evidence(index: EvidenceIndex) -> None:
    assert index.support("", "faq/pbb") == 0.0
    assert index.support("bayar pbb", "faq/tidak_ada") == 0.0


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        EvidenceIndex(["a"], [])


def test_the_fast_tfidf_equals_sklearns(index: EvidenceIndex) -> None:
    from bot.brain.evidence import _tfidf

    for text in ("bayar pbb dimana", "perpanjang sim c di mana ya", "zzz", "halo halo admin"):
        for vectorizer in (index.words, index.chars):
            expected = vectorizer.transform([text]).toarray()
            assert _tfidf(vectorizer, text).toarray() == pytest.approx(expected, abs=1e-12)
