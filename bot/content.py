"""Approved content: the only text Garda ever sends to a citizen.

Answers are Rasa domain responses in ``domain.yml``; each carries its approval record in
``metadata`` (title, owner, approved_by, approved_at, review_by, sources). Institution
facts (name, address, hours, contacts) live once in ``settings/institution.yml`` and are
filled into answers wherever an answer names them as ``{key}``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.paths import project_root

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
REQUIRED_METADATA = ("title", "owner", "approved_by", "approved_at", "review_by")


class ContentError(Exception):
    """Content is missing, unapproved, expired or names an unknown placeholder."""


@dataclass(frozen=True)
class Response:
    name: str
    text: str
    title: str
    owner: str
    approved_by: str
    approved_at: dt.date | None
    review_by: dt.date | None
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Override:
    """An approved version of a text that replaces the file's text and approval record
    (bot/content_versions.py): the people who approved it are in the database, not in
    domain.yml or data/hoaxes/."""

    text: str
    approved_by: str
    approved_at: dt.date
    review_by: dt.date
    version: int


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):  # YAML reads "2026-11-20 09:00" as a datetime
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def date_problems(approved_at: dt.date | None, review_by: dt.date | None,
                  today: dt.date) -> list[str]:
    """Why an approval record is not valid on ``today`` (shared by answers and hoaxes)."""
    problems = []
    if approved_at and approved_at > today:
        problems.append(f"approved_at {approved_at} is in the future")
    if review_by and review_by < today:
        problems.append(f"review_by {review_by} has passed; review it")
    return problems


def missing_placeholders(text: str, settings: Mapping[str, Any]) -> list[str]:
    return [f"placeholder {{{key}}} is not in settings"
            for key in PLACEHOLDER.findall(text) if key not in settings]


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


class Content:
    """Approved responses with the institution's settings filled in."""

    def __init__(self, responses: Mapping[str, Response], settings: Mapping[str, Any]) -> None:
        self.responses = dict(responses)
        self.settings = {k: str(v) for k, v in settings.items()}

    @classmethod
    def load(cls, domain: Path | None = None, settings: Path | None = None) -> Content:
        root = project_root()
        domain = domain or root / "domain.yml"
        settings = settings or root / "settings" / "institution.yml"
        domain_data = yaml.safe_load(domain.read_text("utf-8")) or {}
        settings_data = yaml.safe_load(settings.read_text("utf-8")) or {}
        responses: dict[str, Response] = {}
        for name, variations in (domain_data.get("responses") or {}).items():
            if not variations:
                continue
            first = variations[0]
            meta = first.get("metadata") or {}
            responses[name] = Response(
                name=name,
                text=str(first.get("text") or ""),
                title=str(meta.get("title") or ""),
                owner=str(meta.get("owner") or ""),
                approved_by=str(meta.get("approved_by") or ""),
                approved_at=_as_date(meta.get("approved_at")),
                review_by=_as_date(meta.get("review_by")),
                sources=tuple(str(s) for s in meta.get("sources") or ()),
            )
        return cls(responses, settings_data)

    def with_overrides(self, overrides: Mapping[str, Override]) -> Content:
        """This content with approved versions in place of the files' texts.

        Title, owner and sources stay the file's; a name the files no longer have is
        ignored (a version is served only for a response that exists)."""
        responses = dict(self.responses)
        for name, override in overrides.items():
            if name in responses:
                responses[name] = dataclasses.replace(
                    responses[name], text=override.text, approved_by=override.approved_by,
                    approved_at=override.approved_at, review_by=override.review_by)
        return Content(responses, self.settings)

    def __contains__(self, name: str) -> bool:
        return name in self.responses

    def title(self, name: str) -> str:
        return self.responses[name].title

    def render(self, name: str, today: dt.date | None = None) -> str:
        """The approved text of ``name`` with settings filled in.

        Raises ContentError for a response that is unknown, unapproved or past review:
        such text must never reach a citizen.
        """
        response = self.responses.get(name)
        if response is None:
            raise ContentError(f"no approved response named {name!r}")
        problems = self.problems_of(response, today or _today())
        if problems:
            raise ContentError("; ".join(problems))
        return PLACEHOLDER.sub(lambda m: self.settings[m.group(1)], response.text).strip()

    def problems_of(self, response: Response, today: dt.date) -> list[str]:
        problems = []
        name = response.name
        if not response.text.strip():
            problems.append(f"{name}: has no text")
        for key in REQUIRED_METADATA:
            if not getattr(response, key):
                problems.append(f"{name}: metadata.{key} is missing or not a valid value")
        problems += [f"{name}: {p}" for p in (
            *date_problems(response.approved_at, response.review_by, today),
            *missing_placeholders(response.text, self.settings),
        )]
        return problems

    def problems(self, today: dt.date | None = None, required: tuple[str, ...] = ()) -> list[str]:
        """Every reason this content may not be served, empty when all is well."""
        today = today or _today()
        found = [f"{name}: response is missing" for name in required if name not in self]
        for response in self.responses.values():
            found.extend(self.problems_of(response, today))
        return found
