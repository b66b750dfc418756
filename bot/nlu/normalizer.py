"""Normalise chat Indonesian before it reaches the tokenizer.

Citizens write "min mau tny cr bikin ktp gmn yaaa 🙏" and mean "admin mau tanya cara
bikin ktp bagaimana ya". This module turns the first into the second, deterministically
and without any model: Unicode clean-up, lower case, placeholders for links and personal
numbers, emoji removal, splitting of digits glued to words ("17thn", "anak2"), collapsing
elongations ("pagiii"), and a curated slang lexicon shipped in ``lexicon/``. Optional
extra lexicons (for example the public colloquial-Indonesian lexicons) can be layered
under the curated one; the curated entries always win.

Typos that survive the lexicon are left to the character n-gram featurizer (a learned
typo corrector was measured and dropped: see docs/nlu.md).

The same :class:`Normalizer` is used by the Rasa pipeline and by the hoax matcher, so the
two see the same text.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

LEXICON_DIR = Path(__file__).parent / "lexicon"
CURATED_LEXICON = LEXICON_DIR / "slang_id.csv"
KEEP_DOUBLE = LEXICON_DIR / "keep_double.txt"

# Placeholders. They are plain lower-case words so that every tokenizer keeps them whole.
URL_WORD = "tautan"
EMAIL_WORD = "alamatemail"
NIK_WORD = "nomornik"
PHONE_WORD = "nomortelepon"

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")
_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:go\.id|co\.id|com|id|net|org|ly|me|info|xyz)(?:/\S*)?\b")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# 16 digits (NIK and KK numbers), optionally grouped with spaces, dots or dashes.
_NIK = re.compile(r"(?<!\d)(?:\d[ .-]?){15}\d(?!\d)")
# Indonesian mobile and fixed numbers: 08.., +628.., 628.., (021) 555...
_PHONE = re.compile(r"(?<![\w+])(?:\+?62|0)[ .-]?\(?\d{2,4}\)?(?:[ .-]?\d{2,5}){2,4}(?!\d)")
# Reduplication written with a 2: "anak2" -> "anak anak", "kapan2" -> "kapan kapan".
_REDUP = re.compile(r"\b([a-z]{2,})2\b")
_DIGIT_WORD = re.compile(r"(?<=\d)(?=[a-z])|(?<=[a-z])(?=\d)")
_ELONGATION = re.compile(r"([a-z])\1{2,}")
_DOUBLE = re.compile(r"([a-z])\1")
# Everything that is not a letter, a digit, white space, or an in-word joiner.
_NON_WORD = re.compile(r"[^\w\s/'-]|_")
_STRAY_JOINER = re.compile(r"(?<!\w)[-/']+|[-/']+(?!\w)")
_SPACES = re.compile(r"\s+")


def _is_emoji_or_symbol(char: str) -> bool:
    category = unicodedata.category(char)
    return category in {"So", "Sk", "Cs", "Co", "Cn"} or char in "\ufe0f\u20e3"


def load_lexicon(path: Path) -> dict[str, str]:
    """Read a slang lexicon CSV: a ``slang,formal`` header, or two unnamed columns.

    Rows with an empty cell or a key equal to its value are skipped.
    """
    mapping: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return mapping
    header = [cell.strip().lower() for cell in rows[0]]
    if "slang" in header and "formal" in header:
        key_col, value_col = header.index("slang"), header.index("formal")
        rows = rows[1:]
    else:
        key_col, value_col = 0, 1
    for row in rows:
        if len(row) <= max(key_col, value_col):
            continue
        key = row[key_col].strip().lower()
        value = _SPACES.sub(" ", row[value_col].strip().lower())
        if key and value and key != value and key not in mapping:
            mapping[key] = value
    return mapping


@functools.lru_cache(maxsize=8)
def _curated() -> tuple[Mapping[str, str], frozenset[str]]:
    lexicon = load_lexicon(CURATED_LEXICON)
    keep = frozenset(
        line.strip().lower()
        for line in KEEP_DOUBLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    return lexicon, keep


class Normalizer:
    """Deterministic chat-Indonesian normaliser (see the module docstring)."""

    def __init__(self, extra_lexicons: Sequence[str | Path] = ()) -> None:
        curated, keep_double = _curated()
        lexicon: dict[str, str] = {}
        for path in extra_lexicons:
            path = Path(path)
            if not path.is_file():
                logger.warning("Extra lexicon %s not found; continuing without it.", path)
                continue
            for key, value in load_lexicon(path).items():
                lexicon.setdefault(key, value)
        lexicon.update(curated)  # the curated lexicon always wins
        self.lexicon: Mapping[str, str] = lexicon
        self.keep_double = keep_double

    def normalize(self, text: object) -> str:
        """Return the normalised form of ``text`` (an empty string when nothing is left)."""
        if not isinstance(text, str):
            return ""
        text = unicodedata.normalize("NFKC", text)
        text = _ZERO_WIDTH.sub(" ", text)
        text = "".join(" " if _is_emoji_or_symbol(c) or not c.isprintable() else c for c in text)
        text = text.casefold()
        text = _URL.sub(f" {URL_WORD} ", text)
        text = _EMAIL.sub(f" {EMAIL_WORD} ", text)
        text = _NIK.sub(f" {NIK_WORD} ", text)
        text = _PHONE.sub(f" {PHONE_WORD} ", text)
        text = _NON_WORD.sub(" ", text)
        text = _STRAY_JOINER.sub(" ", text)
        words: list[str] = []
        for raw in text.split():
            raw = _REDUP.sub(r"\1 \1", raw)
            raw = _DIGIT_WORD.sub(" ", raw)
            for token in raw.split():
                words.extend(self.normalize_token(token).split())
        return " ".join(words)

    def normalize_token(self, token: str) -> str:
        """Normalise one lower-case token: elongation first, then the lexicon."""
        if token in self.lexicon:
            return self.lexicon[token]
        if _ELONGATION.search(token):
            twice = _ELONGATION.sub(r"\1\1", token)
            once = _ELONGATION.sub(r"\1", token)
            for candidate in (twice, once) if twice in self.keep_double else (once, twice):
                if candidate in self.lexicon:
                    return self.lexicon[candidate]
            token = twice if twice in self.keep_double else once
        return token
