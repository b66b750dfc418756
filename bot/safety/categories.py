"""The escalation categories: priority, time to claim and holding reply of each.

Read from ``settings/escalation.yml`` (an institution sets its own). Every category's
holding reply is an approved response in ``domain.yml``; ``garda content check`` fails
when one is missing or unapproved.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.paths import project_root

# Detected by the safety classifier (data/safety/<category>.yml).
DETECTED = ("emergency", "self_harm", "threat", "hate_speech", "abuse", "privacy",
            "corruption", "human_request")
# Raised elsewhere: by the hoax path, and by the runtime after two fallbacks in a row.
FACT_CHECK = "fact_check"
REPEATED_FALLBACK = "repeated_fallback"
ALL = (*DETECTED, FACT_CHECK, REPEATED_FALLBACK)
# Missing one of these is worse than a false alarm: calibration favours their recall.
CRITICAL = ("emergency", "self_harm", "threat")


class CategoryError(Exception):
    """settings/escalation.yml is missing a category or a field."""


@dataclass(frozen=True)
class Category:
    name: str
    priority: int          # 1 is most urgent
    claim_within: dt.timedelta
    reply: str             # the approved holding reply (a domain response)


def settings_path() -> Path:
    return project_root() / "settings" / "escalation.yml"


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict[str, Category]:
    data = yaml.safe_load(path.read_text("utf-8")) or {}
    found: dict[str, Category] = {}
    for name in ALL:
        entry = data.get(name)
        if not isinstance(entry, dict):
            raise CategoryError(f"{path.name}: category {name!r} is missing")
        try:
            found[name] = Category(
                name=name,
                priority=int(entry["priority"]),
                claim_within=dt.timedelta(minutes=float(entry["claim_within_minutes"])),
                reply=str(entry["reply"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CategoryError(f"{path.name}: {name}: {error}") from None
    unknown = sorted(set(data) - set(ALL))
    if unknown:
        raise CategoryError(f"{path.name}: unknown categories {', '.join(unknown)}")
    return found


def categories(path: Path | None = None) -> dict[str, Category]:
    path = path or settings_path()
    return _load(path, path.stat().st_mtime)
