"""The brain's Decision logic around the model, with a stand-in for Rasa's parser.

(End to end through the real model: test_triage.py and test_nlu_heldout.py.)
"""

from __future__ import annotations

import asyncio

import pytest
from scripted import ScriptedParser

from bot.brain.pipeline import Brain
from bot.brain.ranking import Routed
from bot.content import Content


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


def _decide(content: Content, routed: Routed, text: str):
    parser = ScriptedParser(routed)
    return asyncio.run(Brain(parser, content).decide(text)), parser


def test_clarify_offers_the_two_topics_and_a_way_out(content: Content) -> None:
    routed = Routed("clarify", "faq/ktp_baru", 0.45,
                    options=(("faq/ktp_baru", 0.45), ("faq/ktp_hilang_rusak", 0.4)))
    decision, _ = _decide(content, routed, "ktp")
    assert decision.route == "clarify" and decision.intent == "faq/ktp_baru"
    assert decision.reply == content.render("utter_clarify")
    assert [b.payload for b in decision.buttons] == [
        "/faq/ktp_baru", "/faq/ktp_hilang_rusak", "/none"
    ]
    assert decision.buttons[0].title == content.title("utter_faq/ktp_baru")


def test_choosing_a_button_answers_that_topic_without_the_model(content: Content) -> None:
    decision, parser = _decide(content, Routed("fallback", None, 0.0), "/faq/ktp_hilang_rusak")
    assert (decision.route, decision.intent, decision.confidence) == (
        "answer", "faq/ktp_hilang_rusak", 1.0)
    assert decision.reply == content.render("utter_faq/ktp_hilang_rusak")
    assert parser.seen == []


def test_none_of_these_gives_the_fallback(content: Content) -> None:
    decision, _ = _decide(content, Routed("answer", "faq/sim", 0.9), "/none")
    assert decision.route == "fallback"
    assert decision.reply == content.render("utter_fallback")


def test_unknown_slash_word_is_read_as_text_not_as_an_intent(content: Content) -> None:
    decision, parser = _decide(content, Routed("answer", "faq/sim", 0.9), "/perpanjang sim")
    assert parser.seen == ["perpanjang sim"]
    assert decision.intent == "faq/sim"


def test_out_of_scope_gets_its_own_reply(content: Content) -> None:
    decision, _ = _decide(content, Routed("fallback", "out_of_scope", 0.9), "resep rendang")
    assert decision.route == "fallback"
    assert decision.reply == content.render("utter_out_of_scope")


def test_empty_message_never_reaches_the_model(content: Content) -> None:
    decision, parser = _decide(content, Routed("answer", "faq/sim", 0.9), " 🙏 ")
    assert parser.seen == []
    assert decision.reply == content.render("utter_empty")


def test_long_message_is_cut_for_the_model_but_echoed_whole(content: Content) -> None:
    text = "syarat sim " * 1000
    decision, parser = _decide(content, Routed("answer", "faq/sim", 0.9), text)
    assert len(parser.seen[0]) <= 2000
    assert decision.text == text
