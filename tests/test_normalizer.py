from __future__ import annotations

import pytest

from bot.nlu.normalizer import (
    NIK_WORD,
    PHONE_WORD,
    URL_WORD,
    Normalizer,
    load_lexicon,
)


@pytest.fixture(scope="module")
def norm() -> Normalizer:
    return Normalizer()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("min mau tanya cara bikin ktp gmn ya", "admin mau tanya cara buat ktp bagaimana ya"),
        ("GIMANA YG", "bagaimana yang"),
        ("pagiii kakkk", "pagi kakak"),
        ("tolonggggg", "tolong"),
        ("maaaaf", "maaf"),
        ("anak2 sy", "anak anak saya"),
        ("umur 17thn", "umur 17 tahun"),
    ],
)
def test_chat_indonesian_is_normalised(norm: Normalizer, raw: str, expected: str) -> None:
    assert norm.normalize(raw) == expected


def test_emoji_and_punctuation_are_removed_but_words_kept(norm: Normalizer) -> None:
    assert norm.normalize("syarat akta???!!! 🙏🙏😭") == "syarat akta"


@pytest.mark.parametrize("raw", ["", "   ", "🙏🙏🙏", "😭👍", "?!...", "\u200b\u200b", "\x00\x01"])
def test_empty_emoji_only_and_control_messages_normalise_to_nothing(
    norm: Normalizer, raw: str
) -> None:
    assert norm.normalize(raw) == ""


def test_non_text_input_is_empty(norm: Normalizer) -> None:
    assert norm.normalize(None) == ""
    assert norm.normalize(b"ktp") == ""


def test_personal_numbers_and_links_become_placeholders(norm: Normalizer) -> None:
    out = norm.normalize(
        "nik saya 3201234567890123, wa 0812-3456-7890, cek di https://cekbansos.kemensos.go.id/x"
    )
    assert "3201234567890123" not in out and NIK_WORD in out
    assert "0812" not in out and PHONE_WORD in out
    assert URL_WORD in out and "kemensos" not in out


def test_nik_grouped_with_spaces_is_masked(norm: Normalizer) -> None:
    out = norm.normalize("NIK 3201 2345 6789 0123")
    assert NIK_WORD in out and "6789" not in out


def test_mixed_language_keeps_english_words(norm: Normalizer) -> None:
    assert norm.normalize("how to renew paspor?") == "how to renew paspor"


def test_huge_input_is_handled(norm: Normalizer) -> None:
    out = norm.normalize("ktp " * 50_000)
    assert out.split() == ["ktp"] * 50_000


def test_binary_garbage_does_not_raise(norm: Normalizer) -> None:
    garbage = bytes(range(256)).decode("latin-1")
    assert isinstance(norm.normalize(garbage), str)


def test_curated_lexicon_is_clean() -> None:
    from bot.nlu.normalizer import CURATED_LEXICON

    lexicon = load_lexicon(CURATED_LEXICON)
    assert len(lexicon) >= 500
    for key, value in lexicon.items():
        assert key == key.strip().lower() and value and key != value
    # Short domain words must never be rewritten.
    for word in ("sim", "kk", "ktp", "kia", "pbb", "bpjs", "pdam"):
        assert word not in lexicon


def test_extra_lexicon_never_overrides_curated_entries(tmp_path) -> None:
    extra = tmp_path / "extra.csv"
    extra.write_text("gmn,gimana\nzzkata,kata baru\n", encoding="utf-8")
    norm = Normalizer([extra, tmp_path / "missing.csv"])
    assert norm.normalize("gmn zzkata") == "bagaimana kata baru"


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name", ["salsabila2018_colloquial_lexicon.csv", "ibrohim2019_kamusalay.csv"]
)
def test_public_lexicons_load_as_optional_extra_lexicons(shared_data, name: str) -> None:
    path = shared_data / "lexicon" / name
    external = load_lexicon(path)  # one has a slang,formal header, the other none
    assert len(external) > 1000
    norm = Normalizer([path])
    curated = Normalizer()
    # A slang form only the external lexicon knows is rewritten; curated entries still win.
    only_external = next(k for k in sorted(external)
                         if k.isalpha() and k not in curated.lexicon and len(k) > 5)
    assert norm.normalize(only_external) == external[only_external]
    assert norm.normalize("gmn") == curated.normalize("gmn")
