"""Hoax correction inside the brain: order of checks, approval at send time, fact-check.

The scripted tests stand in for Rasa's parser (as tests/test_brain.py does); the ones
marked ``model`` run the real trained model on the held-out messages of
tests/hoax/paraphrases.yml (never used for tuning: see tests/test_hoax_matcher.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from scripted import ScriptedParser

from bot.brain.decision import Decision
from bot.brain.pipeline import Brain
from bot.brain.ranking import Routed
from bot.content import Content
from bot.hoax.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
PARAPHRASES = yaml.safe_load((ROOT / "tests" / "hoax" / "paraphrases.yml").read_text("utf-8"))
VACCINE = "min bener ga sih vaksin itu isinya microchip? lengan temenku jadi nempel magnet"
UNKNOWN_CHAIN = (
    "PENTING!!! Mulai malam ini jam 24.00 harga gas melon naik jadi 50 ribu per tabung, "
    "sudah diumumkan resmi. Buruan beli sebelum naik!! SEBARKAN ke semua grup keluarga"
)


ANSWER = Routed("answer", "faq/bansos", 0.97)
CLARIFY = Routed("clarify", "faq/bansos", 0.5,
                 options=(("faq/bansos", 0.5), ("faq/ktp_baru", 0.4)))
FALLBACK = Routed("fallback", None, 0.1)


@pytest.fixture(scope="module")
def content() -> Content:
    return Content.load()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def decide(content: Content, text: str, routed: Routed = FALLBACK,
           **brain: Any) -> tuple[Decision, ScriptedParser]:
    parser = ScriptedParser(routed)
    return asyncio.run(Brain(parser, content, **brain).decide(text, "s1")), parser


def test_a_known_hoax_gets_its_approved_clarification_before_nlu_runs(
    content: Content, registry: Registry
) -> None:
    decision, parser = decide(content, VACCINE, ANSWER)
    entry = registry.entries["vaksin-microchip-magnet"]
    assert (decision.route, decision.hoax_id, decision.category) == (
        "hoax", "vaksin-microchip-magnet", None)
    assert decision.reply == entry.render(content.settings)
    assert "Sumber resmi:" in decision.reply
    assert all(source.url in decision.reply for source in entry.sources)
    assert parser.seen == []  # the FAQ model never saw it
    assert decision.as_dict()["hoax_id"] == "vaksin-microchip-magnet"


@pytest.mark.parametrize("change", [
    {"status": "draft"},
    {"status": "retired"},
    {"review_by": dt.date(2026, 1, 1)},
    {"expires": dt.date(2026, 1, 1)},
    {"approved_by": ""},
])
def test_an_entry_that_may_not_be_served_never_reaches_a_citizen(
    content: Content, registry: Registry, change: dict[str, Any]
) -> None:
    """Even handed to the brain directly (as if it lapsed while Garda runs)."""
    entry = dataclasses.replace(registry.entries["vaksin-microchip-magnet"], **change)
    others = [e for e in registry.servable() if e.id != entry.id]
    decision, parser = decide(content, VACCINE, FALLBACK, hoaxes=[entry, *others])
    assert decision.route != "hoax" and decision.hoax_id is None
    assert entry.clarification[:40] not in decision.reply
    assert parser.seen  # it went on to the ordinary path


def test_a_forwarded_claim_the_registry_lacks_is_held_for_the_fact_check_team(
    content: Content,
) -> None:
    for routed in (ANSWER, CLARIFY, FALLBACK):
        decision, _ = decide(content, UNKNOWN_CHAIN, routed)
        assert (decision.route, decision.category, decision.hoax_id) == (
            "escalate", "fact_check", None), routed
        assert decision.reply == content.render("utter_fact_check")


@pytest.mark.parametrize("routed,route", [
    (ANSWER, "answer"), (CLARIFY, "escalate"), (FALLBACK, "escalate"),
])
def test_a_question_naming_a_rumour_is_answered_only_when_the_faq_knows(
    content: Content, routed: Routed, route: str
) -> None:
    decision, _ = decide(content, "min katanya pasar induk mau digusur bulan depan, hoax bukan?",
                         routed)
    assert decision.route == route
    assert decision.category == ("fact_check" if route == "escalate" else None)


@pytest.mark.parametrize("routed,route", [
    (ANSWER, "answer"), (CLARIFY, "clarify"), (FALLBACK, "escalate"),
])
def test_is_it_true_questions_go_to_fact_check_only_when_nothing_else_fits(
    content: Content, routed: Routed, route: str
) -> None:
    """"Apa benar akta gratis?" is a service question; the FAQ answers it when it can."""
    decision, _ = decide(content, "apa benar jembatan merah mau ditutup total?", routed)
    assert decision.route == route


def test_a_routine_question_is_not_a_claim(content: Content) -> None:
    decision, parser = decide(content, "syarat bikin kk baru apa aja min", FALLBACK)
    assert decision.route == "fallback" and decision.category is None
    assert parser.seen


# -- the real model ---------------------------------------------------------------------


def _run(brain: Brain, texts: list[str]) -> list[Decision]:
    async def go() -> list[Decision]:
        return [await brain.decide(text) for text in texts]
    return asyncio.run(go())


@pytest.mark.model
def test_chain_messages_about_demo_hoaxes_through_the_model(brain: Brain) -> None:
    cases = [(h, t) for h, sets in PARAPHRASES["hoaxes"].items() for t in sets["chains"]]
    decisions = _run(brain, [t for _, t in cases])
    wrong = [(h, d.route, d.hoax_id) for (h, _), d in zip(cases, decisions, strict=True)
             if d.hoax_id != h]
    assert len(wrong) <= 0.05 * len(cases), wrong
    assert all(d.route == "hoax" for d in decisions if d.hoax_id)


@pytest.mark.model
def test_unknown_claims_through_the_model_are_held_not_answered(brain: Brain) -> None:
    decisions = _run(brain, PARAPHRASES["unknown_claims"])
    routes = [d.route for d in decisions]
    # A claim the registry lacks must not get a FAQ answer or another hoax's correction
    # as a rule: it goes to people, as a fact-check or, when the safety classifier reads
    # a danger in it ("jembatan retak mau ambruk"), as that. A few end in
    # clarify/fallback where the claim cues miss ("is it true ...").
    held = sum(d.route == "escalate" for d in decisions)
    assert held >= 0.7 * len(decisions), routes
    assert sum(d.category == "fact_check" for d in decisions) >= 0.6 * len(decisions), routes
    assert routes.count("hoax") <= 0.1 * len(decisions), routes


@pytest.mark.model
def test_routine_questions_through_the_model_are_never_hoaxes(brain: Brain) -> None:
    decisions = _run(brain, PARAPHRASES["routine"])
    assert [d.text for d in decisions if d.route == "hoax"] == []
