"""Does a message read like a claim? (it is forwarded, or asks whether something is true)

Works on normalised text (lower case, slang mapped: "bnr ga" is "benar tidak"). This is
deliberately a short list of cues a fact-check team would name, not a model. It does two
things only: it lowers the matcher's threshold (a claim-like message may match on less
evidence), and, for a message that matches no approved hoax, it chooses between the
ordinary answer path and the fact-check holding reply (see :mod:`bot.brain.pipeline`).

Three kinds, strongest first:

* FORWARDED: a chain message ("sebarkan!", "forward ke 10 grup", or long and shouting,
  full of exclamation marks or links);
* QUESTION: names the rumour as such ("hoaks?", "cek fakta", "katanya", "beredar", "viral");
* ASKS_TRUE: only asks whether something is true ("benarkah", "apa benar", "bener gak"),
  which is also how citizens ask about ordinary services ("apa benar akta gratis?").
"""

from __future__ import annotations

import re

FORWARDED = "forwarded"
QUESTION = "question"
ASKS_TRUE = "asks_true"

_FORWARDED = re.compile(
    r"\b(?:sebarkan|sebar luaskan|sebarluaskan|viralkan|teruskan|forward(?:kan)?|diteruskan"
    r"|bagikan ke|share ke|kirim(?:kan)? ke \d+|kirim ke semua|broadcast|pesan berantai"
    r"|copas|copy paste|dari grup sebelah|info dari teman|berita resmi)\b"
)
_QUESTION = re.compile(
    r"\b(?:hoa?x|hoa?xs|hoaks|hoaks?nya|cek fakta|klarifikasi|disinformasi|misinformasi"
    r"|katanya|kabarnya|isunya|beredar|viral|berita bohong|kabar bohong)\b"
)
_TRUE = r"(?:benar|betul|beneran|asli|valid|fakta)"
_ASKS_TRUE = re.compile(
    rf"\b(?:benarkah|betulkah|apa(?:kah)? (?:ini |itu |informasi |berita |kabar )?{_TRUE}"
    rf"|{_TRUE} (?:tidak|atau tidak|enggak|bukan|apa tidak|apa bukan))\b"
)
# A message this long that shouts, or is full of exclamation marks or links, is a chain.
_LONG_WORDS = 60
_SHOUTING = 0.3


def claim_kind(normalized: str, raw: str = "") -> str | None:
    """FORWARDED, QUESTION, ASKS_TRUE, or None when the message does not read like a claim.

    ``normalized`` is the normaliser's output; ``raw`` (the message as written) lets a
    long message count as forwarded by its capitals and exclamation marks.
    """
    if not normalized:
        return None
    if _FORWARDED.search(normalized) or _long_chain(raw, normalized):
        return FORWARDED
    if _QUESTION.search(normalized):
        return QUESTION
    if _ASKS_TRUE.search(normalized):
        return ASKS_TRUE
    return None


def _long_chain(raw: str, normalized: str) -> bool:
    words = normalized.split()
    if len(words) < _LONG_WORDS:
        return False
    letters = [c for c in raw if c.isalpha()]
    shouting = bool(letters) and sum(c.isupper() for c in letters) / len(letters) > _SHOUTING
    return shouting or raw.count("!") >= 3 or "tautan" in words
