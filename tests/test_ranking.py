from __future__ import annotations

import pytest

from bot.brain.ranking import Thresholds, route_message, topic_ranking

T = Thresholds(answer=0.6, clarify=0.5)


def _rank(faq: float, others: dict[str, float], topics: dict[str, float]):
    intents = [{"name": "faq", "confidence": faq}] + [
        {"name": n, "confidence": c} for n, c in others.items()
    ]
    selector = {
        "faq": {
            "ranking": [
                {"intent_response_key": f"faq/{t}", "confidence": c} for t, c in topics.items()
            ]
        }
    }
    return topic_ranking(intents, selector)


def test_faq_topic_score_is_product_of_intent_and_selector_confidence() -> None:
    ranking = _rank(0.9, {"greet": 0.1}, {"ktp_baru": 0.8, "kia": 0.2})
    assert ranking[0] == ("faq/ktp_baru", pytest.approx(0.72))
    assert ("greet", 0.1) in ranking


def test_confident_topic_is_answered() -> None:
    routed = route_message(_rank(0.95, {"greet": 0.05}, {"sim": 0.9, "paspor": 0.1}), T)
    assert (routed.route, routed.topic) == ("answer", "faq/sim")


def test_two_close_topics_are_offered_as_buttons() -> None:
    routed = route_message(
        _rank(0.9, {"greet": 0.1}, {"ktp_baru": 0.5, "ktp_hilang_rusak": 0.45}), T
    )
    assert routed.route == "clarify"
    assert [t for t, _ in routed.options] == ["faq/ktp_baru", "faq/ktp_hilang_rusak"]


def test_diffuse_ranking_falls_back() -> None:
    topics = {f"t{i}": 0.1 for i in range(10)}
    assert route_message(_rank(0.5, {"greet": 0.5}, topics), T).route == "fallback"


def test_confident_out_of_scope_is_a_fallback_not_an_answer() -> None:
    routed = route_message(_rank(0.05, {"out_of_scope": 0.95}, {"sim": 1.0}), T)
    assert (routed.route, routed.topic) == ("fallback", "out_of_scope")


def test_chitchat_intents_are_answered() -> None:
    routed = route_message(_rank(0.02, {"thanks": 0.98}, {"sim": 1.0}), T)
    assert (routed.route, routed.topic) == ("answer", "thanks")


def test_empty_ranking_is_a_fallback() -> None:
    assert route_message([], T).route == "fallback"


def test_thresholds_outside_unit_interval_are_refused() -> None:
    with pytest.raises(ValueError):
        Thresholds(answer=1.5, clarify=0.2)


def test_low_evidence_is_a_fallback_however_confident_the_classifier() -> None:
    thresholds = Thresholds(answer=0.6, clarify=0.5, evidence=0.2)
    ranking = _rank(0.99, {"greet": 0.01}, {"pbb": 0.99, "sim": 0.01})
    low = route_message(ranking, thresholds, evidence=0.05)
    assert (low.route, low.topic, low.evidence) == ("fallback", "faq/pbb", 0.05)
    assert route_message(ranking, thresholds, evidence=0.5).route == "answer"


def test_routed_round_trips_through_its_dict() -> None:
    from bot.brain.ranking import Routed

    routed = route_message(
        _rank(0.9, {"greet": 0.1}, {"ktp_baru": 0.5, "kia": 0.45}), T, evidence=0.4
    )
    assert Routed.from_dict(routed.as_dict()) == routed
