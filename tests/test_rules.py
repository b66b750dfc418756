"""The Rasa rules and the brain agree on which approved response answers which intent."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.brain.pipeline import response_for
from bot.nlu_data import intents

ROOT = Path(__file__).resolve().parent.parent


def _rules() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for path in sorted((ROOT / "data" / "rules").glob("*.yml")):
        for rule in yaml.safe_load(path.read_text("utf-8"))["rules"]:
            steps = rule["steps"]
            assert len(steps) == 2, rule["rule"]
            mapping[steps[0]["intent"]] = steps[1]["action"]
    return mapping


def test_every_trained_intent_has_a_rule_with_the_brains_response() -> None:
    rules = _rules()
    for intent in intents():
        base = intent.split("/", 1)[0]
        assert base in rules, f"no rule for {base}"
        assert rules[base] == response_for(base), base
