"""Read the project's Rasa training data (data/nlu/*.yml) without loading Rasa."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from bot.paths import project_root

# Responses the brain can send besides one per intent and FAQ topic.
SYSTEM_RESPONSES = (
    "utter_clarify", "utter_fallback", "utter_empty", "utter_out_of_scope", "utter_media",
    "utter_fact_check",
)


def read_examples(paths: Iterable[Path]) -> list[tuple[str, str]]:
    """(intent, example) pairs from Rasa 3 YAML NLU files, in file order."""
    pairs: list[tuple[str, str]] = []
    for path in paths:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        for block in data.get("nlu") or []:
            intent = block.get("intent")
            if not intent:
                continue
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    pairs.append((intent, line[2:].strip()))
    return pairs


def training_files(root: Path | None = None) -> list[Path]:
    return sorted((root or project_root()).glob("data/nlu/*.yml"))


def heldout_files(root: Path | None = None) -> list[Path]:
    return sorted((root or project_root()).glob("tests/nlu/heldout_*.yml"))


def intents(root: Path | None = None) -> list[str]:
    return sorted({intent for intent, _ in read_examples(training_files(root))})


def required_responses(root: Path | None = None) -> tuple[str, ...]:
    """Every response Garda may send: one per trained intent or topic, the system ones,
    and each escalation category's holding reply (settings/escalation.yml)."""
    from bot.safety.categories import categories, settings_path

    path = (root / "settings" / "escalation.yml") if root else settings_path()
    holding = tuple(dict.fromkeys(c.reply for c in categories(path).values()))
    return (tuple(f"utter_{intent}" for intent in intents(root)) + SYSTEM_RESPONSES
            + tuple(r for r in holding if r not in SYSTEM_RESPONSES))
