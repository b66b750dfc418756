"""``garda hoax import``: a fact-checker's CSV export becomes draft registry entries.

Columns (names match case-insensitively; the first listed alias found is used):
title, claim (the claim as it circulates), clarification, link. Every entry is written
with ``status: draft`` and no approval record: nothing imported reaches a citizen until a
person edits it, adds the approval and sets ``status: approved`` (``garda hoax check``
then validates it). Rows whose title is already in the registry are skipped, so the same
export can be imported again after a fact-checker adds rows.
"""

from __future__ import annotations

import csv
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.hoax.registry import MAX_CLARIFICATION, MAX_TITLE, TODO, Registry

ALIASES = {
    "title": ("title", "judul"),
    "claim": ("claim", "claim_text", "klaim", "narasi", "hoax_text", "text"),
    "clarification": ("clarification", "klarifikasi", "penjelasan", "explanation"),
    "link": ("link", "url", "source", "sumber"),
}


class HoaxImportError(Exception):
    """The CSV cannot be imported."""


@dataclass
class ImportResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # why each skipped row was skipped
    notes: list[str] = field(default_factory=list)     # what a reviewer should look at


def slug(title: str, limit: int = 60) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:limit].rstrip("-") or "hoaks"


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("\n"))
    return (cut[: end + 1] if end > limit // 2 else cut[: limit - 1] + "…").strip()


class _Literal(str):
    """A string written in YAML's block style (readable multi-line text)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


yaml.SafeDumper.add_representer(_Literal, _literal)


def import_csv(path: Path, folder: Path, owner: str, verdict: str = "hoaks") -> ImportResult:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise HoaxImportError(f"{path}: {error}") from error
    if not rows:
        raise HoaxImportError(f"{path}: no rows")
    header = {name.strip().lower(): name for name in rows[0] if name}
    columns = {}
    for key, aliases in ALIASES.items():
        columns[key] = next((header[a] for a in aliases if a in header), None)
    if not columns["title"] or not columns["claim"]:
        raise HoaxImportError(f"{path}: needs at least a title and a claim column "
                           f"(found: {', '.join(header) or 'none'})")
    folder.mkdir(parents=True, exist_ok=True)
    registry = Registry.load(folder) if any(folder.glob("*.y*ml")) else Registry({}, [])
    titles = {e.title.strip().lower() for e in registry.entries.values()}
    taken = {p.stem for p in folder.glob("*.y*ml")}
    result = ImportResult()

    def cell(row: dict[str, Any], key: str) -> str:
        name = columns[key]
        return str(row.get(name) or "").strip() if name else ""

    for number, row in enumerate(rows, start=2):  # line 1 is the header
        title, claim = cell(row, "title"), cell(row, "claim")
        if not title or not claim:
            result.skipped.append(f"line {number}: no title or no claim")
            continue
        if title.lower() in titles or _shorten(title, MAX_TITLE).lower() in titles:
            result.skipped.append(f"line {number}: {title!r} is already in the registry")
            continue
        base = slug(title)
        entry_id, n = base, 2
        while entry_id in taken:
            entry_id, n = f"{base}-{n}", n + 1
        clarification = cell(row, "clarification")
        if not clarification:
            clarification = (f"{TODO}: tulis klarifikasi yang disetujui (apa yang salah, "
                             "apa yang benar, apa yang harus dilakukan).")
            result.notes.append(f"{entry_id}: no clarification in the CSV")
        elif len(clarification) > MAX_CLARIFICATION:
            clarification = _shorten(clarification, MAX_CLARIFICATION)
            result.notes.append(f"{entry_id}: clarification shortened to {MAX_CLARIFICATION} "
                                "characters; check it still reads right")
        link = cell(row, "link")
        sources = []
        if link.startswith("https://"):
            sources.append({"title": "Sumber cek fakta", "url": link})
        elif link:
            result.notes.append(f"{entry_id}: link {link!r} is not https; add an official source")
        data = {
            "id": entry_id,
            "title": _shorten(title, MAX_TITLE),
            "claim": _Literal(claim) if "\n" in claim else claim,
            "verdict": verdict,
            "status": "draft",
            "owner": owner,
            "imported_from": f"{path.name} line {number}",
            "examples": [_Literal(claim) if "\n" in claim else claim],
            "clarification": _Literal(clarification),
            "sources": sources,
        }
        target = folder / f"{entry_id}.yml"
        header_comment = ("# Imported draft: edit, add approved_by/approved_at/review_by, then set "
                          "status: approved.\n")
        target.write_text(header_comment + yaml.safe_dump(
            data, allow_unicode=True, sort_keys=False, width=100), "utf-8")
        taken.add(entry_id)
        titles.add(title.lower())
        result.written.append(target)
    return result
