"""The hoax registry and its tools: schema and approval rules, `garda hoax check`, the CSV
importer, spike statistics, per-day match counting in the store, and the retrieval eval.

Every registry here is written to tmp_path by the test itself, except the checks of the
project's own data/hoaxes/ (which must pass `garda hoax check` as CI runs it).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from bot.brain.decision import Decision
from bot.channels.base import TEXT, Inbound, Outgoing
from bot.cli import main
from bot.content import Content
from bot.hoax.evaluate import EvalError, evaluate, read_columns
from bot.hoax.importer import HoaxImportError, import_csv
from bot.hoax.registry import (
    MAX_CLARIFICATION,
    STATUSES,
    TODO,
    VERDICTS,
    Registry,
    RegistryError,
)
from bot.hoax.stats import SPIKE_MIN, is_spike, trends
from bot.store import models
from bot.store.db import Database, local_day

ROOT = Path(__file__).resolve().parent.parent
TODAY = dt.date.today()
DROP = object()  # an override that removes the key


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    return Content.load().settings


# -- helpers ---------------------------------------------------------------------------


def entry_data(**overrides: Any) -> dict[str, Any]:
    """A complete, approved, servable entry; ``overrides`` change (or DROP) its keys."""
    data: dict[str, Any] = {
        "id": "vaksin-microchip",
        "title": "Vaksin berisi microchip",
        "claim": "Vaksin COVID-19 disebut berisi microchip pelacak.",
        "verdict": "hoaks",
        "status": "approved",
        "owner": "Dinas Kesehatan",
        "approved_by": "Kepala Dinas Kesehatan",
        "approved_at": (TODAY - dt.timedelta(days=10)).isoformat(),
        "review_by": (TODAY + dt.timedelta(days=365)).isoformat(),
        "examples": ["apa benar vaksin ada chipnya?"],
        "clarification": "Tidak benar. Vaksin di {city} tidak berisi microchip. "
                         "Tanyakan ke {dinkes_contact}.",
        "sources": [
            {"title": "Kementerian Kesehatan", "url": "https://kemkes.go.id/vaksin"},
            {"title": "Komdigi", "url": "https://komdigi.go.id/hoaks"},
        ],
    }
    for key, value in overrides.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def write_entry(folder: Path, data: Any, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{data['id']}.yml")
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def load_one(folder: Path, **overrides: Any) -> Registry:
    write_entry(folder, entry_data(**overrides))
    return Registry.load(folder)


def write_csv(path: Path, header: list[str], rows: list[list[str]], bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def garda(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `garda` entry point in a subprocess (GARDA_HOME set when ``home`` is)."""
    env = {k: v for k, v in os.environ.items() if k != "GARDA_HOME"}
    if home is not None:
        env["GARDA_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# -- 1. registry schema and rendering -----------------------------------------------------


def test_complete_approved_entry_loads_and_renders(tmp_path: Path, settings) -> None:
    registry = load_one(tmp_path)
    assert registry.errors == []
    assert registry.check(settings, TODAY) == []
    entry = registry.entries["vaksin-microchip"]
    assert entry.servable(TODAY)
    assert [e.id for e in registry.servable(TODAY)] == ["vaksin-microchip"]

    text = entry.render(settings, TODAY)
    lines = text.splitlines()
    assert lines[0] == "[HOAKS] Vaksin berisi microchip"
    assert f"Vaksin di {settings['city']} tidak berisi microchip." in text
    assert f"Tanyakan ke {settings['dinkes_contact']}." in text
    assert "{" not in text
    assert "Sumber resmi:" in lines
    assert "- Kementerian Kesehatan: https://kemkes.go.id/vaksin" in lines
    assert "- Komdigi: https://komdigi.go.id/hoaks" in lines
    # The sources come after the clarification.
    assert text.index("Tidak benar.") < text.index("Sumber resmi:")


@pytest.mark.parametrize("verdict, label", [("penipuan", "[AWAS PENIPUAN]"),
                                            ("disinformasi", "[DISINFORMASI]")])
def test_render_labels_each_verdict(tmp_path: Path, settings, verdict: str, label: str) -> None:
    entry = load_one(tmp_path, verdict=verdict).entries["vaksin-microchip"]
    assert entry.render(settings, TODAY).startswith(f"{label} Vaksin berisi microchip\n")


def _write_text(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, "utf-8")


SCHEMA_FAILURES = {
    "id differs from file name": (
        lambda d: write_entry(d, entry_data(), "vaksin-chip.yml"),
        "vaksin-chip.yml: id 'vaksin-microchip' differs from the file name 'vaksin-chip'"),
    "id not kebab-case": (
        lambda d: write_entry(d, entry_data(id="Vaksin_Microchip")),
        "Vaksin_Microchip.yml: id 'Vaksin_Microchip' is not kebab-case"),
    "unknown verdict": (
        lambda d: write_entry(d, entry_data(verdict="palsu")),
        f"verdict 'palsu' is not one of {', '.join(VERDICTS)}"),
    "unknown status": (
        lambda d: write_entry(d, entry_data(status="published")),
        f"status 'published' is not one of {', '.join(STATUSES)}"),
    "unknown key": (
        lambda d: write_entry(d, entry_data(author="someone")),
        "vaksin-microchip.yml: unknown key 'author'"),
    "missing clarification": (
        lambda d: write_entry(d, entry_data(clarification=DROP)),
        "vaksin-microchip.yml: clarification is missing"),
    "clarification too long": (
        lambda d: write_entry(d, entry_data(clarification="Tidak benar. " * 70)),
        f"clarification is longer than {MAX_CLARIFICATION} characters"),
    "http source": (
        lambda d: write_entry(d, entry_data(sources=[{"title": "Kemkes",
                                                      "url": "http://kemkes.go.id"}])),
        "sources[0].url 'http://kemkes.go.id' is not an https address"),
    "bad date": (
        lambda d: write_entry(d, entry_data(review_by="2027-13-01")),
        "review_by '2027-13-01' is not a date (YYYY-MM-DD)"),
    "duplicate id in two files": (
        lambda d: (write_entry(d, entry_data()),
                   write_entry(d, entry_data(), "vaksin-microchip.yaml")),
        "vaksin-microchip.yaml: id 'vaksin-microchip' is used twice"),
    "invalid YAML": (
        lambda d: _write_text(d, "rusak.yml", "id: rusak\ntitle: [tidak ditutup\n"),
        "rusak.yml: not valid YAML"),
    "a list, not a mapping": (
        lambda d: _write_text(d, "daftar.yml", "- id: daftar\n- title: x\n"),
        "daftar.yml: must be a mapping of the entry's fields"),
    "unknown placeholder": (
        lambda d: write_entry(d, entry_data(clarification="Hubungi {nomor_rahasia}.")),
        "vaksin-microchip: placeholder {nomor_rahasia} is not in settings"),
    "unknown placeholder in a draft": (
        lambda d: write_entry(d, entry_data(status="draft", clarification="Lihat {tidak_ada}.")),
        "vaksin-microchip: placeholder {tidak_ada} is not in settings"),
}


@pytest.mark.parametrize("case", SCHEMA_FAILURES, ids=list(SCHEMA_FAILURES))
def test_schema_failures_are_named(tmp_path: Path, settings, case: str) -> None:
    write, expected = SCHEMA_FAILURES[case]
    write(tmp_path)
    problems = Registry.load(tmp_path).check(settings, TODAY)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("case", [c for c in SCHEMA_FAILURES if "placeholder" not in c
                                  and "duplicate" not in c])
def test_structurally_broken_files_are_not_loaded(tmp_path: Path, case: str) -> None:
    SCHEMA_FAILURES[case][0](tmp_path)
    registry = Registry.load(tmp_path)
    assert registry.errors
    assert registry.entries == {}
    assert registry.servable(TODAY) == []


@pytest.mark.parametrize("key", ["clarification", "title"])
def test_blank_required_text_is_missing(tmp_path: Path, settings, key: str) -> None:
    registry = load_one(tmp_path, **{key: "   "})
    assert f"vaksin-microchip.yml: {key} is missing" in registry.check(settings, TODAY)


def test_duplicate_keeps_the_first_file(tmp_path: Path) -> None:
    write_entry(tmp_path, entry_data(title="Yang pertama"))
    write_entry(tmp_path, entry_data(title="Yang kedua"), "vaksin-microchip.yaml")
    registry = Registry.load(tmp_path)
    assert registry.entries["vaksin-microchip"].title == "Yang pertama"
    assert len(registry.errors) == 1


def test_missing_folder_is_an_error(tmp_path: Path, settings) -> None:
    problems = Registry.load(tmp_path / "tidak-ada").check(settings, TODAY)
    assert problems == [f"{tmp_path / 'tidak-ada'}: no such folder"]


# -- 2. approval rules ---------------------------------------------------------------------

PAST = (TODAY - dt.timedelta(days=1)).isoformat()
FUTURE = (TODAY + dt.timedelta(days=1)).isoformat()

UNSERVABLE = {
    # case: (overrides, what `check` reports for it; None: nothing, it is not approved)
    "draft": ({"status": "draft"}, None),
    "retired": ({"status": "retired"}, None),
    "review_by passed": ({"review_by": PAST}, f"review_by {PAST} has passed"),
    "expired": ({"expires": PAST}, f"expired on {PAST}"),
    "approved in the future": ({"approved_at": FUTURE}, f"approved_at {FUTURE} is in the future"),
    "no approved_by": ({"approved_by": DROP}, "approved_by is missing"),
    "no sources": ({"sources": []}, "sources is empty"),
    "TODO in clarification": ({"clarification": f"{TODO}: tulis klarifikasi."},
                              "clarification still contains TODO"),
}


@pytest.mark.parametrize("case", UNSERVABLE, ids=list(UNSERVABLE))
def test_unservable_entries_are_never_served(tmp_path: Path, settings, case: str) -> None:
    overrides, reported = UNSERVABLE[case]
    write_entry(tmp_path, entry_data(**overrides))
    write_entry(tmp_path, entry_data(id="kontrol", title="Entri yang boleh dikirim"))
    registry = Registry.load(tmp_path)
    assert registry.errors == []  # structurally fine: kept for the team
    entry = registry.entries["vaksin-microchip"]

    assert not entry.servable(TODAY)
    with pytest.raises(RegistryError, match=r"^vaksin-microchip: "):
        entry.render(settings, TODAY)
    assert [e.id for e in registry.servable(TODAY)] == ["kontrol"]

    problems = registry.check(settings, TODAY)
    if reported is None:
        assert problems == []
    else:
        assert problems == [p for p in problems if p.startswith("vaksin-microchip: ")]
        assert any(reported in p for p in problems), problems


def test_boundary_days_are_still_servable(tmp_path: Path, settings) -> None:
    """Approved today, review due today, expiring today: all still valid today."""
    today = TODAY.isoformat()
    entry = load_one(tmp_path, approved_at=today, review_by=today,
                     expires=today).entries["vaksin-microchip"]
    assert entry.servable(TODAY)
    assert not entry.servable(TODAY + dt.timedelta(days=1))
    assert entry.render(settings, TODAY).startswith("[HOAKS]")


def test_timestamp_instead_of_date_is_reported_not_a_crash(tmp_path: Path, settings) -> None:
    data = entry_data()
    text = yaml.safe_dump(data, sort_keys=False).replace(
        f"approved_at: '{data['approved_at']}'", f"approved_at: {data['approved_at']} 09:00:00")
    _write_text(tmp_path, "vaksin-microchip.yml", text)
    registry = Registry.load(tmp_path)
    problems = registry.check(settings, TODAY)
    assert registry.errors or registry.entries["vaksin-microchip"].servable(TODAY), problems


# -- 3. the project's own registry and `garda hoax check` ---------------------------------


def test_project_registry_passes_hoax_check() -> None:
    result = garda("hoax", "check")
    assert result.returncode == 0, result.stderr
    assert "may be served" in result.stdout


def test_every_approved_project_entry_renders_today(settings) -> None:
    registry = Registry.load(ROOT / "data" / "hoaxes")
    assert registry.errors == []
    approved = [e for e in registry.entries.values() if e.status == "approved"]
    assert approved
    for entry in approved:
        text = entry.render(settings, dt.date.today())
        assert entry.title in text.splitlines()[0]
        assert "{" not in text
        assert all(source.url in text for source in entry.sources)


def copy_project(home: Path) -> Path:
    home.mkdir()
    for name in ("domain.yml", "config.yml"):
        shutil.copy2(ROOT / name, home / name)
    for name in ("settings", "data"):
        shutil.copytree(ROOT / name, home / name)
    return home


BREAKAGES = {
    "unknown verdict": ({"verdict": "palsu"}, "verdict 'palsu' is not one of"),
    "review lapsed": ({"review_by": "2020-01-01"}, "review_by 2020-01-01 has passed"),
    "unknown placeholder": ({"clarification": "Hubungi {kantor_rahasia}."},
                            "placeholder {kantor_rahasia} is not in settings"),
}


@pytest.mark.parametrize("case", BREAKAGES, ids=list(BREAKAGES))
def test_hoax_check_fails_on_a_broken_copy(tmp_path: Path, case: str) -> None:
    home = copy_project(tmp_path / "garda")
    target = sorted((home / "data" / "hoaxes").glob("*.yml"))[0]
    data = yaml.safe_load(target.read_text("utf-8"))
    changes, expected = BREAKAGES[case]
    data.update(changes)
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")

    result = garda("hoax", "check", home=home)
    assert result.returncode == 1
    assert f"hoax: {target.stem}" in result.stderr  # the file name or the entry id
    assert expected in result.stderr
    assert "1 problem(s) in data/hoaxes/." in result.stderr


# -- 4. import -------------------------------------------------------------------------------

HEADER = ["title", "claim", "clarification", "link"]
ROWS = [
    ["Vaksin COVID berisi microchip", "Katanya vaksin ada chip pelacaknya.",
     "Tidak benar. Vaksin tidak berisi microchip.", "https://cekfakta.example.id/vaksin"],
    ["Token listrik gratis dari PLN", "PLN bagi-bagi token gratis lewat tautan.", "", ""],
]


def assert_drafts(folder: Path, written: list[Path]) -> Registry:
    """Every written file loads with no error as a draft that may never be served."""
    registry = Registry.load(folder)
    assert registry.errors == []
    assert sorted(p.stem for p in written) <= sorted(registry.entries)
    for path in written:
        entry = registry.entries[path.stem]
        assert entry.status == "draft"
        assert entry.approved_by == "" and entry.approved_at is None
        assert not entry.servable(TODAY)
    assert registry.servable(TODAY) == []
    return registry


def test_import_writes_drafts(tmp_path: Path, settings) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", HEADER, ROWS)
    folder = tmp_path / "hoaxes"
    result = import_csv(csv_path, folder, owner="Tim Cek Fakta", verdict="disinformasi")
    assert [p.name for p in result.written] == ["vaksin-covid-berisi-microchip.yml",
                                                "token-listrik-gratis-dari-pln.yml"]
    registry = assert_drafts(folder, result.written)
    vaksin = registry.entries["vaksin-covid-berisi-microchip"]
    assert vaksin.title == "Vaksin COVID berisi microchip"
    assert vaksin.claim == "Katanya vaksin ada chip pelacaknya."
    assert vaksin.examples == ("Katanya vaksin ada chip pelacaknya.",)
    assert vaksin.clarification == "Tidak benar. Vaksin tidak berisi microchip."
    assert [s.url for s in vaksin.sources] == ["https://cekfakta.example.id/vaksin"]
    assert vaksin.owner == "Tim Cek Fakta" and vaksin.verdict == "disinformasi"
    # A missing clarification becomes a TODO (so it can never be approved as is).
    token = registry.entries["token-listrik-gratis-dari-pln"]
    assert token.clarification.startswith(TODO)
    assert "token-listrik-gratis-dari-pln: no clarification in the CSV" in result.notes
    # Drafts do not make `check` fail.
    assert registry.check(settings, TODAY) == []


def test_import_accepts_aliases_and_a_bom(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", ["Judul", "Narasi", "Klarifikasi", "URL"],
                         ROWS[:1], bom=True)
    folder = tmp_path / "hoaxes"
    result = import_csv(csv_path, folder, owner="Tim")
    assert len(result.written) == 1
    entry = assert_drafts(folder, result.written).entries["vaksin-covid-berisi-microchip"]
    assert entry.title == "Vaksin COVID berisi microchip"
    assert entry.clarification == "Tidak benar. Vaksin tidak berisi microchip."
    assert entry.sources[0].url == "https://cekfakta.example.id/vaksin"


def test_rows_without_title_or_claim_are_skipped(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", HEADER, [
        ["", "Klaim tanpa judul", "", ""],
        ["Judul tanpa klaim", "   ", "", ""],
        ROWS[0],
    ])
    result = import_csv(csv_path, tmp_path / "hoaxes", owner="Tim")
    assert [p.stem for p in result.written] == ["vaksin-covid-berisi-microchip"]
    assert result.skipped == ["line 2: no title or no claim", "line 3: no title or no claim"]
    assert len(list((tmp_path / "hoaxes").iterdir())) == 1


def test_reimport_skips_titles_already_in_the_folder(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", HEADER, ROWS)
    folder = tmp_path / "hoaxes"
    first = import_csv(csv_path, folder, owner="Tim")
    before = {p.name: p.read_text("utf-8") for p in folder.iterdir()}
    second = import_csv(csv_path, folder, owner="Tim")
    assert len(first.written) == 2
    assert second.written == []
    assert len(second.skipped) == 2
    assert all("is already in the registry" in s for s in second.skipped)
    assert {p.name: p.read_text("utf-8") for p in folder.iterdir()} == before


def test_reimport_skips_a_title_differing_only_in_case(tmp_path: Path) -> None:
    folder = tmp_path / "hoaxes"
    import_csv(write_csv(tmp_path / "a.csv", HEADER, ROWS[:1]), folder, owner="Tim")
    again = [["VAKSIN covid BERISI microchip", "klaim lain", "", ""]]
    result = import_csv(write_csv(tmp_path / "b.csv", HEADER, again), folder, owner="Tim")
    assert result.written == []


def test_reimport_skips_a_long_title(tmp_path: Path) -> None:
    long_title = "Pesan berantai tentang " + "bantuan sosial yang katanya cair hari ini " * 4
    csv_path = write_csv(tmp_path / "ekspor.csv", HEADER, [[long_title, "klaim", "", ""]])
    folder = tmp_path / "hoaxes"
    assert len(import_csv(csv_path, folder, owner="Tim").written) == 1
    assert import_csv(csv_path, folder, owner="Tim").written == []


def test_same_slug_gets_distinct_ids(tmp_path: Path) -> None:
    rows = [["Vaksin berisi microchip!", "klaim satu", "", ""],
            ["Vaksin berisi microchip?", "klaim dua", "", ""],
            ["vaksin  berisi  MICROCHIP", "klaim tiga", "", ""]]
    folder = tmp_path / "hoaxes"
    # An entry with that slug is already in the folder: the new ids must not overwrite it.
    write_entry(folder, entry_data(id="vaksin-berisi-microchip", title="Judul lama"))
    result = import_csv(write_csv(tmp_path / "ekspor.csv", HEADER, rows), folder, owner="Tim")
    ids = [p.stem for p in result.written]
    assert ids == ["vaksin-berisi-microchip-2", "vaksin-berisi-microchip-3",
                   "vaksin-berisi-microchip-4"]
    registry = Registry.load(folder)
    assert registry.errors == []
    assert registry.entries["vaksin-berisi-microchip"].title == "Judul lama"
    assert [registry.entries[i].claim for i in ids] == ["klaim satu", "klaim dua", "klaim tiga"]


def test_http_link_gives_a_note_and_no_source(tmp_path: Path) -> None:
    rows = [["Judul", "klaim", "Klarifikasi.", "http://situs-tidak-aman.example.id"]]
    folder = tmp_path / "hoaxes"
    result = import_csv(write_csv(tmp_path / "ekspor.csv", HEADER, rows), folder, owner="Tim")
    assert result.notes == ["judul: link 'http://situs-tidak-aman.example.id' is not https; "
                            "add an official source"]
    assert assert_drafts(folder, result.written).entries["judul"].sources == ()


def test_multiline_and_indonesian_text_round_trip(tmp_path: Path) -> None:
    claim = ("🚨 INFO PENTING 🚨\nBansos Rp 2.400.000 sudah cair!!\n"
             "Isi NIK & nomor KK di tautan: \"resmi\" – kata Pak Lurah\n\n"
             "- sebarkan ke grup RT/RW 🙏")
    clarification = ("Informasi tersebut tidak benar.\nYang benar:\n"
                     "- Pendaftaran lewat kelurahan.\n"
                     "- Cek di aplikasi resmi: tidak dipungut biaya.")
    title = "Bansos cair lewat tautan: “resmi” dari Dinsos?"
    folder = tmp_path / "hoaxes"
    result = import_csv(write_csv(tmp_path / "ekspor.csv", HEADER,
                                  [[title, claim, clarification, ""]]),
                        folder, owner="Dinas Sosial Kota Sukamaju")
    entry = assert_drafts(folder, result.written).entries[result.written[0].stem]
    assert result.written[0].stem == "bansos-cair-lewat-tautan-resmi-dari-dinsos"
    assert entry.title == title
    assert entry.claim == claim.strip()
    assert entry.examples == (claim.strip(),)
    assert entry.clarification == clarification
    assert "🚨" in result.written[0].read_text("utf-8")  # written as text, not escaped


def test_csv_without_title_column_raises(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", ["headline", "claim"], [["a", "b"]])
    with pytest.raises(HoaxImportError, match="needs at least a title and a claim column"):
        import_csv(csv_path, tmp_path / "hoaxes", owner="Tim")
    assert not (tmp_path / "hoaxes").exists() or not any((tmp_path / "hoaxes").iterdir())


def test_cli_import_prints_written_paths(tmp_path: Path, capsys) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", HEADER, ROWS)
    folder = tmp_path / "hoaxes"
    code = main(["hoax", "import", str(csv_path), "--into", str(folder)])
    out = capsys.readouterr().out
    assert code == 0
    written = sorted(folder.glob("*.yml"))
    assert len(written) == 2
    for path in written:
        assert f"draft  {path}" in out
    assert "2 draft(s) written, 0 row(s) skipped" in out
    assert assert_drafts(folder, written).entries[written[0].stem].owner == "Tim Pemeriksa Fakta"


def test_cli_import_bad_csv_exits_1(tmp_path: Path, capsys) -> None:
    csv_path = write_csv(tmp_path / "ekspor.csv", ["nama"], [["x"]])
    assert main(["hoax", "import", str(csv_path), "--into", str(tmp_path / "h")]) == 1
    assert "needs at least a title and a claim column" in capsys.readouterr().err


# -- 5. stats ----------------------------------------------------------------------------------


def test_is_spike() -> None:
    assert not is_spike(4, 3.0)        # seen ~3/day every day: 4 today is ordinary
    assert not is_spike(6, 3.0)
    assert is_spike(6, 1 / 7)          # seen once a week: 6 today is a spike
    assert is_spike(SPIKE_MIN, 0.0)    # never seen: the rate floor still lets 5 spike
    assert not is_spike(SPIKE_MIN - 1, 0.0)  # below SPIKE_MIN never spikes
    assert not is_spike(0, 0.0)


LAST = dt.date(2026, 11, 26)


def day(offset: int) -> dt.date:
    return LAST - dt.timedelta(days=offset)


def test_trends_on_hand_made_counts() -> None:
    counts = {}
    for offset in range(1, 15):              # 3 a day on each of the 14 baseline days
        counts[(day(offset), "steady")] = 3
    counts[(day(0), "steady")] = 4
    counts[(day(-1), "steady")] = 100        # after the period: ignored
    counts[(day(7), "weekly")] = 1           # once a week (outside the 7-day period)
    counts[(day(14), "weekly")] = 1
    counts[(day(15), "weekly")] = 50         # before the baseline window: ignored
    counts[(day(0), "weekly")] = 6
    counts[(day(2), "quiet-b")] = 1
    counts[(day(3), "quiet-a")] = 1
    counts[(day(10), "old")] = 10            # only before the period: not listed

    found = trends(counts, LAST, days=7, baseline_days=14)
    assert [t.hoax_id for t in found] == ["weekly", "steady", "quiet-a", "quiet-b"]
    by_id = {t.hoax_id: t for t in found}

    steady = by_id["steady"]
    assert (steady.period, steady.last_day, steady.spike) == (6 * 3 + 4, 4, False)
    assert steady.baseline == pytest.approx(3.0)

    weekly = by_id["weekly"]
    assert (weekly.period, weekly.last_day, weekly.spike) == (6, 6, True)
    assert weekly.baseline == pytest.approx(2 / 14)

    quiet = by_id["quiet-b"]
    assert (quiet.period, quiet.last_day, quiet.spike) == (1, 0, False)
    assert quiet.baseline == pytest.approx(1 / 14)


def test_trends_sorts_spikes_first_then_by_period() -> None:
    counts = {(day(0), "big"): 40, (day(0), "spike"): 5}
    for offset in range(1, 15):
        counts[(day(offset), "big")] = 40
    found = trends(counts, LAST, days=7, baseline_days=14)
    assert [(t.hoax_id, t.spike) for t in found] == [("spike", True), ("big", False)]
    assert trends({}, LAST) == []


# -- 6. counting matches in the store ------------------------------------------------------

MORNING = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.timezone.utc)    # 10:00 WIB, 26 Nov
EVENING = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.timezone.utc)   # 03:00 WIB, 27 Nov
NOV26, NOV27 = dt.date(2026, 11, 26), dt.date(2026, 11, 27)


def test_local_day_is_jakarta_by_default(monkeypatch) -> None:
    monkeypatch.delenv("GARDA_TIMEZONE", raising=False)
    assert local_day(EVENING) == NOV27
    assert local_day(MORNING) == NOV26
    assert local_day(EVENING.replace(tzinfo=None)) == NOV27  # naive means UTC (SQLite)
    assert local_day(EVENING, "UTC") == NOV26
    monkeypatch.setenv("GARDA_TIMEZONE", "Asia/Jayapura")     # WIT, UTC+9
    assert local_day(dt.datetime(2026, 11, 26, 15, 30, tzinfo=dt.timezone.utc)) == NOV27


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> Iterator[Database]:
    monkeypatch.delenv("GARDA_TIMEZONE", raising=False)
    url = (f"sqlite:///{tmp_path / 'garda.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    database = Database(url)
    database.upgrade()
    assert database.dialect == request.param
    yield database
    database.dispose()


def decision(hoax_id: str | None = None, category: str | None = None) -> Decision:
    if hoax_id:
        return Decision(text="x", route="hoax", intent=None, confidence=0.8, category=None,
                        hoax_id=hoax_id, reply="[HOAKS] ...")
    if category:
        return Decision(text="x", route="escalate", intent=None, confidence=0.3,
                        category=category, hoax_id=None, reply="Kami cek dulu.")
    return Decision(text="x", route="answer", intent="faq/ktp_baru", confidence=0.9,
                    category=None, hoax_id=None, reply="Cara membuat KTP ...")


CALLS = [Outgoing("sendMessage", {"text": "balasan"})]


def decide(db: Database, platform_id: str, made: Decision, at: dt.datetime) -> Any:
    """Store one inbound message received ``at``, claim it, save ``made`` as its decision."""
    stored = db.store_inbound(Inbound("telegram", platform_id, f"chat-{platform_id}", TEXT,
                                      "pesan"), now=at)
    row = db.claim_next(stored.conversation_id, now=at)
    assert row is not None and row.id == stored.inbound_id
    db.save_decision(row, made, CALLS, now=at)
    return row


def test_hoax_matches_are_counted_per_local_day(db: Database) -> None:
    decide(db, "m1", decision("vaksin-microchip"), MORNING)
    decide(db, "m2", decision("vaksin-microchip"), MORNING + dt.timedelta(hours=5))
    decide(db, "m3", decision("bansos-tautan"), MORNING)
    decide(db, "m4", decision("bansos-tautan"), EVENING)   # the next day in Jakarta
    decide(db, "m5", decision(), MORNING)                   # no hoax: counts nothing
    assert db.hoax_counts(NOV26 - dt.timedelta(days=1), NOV27) == {
        (NOV26, "vaksin-microchip"): 2,
        (NOV26, "bansos-tautan"): 1,
        (NOV27, "bansos-tautan"): 1,
    }
    assert db.hoax_counts(NOV26, NOV26) == {
        (NOV26, "vaksin-microchip"): 2, (NOV26, "bansos-tautan"): 1}
    assert db.hoax_counts(NOV27 + dt.timedelta(days=1), NOV27 + dt.timedelta(days=9)) == {}
    with db.engine.connect() as conn:
        stored = dict(conn.execute(select(models.inbound.c.platform_id,
                                          models.inbound.c.hoax_id)).all())
    assert stored == {"m1": "vaksin-microchip", "m2": "vaksin-microchip",
                      "m3": "bansos-tautan", "m4": "bansos-tautan", "m5": None}


def test_saving_a_decision_again_does_not_count_twice(db: Database) -> None:
    row = decide(db, "m1", decision("vaksin-microchip"), MORNING)
    again = db.save_decision(row, decision("vaksin-microchip"), CALLS, now=MORNING)
    assert [r.seq for r in again] == [0]       # the IntegrityError path: the pending reply
    assert len(db.outbox_for(row.id)) == 1
    assert db.hoax_counts(NOV26, NOV26) == {(NOV26, "vaksin-microchip"): 1}


def test_decision_without_hoax_counts_nothing(db: Database) -> None:
    decide(db, "m1", decision(), MORNING)
    decide(db, "m2", decision(category="fact_check"), MORNING)
    assert db.hoax_counts(NOV26 - dt.timedelta(days=30), NOV27) == {}


def test_fact_check_counts_per_local_day(db: Database) -> None:
    decide(db, "f1", decision(category="fact_check"), MORNING)
    decide(db, "f2", decision(category="fact_check"), MORNING + dt.timedelta(hours=1))
    decide(db, "f3", decision(category="fact_check"), EVENING)
    decide(db, "f-old", decision(category="fact_check"), MORNING - dt.timedelta(days=10))
    decide(db, "h1", decision("vaksin-microchip"), MORNING)
    decide(db, "a1", decision(), MORNING)
    since = MORNING - dt.timedelta(days=1)
    assert db.fact_check_counts(since) == {NOV26: 2, NOV27: 1}
    assert db.fact_check_counts(EVENING) == {NOV27: 1}


# -- 7. retrieval evaluation ---------------------------------------------------------------

CLAIMS = [
    ("vaksin", "Vaksin COVID-19 mengandung microchip sehingga lengan bekas suntikan "
               "menempel magnet"),
    ("bansos", "Pendaftaran bansos BLT dibuka lewat tautan WhatsApp, cukup isi NIK dan "
               "nomor rekening"),
    ("gempa", "BMKG memprediksi gempa besar akan mengguncang besok malam pukul 22.00"),
    ("token", "PLN membagikan token listrik gratis untuk semua pelanggan melalui situs "
              "pendaftaran"),
    ("ktp", "KTP elektronik lama tidak berlaku lagi mulai tahun depan dan wajib dicetak ulang"),
    ("penculik", "Penculik anak berkeliaran memakai mobil putih di sekitar sekolah dasar"),
    ("sirsak", "Rebusan daun sirsak menyembuhkan kanker stadium akhir dalam satu minggu"),
    ("pdam", "Air PDAM tercemar bakteri berbahaya sehingga warga dilarang minum air keran"),
]
QUERIES = [
    ("vaksin", "apa benar vaksin covid ada chip magnetnya? lengan bisa nempel sendok"),
    ("vaksin", "katanya habis disuntik vaksin badan jadi magnet, beneran?"),
    ("bansos", "min, daftar BLT lewat link wa itu resmi ga? disuruh isi NIK sama rekening"),
    ("gempa", "BMKG bilang besok malam jam 10 ada gempa gede, bener?"),
    ("gempa", "ada info prediksi gempa besar dari bmkg, hoaks bukan?"),
    ("token", "token listrik gratis dari PLN lewat website itu asli?"),
    ("token", "beneran PLN bagi-bagi token gratis buat pelanggan?"),
    ("ktp", "e-KTP lama katanya ga berlaku tahun depan, harus cetak ulang?"),
    ("penculik", "hati2 ada penculik anak pakai mobil putih dekat sekolah"),
    ("sirsak", "daun sirsak direbus bisa sembuhin kanker ya?"),
    ("sirsak", "obat kanker stadium akhir pakai rebusan sirsak, benarkah"),
    ("pdam", "air keran PDAM tercemar bakteri, jangan diminum?"),
    ("tidak-ada", "klaim yang tidak ada di daftar"),
]
LINE_KEYS = {"id", "rank", "abstained", "top", "latency_ms"}


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_evaluate_on_distinct_topics(tmp_path: Path) -> None:
    out_path = tmp_path / "hasil.jsonl"
    with out_path.open("w", encoding="utf-8") as out:
        report = evaluate(CLAIMS, QUERIES, out)
    assert (report.claims, report.queries, report.skipped) == (8, 12, 1)
    assert report.recall_at_1 >= 0.75
    assert report.recall_at_5 == 1.0
    assert report.recall_at_1 <= report.mrr <= 1.0
    assert 0.0 <= report.abstained <= 1.0

    lines = read_lines(out_path)
    assert len(lines) == 12
    assert all(set(line) == LINE_KEYS for line in lines)
    assert [line["id"] for line in lines] == [q for q, _ in QUERIES if q != "tidak-ada"]
    # The file agrees with the report.
    ranks = [line["rank"] for line in lines]
    assert sum(r == 1 for r in ranks) / 12 == pytest.approx(report.recall_at_1)
    assert sum(1 / r for r in ranks) / 12 == pytest.approx(report.mrr)
    for line in lines:
        assert 1 <= len(line["top"]) <= 5
        assert line["latency_ms"] >= 0
        scores = [t["score"] for t in line["top"]]
        assert scores == sorted(scores, reverse=True)
        if line["rank"] == 1:
            assert line["top"][0]["id"] == line["id"]


def test_evaluate_without_a_known_claim_raises() -> None:
    with pytest.raises(EvalError, match="no query names a claim id"):
        evaluate(CLAIMS, [("tidak-ada", "apa saja")])


def test_a_query_sharing_nothing_is_not_a_hit() -> None:
    report = evaluate(CLAIMS, [("vaksin", "qwxz jjkv"), ("token", "")])
    assert report.recall_at_1 == 0.0


def write_claims_and_queries(tmp_path: Path) -> tuple[Path, Path]:
    claims = write_csv(tmp_path / "klaim.csv", ["kode", "kategori", "teks_klaim"],
                       [[k, "umum", t] for k, t in CLAIMS])
    queries = write_csv(tmp_path / "pesan.csv", ["pesan", "Klaim_ID"],
                        [[t, k] for k, t in QUERIES])
    return claims, queries


def test_read_columns_by_name(tmp_path: Path) -> None:
    claims, queries = write_claims_and_queries(tmp_path)
    assert read_columns(claims, ["KODE", "teks_klaim"]) == CLAIMS
    assert read_columns(queries, ["klaim_id", "pesan"]) == QUERIES


def test_cli_eval_with_column_options(tmp_path: Path, capsys) -> None:
    claims, queries = write_claims_and_queries(tmp_path)
    out_path = tmp_path / "hasil.jsonl"
    code = main(["eval", "hoax-retrieval", "--claims", str(claims), "--queries", str(queries),
                 "--claim-columns", "kode,teks_klaim", "--query-columns", "klaim_id,pesan",
                 "--out", str(out_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "claims 8, queries 12 (1 skipped: unknown claim id)" in out
    assert "recall@5   1.000" in out
    assert len(read_lines(out_path)) == 12


def test_cli_eval_missing_column_exits_2(tmp_path: Path, capsys) -> None:
    claims, queries = write_claims_and_queries(tmp_path)
    code = main(["eval", "hoax-retrieval", "--claims", str(claims), "--queries", str(queries)])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs columns id, claim" in err
    assert "kode, kategori, teks_klaim" in err


def test_stats_command_shows_the_top_hoaxes_and_flags_a_spike(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'garda.db'}"
    db = Database(url)
    db.upgrade()
    last = dt.date(2026, 11, 20)
    with db.engine.begin() as conn:
        for days_back in range(1, 15):  # seen about once a day for two weeks
            Database._count_hoax(conn, last - dt.timedelta(days=days_back), "air-pdam-beracun")
        for _ in range(12):  # then twelve times on the last day
            Database._count_hoax(conn, last, "vaksin-microchip-magnet")
        for _ in range(2):
            Database._count_hoax(conn, last, "air-pdam-beracun")
    env = {k: v for k, v in os.environ.items() if k != "GARDA_HOME"}
    env["GARDA_DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "hoax", "stats", "--until", str(last), "--days", "7"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "beracun" in line or "vaksin" in line]
    assert lines[0].startswith("SPIKE") and "vaksin-microchip-magnet" in lines[0]
    assert not lines[1].startswith("SPIKE") and "air-pdam-beracun" in lines[1]
    assert " 8 total" in lines[1]  # 6 days before + 2 on the last day, within the 7 days
