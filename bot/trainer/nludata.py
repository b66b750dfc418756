"""The writer: one labelled message becomes one example line in data/nlu, or nothing.

The training data is reviewed by people in pull requests, so a new example goes where a
person would put it (the last line of its intent's ``examples: |`` block, in the file that
defines the intent) and every other byte of the file (comments, order, line endings) stays
as it was. An example is refused, with a message for the trainer, when it would teach the
model nothing or something wrong:

- its intent is not in data/nlu (a new topic is a request for the team, not data);
- it is empty once normalised, or longer than :data:`MAX_EXAMPLE_CHARS`;
- it still contains personal data (bot/privacy.py finds some);
- its normalised form is already an example, in data/nlu or in the held-out test sets
  (tests/nlu): a held-out text in the training data would make the benchmark lie. Which
  held-out text matched is never shown.

The file is replaced atomically (a temporary file, then ``os.replace``) once Rasa's own
reader has parsed the new version and found the example under its intent; writers (console
threads, terminal sessions) take turns through a lock on the data folder.

Also here: the closest training examples to a message (char n-gram cosine), which the
Training page and ``garda trainer review`` show beside each item.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.nlu.normalizer import EMAIL_WORD, NIK_WORD, PHONE_WORD, Normalizer
from bot.paths import project_root
from bot.privacy import mask

# A longer message is a chain letter or a story, not a way of asking; as an example it
# would drown its intent's word statistics.
MAX_EXAMPLE_CHARS = 300
CLOSEST = 3

# bot.privacy's labels, written as the words the normaliser puts where it finds a real
# number or address: the model then meets in training exactly what it meets in use.
PLACEHOLDERS = {
    "[nik/kk]": NIK_WORD,
    "[telepon]": PHONE_WORD,
    "[email]": EMAIL_WORD,
    "[token]": "token",
    "[secret]": "rahasia",
}
# Rasa reads "[text](entity)" and "[text]{...}" in an example as an entity annotation.
_BRACKETS = str.maketrans({"[": "(", "]": ")", "{": "(", "}": ")"})
_SPACE = re.compile(r"\s+")
_INTENT_LINE = re.compile(
    r"^(?P<indent>[ \t]*)-[ \t]+intent:[ \t]*(?P<q>[\"']?)(?P<name>[^\"'#\s]+)(?P=q)"
    r"[ \t]*(?:#.*)?$")
_EXAMPLES_LINE = re.compile(r"^(?P<indent>[ \t]+)examples:[ \t]*\|[-+]?[0-9]?[ \t]*(?:#.*)?$")


class LabelError(Exception):
    """Why a label or an example was not recorded (the message is for the trainer)."""


UNKNOWN_INTENT = ("Intent {name!r} tidak ada di data/nlu. Topik baru tidak ditulis ke data "
                  "latih: tandai sebagai topik baru.")
EMPTY = "Contoh kosong: tidak ada kata yang tersisa setelah dinormalkan."
TOO_LONG = ("Contoh terlalu panjang ({n} karakter; batasnya {limit}): pesan sepanjang ini "
            "bukan contoh latih yang baik.")
PERSONAL = ("Contoh masih berisi data pribadi (NIK/KK, nomor telepon, e-mail atau token); "
            "tidak ditulis.")
DUPLICATE = "Contoh ini sudah ada di data latih ({where}); tidak ditulis dua kali."
HELDOUT = ("Contoh ini sama dengan salah satu contoh data uji tertahan (tests/nlu); tidak "
           "ditulis agar hasil uji tetap jujur.")
UNREADABLE = "Setelah penambahan, {file} tidak terbaca oleh Rasa; berkas tidak diubah."


@dataclass(frozen=True)
class NluPaths:
    """Where the training data and the held-out test sets are (a copy, in tests)."""

    data: Path
    heldout: Path

    @classmethod
    def default(cls) -> NluPaths:
        root = project_root()
        return cls(root / "data" / "nlu", root / "tests" / "nlu")

    def data_files(self) -> list[Path]:
        return sorted(self.data.glob("*.yml"))

    def heldout_files(self) -> list[Path]:
        if not self.heldout.is_dir():
            return []
        return sorted(p for p in self.heldout.rglob("*") if p.suffix in (".yml", ".yaml"))


@dataclass(frozen=True)
class Written:
    path: Path     # the data file that has the new example
    example: str   # the line as written (without "- ")


@dataclass(frozen=True)
class Closest:
    intent: str
    example: str
    score: float


@functools.lru_cache(maxsize=1)
def normalizer() -> Normalizer:
    return Normalizer()


def normal(text: str) -> str:
    return normalizer().normalize(text)


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(intent, example) pairs of one Rasa 3 YAML file; nothing for a file of another kind."""
    try:
        return pairs_of(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return []


def pairs_of(content: str) -> list[tuple[str, str]]:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("nlu"), list):
        return []
    pairs: list[tuple[str, str]] = []
    for block in data["nlu"]:
        if not isinstance(block, dict) or not block.get("intent"):
            continue
        for line in str(block.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                pairs.append((str(block["intent"]), line[2:].strip()))
    return pairs


def intents(paths: NluPaths | None = None) -> list[str]:
    """The intents of the training data, sorted: the labels a trainer may choose."""
    paths = paths or NluPaths.default()
    return list(_intents(_signature(paths.data_files())))


@functools.lru_cache(maxsize=8)
def _intents(signature: Signature) -> tuple[str, ...]:
    return tuple(sorted({i for name, _, _ in signature for i, _ in read_pairs(Path(name))}))


def example_text(text: str) -> str:
    """A (masked) message as one example line: privacy labels as the normaliser's words,
    no brackets Rasa would read as entities, one line of printable characters."""
    for label, word in PLACEHOLDERS.items():
        text = text.replace(label, f" {word} ")
    text = text.translate(_BRACKETS)
    text = "".join(c if c.isprintable() else " " for c in _SPACE.sub(" ", text))
    return _SPACE.sub(" ", text).strip()


def refusal(example: str) -> str | None:
    """Why ``example`` (already through :func:`example_text`) may not be written on its own
    merits, before any file is read; None when it may."""
    if len(example) > MAX_EXAMPLE_CHARS:
        return TOO_LONG.format(n=len(example), limit=MAX_EXAMPLE_CHARS)
    if not normal(example):
        return EMPTY
    if mask(example) != example:
        return PERSONAL
    return None


def insert_example(content: str, intent: str, example: str) -> str | None:
    """``content`` with ``example`` as the last line of ``intent``'s ``examples: |`` block;
    None when the file has no such block. Everything else is kept byte for byte."""
    lines = content.splitlines(keepends=True)
    eol = "\r\n" if "\r\n" in content else "\n"
    for number, line in enumerate(lines):
        found = _INTENT_LINE.match(line.rstrip("\r\n"))
        if found is None or found.group("name") != intent:
            continue
        item_indent = len(found.group("indent").expandtabs())
        key = _examples_key(lines, number + 1, item_indent)
        if key is None:
            continue
        key_line, key_indent = key
        last, indent = key_line, None
        for index in range(key_line + 1, len(lines)):
            body = lines[index].rstrip("\r\n")
            if not body.strip():
                continue
            width = len(body) - len(body.lstrip(" \t"))
            if len(body[:width].expandtabs()) <= key_indent:
                break
            last = index
            if indent is None:
                indent = body[:width]
        new_line = f"{indent if indent is not None else ' ' * (key_indent + 2)}- {example}{eol}"
        before = lines[: last + 1]
        if before and not before[-1].endswith(("\n", "\r")):
            before[-1] += eol
        return "".join([*before, new_line, *lines[last + 1:]])
    return None


def _examples_key(lines: list[str], start: int, item_indent: int) -> tuple[int, int] | None:
    """(line number, indent) of the ``examples: |`` key of the list item that starts just
    before ``start``; None if the item has none."""
    for index in range(start, len(lines)):
        body = lines[index].rstrip("\r\n")
        stripped = body.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        width = len(body[: len(body) - len(stripped)].expandtabs())
        if width <= item_indent:
            return None  # the next item, or the end of the list
        found = _EXAMPLES_LINE.match(body)
        if found is not None:
            return index, len(found.group("indent").expandtabs())
    return None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer at a time on ``folder``, across threads and processes (flock on the
    folder itself: no lock file left in the data)."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock


@functools.lru_cache(maxsize=1)
def _rasa_loader() -> Any:
    from rasa.shared.nlu.training_data.loading import load_data

    return load_data


def warm(paths: NluPaths | None = None) -> None:
    """Import Rasa's reader and read the examples for the duplicate check now (a second or
    two the first time), not while holding locks."""
    _rasa_loader()
    if paths is not None:
        _normal_examples(_signature(paths.data_files()))
        _normal_examples(_signature(paths.heldout_files()))


def _parses_with(path: Path, intent: str, example: str) -> bool:
    """Rasa's own reader finds ``example`` under ``intent`` in the file at ``path``."""
    try:
        data = _rasa_loader()(str(path))
    except Exception:
        return False
    for message in data.intent_examples:
        name = message.data.get("intent_response_key") or message.data.get("intent")
        if name == intent and message.data.get("text") == example:
            return True
    return False


def _write_atomically(target: Path, content: str, intent: str, example: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".garda-", suffix=".yml", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, target.stat().st_mode & 0o7777)
        if not _parses_with(Path(temporary), intent, example):
            raise LabelError(UNREADABLE.format(file=target.name))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def add_example(intent: str, text: str, paths: NluPaths | None = None) -> Written:
    """Write ``text`` (a masked message) as an example of ``intent``.

    Raises :class:`LabelError` with the reason when it is refused (module docstring).
    """
    paths = paths or NluPaths.default()
    example = example_text(text)
    problem = refusal(example)
    if problem:
        raise LabelError(problem)
    warm(paths)
    with _locked(paths.data):
        files = {f: read_pairs(f) for f in paths.data_files()}
        home = next((f for f, pairs in files.items() if any(i == intent for i, _ in pairs)),
                    None)
        if home is None:
            raise LabelError(UNKNOWN_INTENT.format(name=intent))
        wanted = normal(example)
        where = _normal_examples(_signature(paths.data_files())).get(wanted)
        if where is not None:
            raise LabelError(DUPLICATE.format(where=where))
        if wanted in _normal_examples(_signature(paths.heldout_files())):
            raise LabelError(HELDOUT)
        raw = home.read_bytes().decode("utf-8")
        updated = insert_example(raw, intent, example)
        if updated is None:
            raise LabelError(UNREADABLE.format(file=home.name))
        # Nothing else in the file may change: the same examples plus this one.
        if sorted(pairs_of(updated)) != sorted([*files[home], (intent, example)]):
            raise LabelError(UNREADABLE.format(file=home.name))
        _write_atomically(home, updated, intent, example)
    return Written(home, example)


Signature = tuple[tuple[str, int, int], ...]


def _signature(files: Iterable[Path]) -> Signature:
    """Paths, modification times and sizes: a cache key that changes with the files."""
    found = []
    for f in files:
        stat = f.stat()
        found.append((str(f), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


@functools.lru_cache(maxsize=8)
def _normal_examples(signature: Signature) -> dict[str, str]:
    """Each normalised example of the files, with the name of the first file that has it."""
    found: dict[str, str] = {}
    for name, _, _ in signature:
        for _, example in read_pairs(Path(name)):
            found.setdefault(normal(example), Path(name).name)
    return found


# -- the closest training examples ------------------------------------------------------


@functools.lru_cache(maxsize=4)
def closest_index(signature: Signature) -> tuple[Any, Any, list[tuple[str, str]]]:
    """A char n-gram TF-IDF index of the training examples, built once per version of the
    files (their paths, times and sizes are the key)."""
    from bot.brain.features import char_vectorizer

    pairs = [pair for name, _, _ in signature for pair in read_pairs(Path(name))]
    vectorizer = char_vectorizer()
    matrix = vectorizer.fit_transform([normal(e) or e.lower() for _, e in pairs])
    return vectorizer, matrix, pairs


def closest(text: str, k: int = CLOSEST, paths: NluPaths | None = None) -> list[Closest]:
    """The best example of each of the ``k`` intents nearest to ``text`` (char n-gram
    cosine on normalised text), best first."""
    paths = paths or NluPaths.default()
    query = normal(example_text(text))  # privacy labels as the words the model was taught
    if not query:
        return []
    vectorizer, matrix, pairs = closest_index(_signature(paths.data_files()))
    if not pairs:
        return []
    scores = (matrix @ vectorizer.transform([query]).T).toarray().ravel()
    best: dict[str, tuple[float, str]] = {}
    for index in scores.argsort()[::-1]:
        intent, example = pairs[int(index)]
        if intent not in best:
            best[intent] = (float(scores[index]), example)
            if len(best) == k:
                break
    return [Closest(intent, example, round(score, 3))
            for intent, (score, example) in best.items()]
