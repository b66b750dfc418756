"""The approved hoax registry: one YAML file per hoax in ``data/hoaxes/``.

An entry is *servable* (its clarification may reach a citizen) only when its status is
``approved``, it carries a complete approval record, it was approved on or before today,
and neither its ``review_by`` nor its optional ``expires`` date has passed. Everything
else (drafts, retired entries, lapsed reviews) is kept for the team but never sent.
``garda hoax check`` reports every reason an entry may not be served; CI runs it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.content import (
    PLACEHOLDER,
    _as_date,
    _today,
    date_problems,
    missing_placeholders,
)
from bot.paths import project_root

VERDICTS = ("hoaks", "disinformasi", "misinformasi", "penipuan")
STATUSES = ("draft", "approved", "retired")
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
REQUIRED = ("id", "title", "claim", "verdict", "status", "owner", "examples", "clarification")
# Required before an entry may be served (a draft may lack them).
APPROVAL = ("approved_by", "approved_at", "review_by")
TODO = "TODO"
KNOWN_KEYS = frozenset((*REQUIRED, *APPROVAL, "sources", "tags", "expires", "imported_from"))
MAX_TITLE = 120
# A clarification is sent as one chat message with its title and sources around it; both
# Telegram (4,096) and WhatsApp (4,096) would take more, but a citizen reads a short one.
MAX_CLARIFICATION = 900
VERDICT_LABELS = {
    "hoaks": "HOAKS",
    "disinformasi": "DISINFORMASI",
    "misinformasi": "MISINFORMASI",
    "penipuan": "AWAS PENIPUAN",
}


class RegistryError(Exception):
    """An entry may not be served (or the registry cannot be read)."""


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True)
class HoaxEntry:
    id: str
    title: str
    claim: str
    verdict: str
    status: str
    owner: str
    examples: tuple[str, ...]
    clarification: str
    sources: tuple[Source, ...]
    approved_by: str = ""
    approved_at: dt.date | None = None
    review_by: dt.date | None = None
    expires: dt.date | None = None
    tags: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    def texts(self) -> tuple[str, ...]:
        """What the matcher indexes for this entry: title, claim and every example."""
        return (self.title, self.claim, *self.examples)

    def problems(self, today: dt.date, settings: Mapping[str, str] | None = None) -> list[str]:
        """Every reason this entry's clarification may not be sent on ``today``."""
        found: list[str] = []
        if self.status != "approved":
            found.append(f"status is {self.status!r}, not 'approved'")
        for key in APPROVAL:
            if not getattr(self, key):
                found.append(f"{key} is missing or not a valid value")
        found += date_problems(self.approved_at, self.review_by, today)
        if self.expires and self.expires < today:
            found.append(f"expired on {self.expires}")
        if not self.sources:
            found.append("sources is empty: a clarification must name its official source")
        if TODO in self.clarification:
            found.append("clarification still contains TODO")
        if settings is not None:
            found += missing_placeholders(self.clarification, settings)
        return found

    def servable(self, today: dt.date | None = None) -> bool:
        return not self.problems(today or _today())

    def render(self, settings: Mapping[str, str], today: dt.date | None = None) -> str:
        """The reply a citizen receives: verdict, title, clarification, official sources.

        Raises RegistryError when the entry may not be served (see :meth:`problems`).
        """
        problems = self.problems(today or _today(), settings)
        if problems:
            raise RegistryError(f"{self.id}: " + "; ".join(problems))
        body = PLACEHOLDER.sub(lambda m: settings[m.group(1)], self.clarification).strip()
        lines = [f"[{VERDICT_LABELS[self.verdict]}] {self.title}", "", body]
        if self.sources:
            lines += ["", "Sumber resmi:"]
            lines += [f"- {s.title}: {s.url}" for s in self.sources]
        return "\n".join(lines)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _schema_problems(data: Mapping[str, Any], stem: str) -> list[str]:
    """Structural problems of one file's data (before it can become a HoaxEntry)."""
    found: list[str] = []
    for key in REQUIRED:
        if key not in data or data[key] in (None, []) or (
            isinstance(data[key], str) and not data[key].strip()
        ):
            found.append(f"{key} is missing")
    for key in sorted(set(data) - KNOWN_KEYS):
        found.append(f"unknown key {key!r}")
    entry_id = _text(data.get("id"))
    if entry_id and not ID_PATTERN.match(entry_id):
        found.append(f"id {entry_id!r} is not kebab-case (a-z, 0-9, '-')")
    if entry_id and entry_id != stem:
        found.append(f"id {entry_id!r} differs from the file name {stem!r}")
    if data.get("verdict") not in (None, *VERDICTS):
        found.append(f"verdict {data.get('verdict')!r} is not one of {', '.join(VERDICTS)}")
    if data.get("status") not in (None, *STATUSES):
        found.append(f"status {data.get('status')!r} is not one of {', '.join(STATUSES)}")
    if len(_text(data.get("title"))) > MAX_TITLE:
        found.append(f"title is longer than {MAX_TITLE} characters")
    if len(_text(data.get("clarification"))) > MAX_CLARIFICATION:
        found.append(f"clarification is longer than {MAX_CLARIFICATION} characters")
    examples = data.get("examples")
    if examples is not None and (
        not isinstance(examples, list) or not all(_text(e) for e in examples)
    ):
        found.append("examples must be a list of non-empty texts")
    sources = data.get("sources")
    if sources is not None:
        if not isinstance(sources, list):
            found.append("sources must be a list of {title, url}")
        else:
            for i, source in enumerate(sources):
                if not isinstance(source, Mapping) or not _text(source.get("title")):
                    found.append(f"sources[{i}] needs a title")
                    continue
                url = _text(source.get("url"))
                if not re.match(r"^https://[^\s/]+\.[^\s/]+", url):
                    found.append(f"sources[{i}].url {url!r} is not an https address")
    for key in ("approved_at", "review_by", "expires"):
        if data.get(key) not in (None, "") and _as_date(data.get(key)) is None:
            found.append(f"{key} {data.get(key)!r} is not a date (YYYY-MM-DD)")
    return found


def entry_from(data: Mapping[str, Any], path: Path | None = None) -> HoaxEntry:
    return HoaxEntry(
        id=_text(data.get("id")),
        title=_text(data.get("title")),
        claim=_text(data.get("claim")),
        verdict=_text(data.get("verdict")),
        status=_text(data.get("status")),
        owner=_text(data.get("owner")),
        examples=tuple(_text(e) for e in data.get("examples") or () if _text(e)),
        clarification=_text(data.get("clarification")),
        sources=tuple(
            Source(_text(s.get("title")), _text(s.get("url")))
            for s in data.get("sources") or () if isinstance(s, Mapping)
        ),
        approved_by=_text(data.get("approved_by")),
        approved_at=_as_date(data.get("approved_at")) if data.get("approved_at") else None,
        review_by=_as_date(data.get("review_by")) if data.get("review_by") else None,
        expires=_as_date(data.get("expires")) if data.get("expires") else None,
        tags=tuple(_text(t) for t in data.get("tags") or ()),
        path=path,
    )


def registry_dir() -> Path:
    return project_root() / "data" / "hoaxes"


def _files(folder: Path) -> Iterator[Path]:
    yield from sorted(p for p in folder.glob("*.yml") if p.is_file())
    yield from sorted(p for p in folder.glob("*.yaml") if p.is_file())


@dataclass
class Registry:
    """Every entry of a registry folder, with the structural problems found reading it."""

    entries: dict[str, HoaxEntry]
    errors: list[str]

    @classmethod
    def load(cls, folder: Path | None = None) -> Registry:
        folder = folder or registry_dir()
        entries: dict[str, HoaxEntry] = {}
        errors: list[str] = []
        if not folder.is_dir():
            return cls(entries, [f"{folder}: no such folder"])
        for path in _files(folder):
            name = path.name
            try:
                data = yaml.safe_load(path.read_text("utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                errors.append(f"{name}: not valid YAML ({error.__class__.__name__})")
                continue
            if not isinstance(data, Mapping):
                errors.append(f"{name}: must be a mapping of the entry's fields")
                continue
            problems = _schema_problems(data, path.stem)
            if problems:
                errors.extend(f"{name}: {p}" for p in problems)
                continue
            entry = entry_from(data, path)
            if entry.id in entries:
                errors.append(f"{name}: id {entry.id!r} is used twice")
                continue
            entries[entry.id] = entry
        return cls(entries, errors)

    @classmethod
    def from_entries(cls, entries: Iterable[HoaxEntry]) -> Registry:
        return cls({e.id: e for e in entries}, [])

    def servable(self, today: dt.date | None = None) -> list[HoaxEntry]:
        today = today or _today()
        return [e for e in self.entries.values() if e.servable(today)]

    def check(self, settings: Mapping[str, str], today: dt.date | None = None) -> list[str]:
        """Every problem CI should fail on: structure, and approved entries that lapsed.

        Drafts and retired entries are fine to keep (they are never served); an entry
        marked approved but not servable is a mistake someone must fix.
        """
        today = today or _today()
        found = list(self.errors)
        for entry in self.entries.values():
            if entry.status == "approved":
                found.extend(f"{entry.id}: {p}" for p in entry.problems(today, settings))
            else:
                found.extend(f"{entry.id}: {p}"
                             for p in missing_placeholders(entry.clarification, settings))
        return found
