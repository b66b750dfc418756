"""`garda triage` end to end: stdin lines in, one JSON Decision per line out, real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.content import Content

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"text", "route", "intent", "confidence", "category", "hoax_id", "reply", "buttons"}

pytestmark = pytest.mark.model


def _triage(trained_model: Path, payload: bytes) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "triage"],
        cwd=ROOT, input=payload, capture_output=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]


@pytest.fixture(scope="module")
def approved_texts() -> set[str]:
    content = Content.load()
    return {content.render(name) for name in content.responses}


@pytest.fixture(scope="module")
def decisions(trained_model: Path) -> list[dict]:
    lines = [
        "min mau tanya cara bikin ktp gmn ya",
        "Apa saja persyaratan perekaman KTP-el?",
        json.dumps({"text": "akte lahir anak sy gmn ngurusnya kak", "sender": "tg:42"}),
        json.dumps({"text": "assalamualaikum min"}),
        "",
        "🙏🙏🙏",
        "{not json at all",
        "/faq/sim",
        "/start",
        "asdkjh qwpoe zxmcn",
        "siapa juara piala dunia 2018",
        "ktp " * 20000,
        json.dumps({"text": 12345}),
    ]
    payload = "\n".join(lines).encode() + b"\n" + b"\xff\xfe\x00binary\x80 ktp\n"
    return _triage(trained_model, payload)


def test_one_decision_per_input_line_with_the_contract_fields(decisions: list[dict]) -> None:
    assert len(decisions) == 14
    for decision in decisions:
        assert FIELDS <= decision.keys()
        assert decision["route"] in {"answer", "hoax", "escalate", "clarify", "fallback"}
        assert 0.0 <= decision["confidence"] <= 1.0
        assert isinstance(decision["buttons"], list)


def test_informal_and_formal_ktp_questions_get_the_ktp_answer(decisions: list[dict]) -> None:
    for decision in decisions[:2]:
        assert (decision["route"], decision["intent"]) == ("answer", "faq/ktp_baru"), decision


def test_json_lines_keep_the_sender(decisions: list[dict]) -> None:
    assert decisions[2]["sender"] == "tg:42"
    assert decisions[2]["intent"] == "faq/akta_kelahiran"
    assert decisions[3]["intent"] == "greet"


def test_empty_and_emoji_only_messages_get_the_empty_reply(decisions: list[dict]) -> None:
    content = Content.load()
    for decision in decisions[4:6]:
        assert decision["route"] == "fallback"
        assert decision["reply"] == content.render("utter_empty")


def test_invalid_json_is_read_as_plain_text(decisions: list[dict]) -> None:
    assert decisions[6]["text"] == "{not json at all"


def test_button_payloads_and_commands_are_understood(decisions: list[dict]) -> None:
    assert (decisions[7]["route"], decisions[7]["intent"]) == ("answer", "faq/sim")
    assert decisions[7]["confidence"] == 1.0
    assert decisions[8]["intent"] == "greet"


def test_gibberish_and_out_of_scope_are_fallbacks(decisions: list[dict]) -> None:
    assert decisions[9]["route"] == "fallback"
    assert decisions[10]["route"] == "fallback"


def test_huge_binary_and_non_string_input_still_get_a_decision(decisions: list[dict]) -> None:
    assert decisions[11]["text"].startswith("ktp ktp")  # echoed whole
    assert decisions[12]["route"] == "fallback"  # {"text": 12345}
    assert "\ufffd" in decisions[13]["text"]  # undecodable bytes replaced, not dropped


def test_every_reply_is_approved_content(decisions: list[dict], approved_texts: set[str]) -> None:
    for decision in decisions:
        assert decision["reply"] in approved_texts, decision
