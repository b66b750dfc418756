"""Text limits shared by the channels: lengths in UTF-16 code units, and splitting a reply.

Both platforms count lengths in UTF-16 code units (an emoji counts two), which is never
less than Python's ``len``; splitting by it is stricter than needed, never looser.
"""

from __future__ import annotations

SEPARATORS = ("\n\n", "\n", " ")


def units(text: str) -> int:
    """Length in UTF-16 code units, as Telegram and WhatsApp count it: never below len()."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most ``limit`` characters, cut at paragraphs, then lines, then spaces.

    Parts are stripped and never empty (blank text gives no parts). Length is counted in
    UTF-16 code units, so an emoji counts two: stricter than code points, never looser.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    _split(text, limit, 0, parts)
    return parts


def _split(text: str, limit: int, level: int, out: list[str]) -> None:
    text = text.strip()
    if not text:
        return
    if units(text) <= limit:
        out.append(text)
        return
    if level == len(SEPARATORS):
        _hard_cut(text, limit, out)
        return
    sep = SEPARATORS[level]
    current = ""
    for piece in text.split(sep):
        candidate = f"{current}{sep}{piece}" if current else piece
        if units(candidate) <= limit:
            current = candidate
            continue
        if current.strip():
            out.append(current.strip())
        current = ""
        if units(piece) <= limit:
            current = piece
        else:
            _split(piece, limit, level + 1, out)
    if current.strip():
        out.append(current.strip())


def _hard_cut(text: str, limit: int, out: list[str]) -> None:
    chunk: list[str] = []
    size = 0
    for char in text:
        width = units(char)
        if size + width > limit:
            out.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += width
    if chunk:
        out.append("".join(chunk))
