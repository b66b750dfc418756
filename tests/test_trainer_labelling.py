"""Labelling: the writer puts an accepted example into the right data/nlu file (keeping
every other byte, refusing duplicates, personal data, unknown intents, empty and huge
texts), Rasa still accepts the data, and the terminal review drives it from the keyboard.

The writer always runs on a copy of data/nlu in tmp_path: the real training data is
never modified. Held-out duplicates are checked against a held-out folder of the test's
own (the real tests/nlu is never read here).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_trainer_inbox import THRESHOLD, Chats, by_inbound

from bot.privacy import mask
from bot.store.db import Database
from bot.trainer import inbox
from bot.trainer.nludata import LabelError, NluPaths, add_example, closest, insert_example
from bot.trainer.review import review

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
PHONE = "081234567890"
NIK = "3201234567890001"
HELDOUT_TEXT = "kapan truk sampah lewat komplek melati"  # the test's own held-out example


@pytest.fixture
def paths(tmp_path: Path) -> NluPaths:
    """A copy of data/nlu, and a held-out folder with one example of the test's own."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "data" / "nlu", project / "data" / "nlu")
    heldout = project / "tests" / "nlu"
    heldout.mkdir(parents=True)
    (heldout / "heldout_mine.yml").write_text(
        f'version: "3.1"\nnlu:\n- intent: faq/sampah\n  examples: |\n    - {HELDOUT_TEXT}\n',
        "utf-8")
    return NluPaths(project / "data" / "nlu", heldout)


def block(path: Path, intent: str) -> list[str]:
    data = yaml.safe_load(path.read_text("utf-8"))
    found = next(b for b in data["nlu"] if b.get("intent") == intent)
    return [line[2:] for line in found["examples"].splitlines()]


def test_an_example_goes_last_in_its_intents_block_and_nothing_else_changes(
        paths: NluPaths) -> None:
    target = paths.data / "faq_lingkungan.yml"
    before = target.read_bytes()
    others = {p.name: p.read_bytes() for p in paths.data_files() if p != target}
    written = add_example("faq/sampah", "sampah depan rumah sy udh 5 hari ga diangkut min",
                          paths)
    assert written.path == target
    assert written.example == "sampah depan rumah sy udh 5 hari ga diangkut min"
    after = target.read_bytes()
    line = f"    - {written.example}\n".encode()
    assert after.count(line) == 1
    assert after.replace(line, b"", 1) == before  # every other byte: comments, order
    assert block(target, "faq/sampah")[-1] == written.example
    assert block(target, "faq/pdam") == block(ROOT / "data" / "nlu" / "faq_lingkungan.yml",
                                              "faq/pdam")
    assert {p.name: p.read_bytes() for p in paths.data_files() if p != target} == others
    assert not list(paths.data.glob(".garda-*"))  # no temporary file left behind
    assert (ROOT / "data" / "nlu" / "faq_lingkungan.yml").read_bytes() == before


@pytest.mark.parametrize("text", [
    "Cara bikin KTP gmn min??",        # an existing example, in other clothes
    "cara bikinnn ktp gmn min 🙏",
])
def test_an_example_already_in_the_training_data_is_refused(paths: NluPaths,
                                                            text: str) -> None:
    before = {p: p.read_bytes() for p in paths.data_files()}
    with pytest.raises(LabelError, match=r"sudah ada di data latih \(faq_adminduk.yml\)"):
        add_example("faq/pbb", text, paths)  # whatever the intent
    assert {p: p.read_bytes() for p in paths.data_files()} == before


def test_an_example_of_the_held_out_test_set_is_refused_without_showing_it(
        paths: NluPaths) -> None:
    with pytest.raises(LabelError) as refused:
        add_example("faq/sampah", HELDOUT_TEXT.upper() + "!!", paths)
    assert "data uji" in str(refused.value) and "melati" not in str(refused.value)
    assert HELDOUT_TEXT not in (paths.data / "faq_lingkungan.yml").read_text("utf-8")


def test_personal_data_is_refused_and_masked_data_is_written_as_the_normalisers_words(
        paths: NluPaths) -> None:
    for raw in (f"tlg hubungi sy di {PHONE} soal pdam", f"nik sy {NIK} kok ga terdaftar bansos",
                "email sy ani.warga@example.com blm dibalas", "wa 6281234567890 ya min"):
        with pytest.raises(LabelError, match="data pribadi"):
            add_example("faq/pdam", raw, paths)
    written = add_example("faq/pdam", mask(f"tlg hubungi sy di {PHONE} soal pdam mati"), paths)
    assert written.example == "tlg hubungi sy di nomortelepon soal pdam mati"
    text = written.path.read_text("utf-8")
    assert PHONE not in text and "[telepon]" not in text
    assert mask(written.example) == written.example


@pytest.mark.parametrize("intent, text, reason", [
    ("faq/izin_keramaian", "izin keramaian acara nikahan gmn", "tidak ada di data/nlu"),
    ("faq/pbb", "  🙏🙏 !!  ", "kosong"),
    ("faq/pbb", "pbb " * 100, "terlalu panjang"),
])
def test_unknown_intents_empty_and_huge_examples_are_refused(paths: NluPaths, intent: str,
                                                             text: str, reason: str) -> None:
    before = {p: p.read_bytes() for p in paths.data_files()}
    with pytest.raises(LabelError, match=reason):
        add_example(intent, text, paths)
    assert {p: p.read_bytes() for p in paths.data_files()} == before


def test_brackets_never_become_rasa_entity_annotations(paths: NluPaths) -> None:
    written = add_example("faq/kia", "kia anak [nik/kk](baru) {cepat} dimana", paths)
    assert "[" not in written.example and "{" not in written.example
    assert block(written.path, "faq/kia")[-1] == written.example


def test_windows_line_endings_a_missing_final_newline_and_quoted_intents_are_kept() -> None:
    content = ('version: "3.1"\r\nnlu:\r\n# greet: a comment\r\n- intent: "greet"\r\n'
               "  examples: |\r\n    - halo\r\n    - hai\r\n\r\n# another\r\n"
               "- intent: thanks\r\n  examples: |\r\n    - makasih")
    once = insert_example(content, "greet", "met pagi")
    assert once is not None
    assert once == content.replace("    - hai\r\n", "    - hai\r\n    - met pagi\r\n")
    twice = insert_example(content, "thanks", "suwun")
    assert twice == content + "\r\n    - suwun\r\n"
    assert insert_example(content, "goodbye", "dadah") is None


def test_writers_at_once_each_add_their_example(paths: NluPaths) -> None:
    texts = [f"jadwal angkut sampah rt {n} blok {chr(97 + n)} kapan" for n in range(6)]
    original = block(paths.data / "faq_lingkungan.yml", "faq/sampah")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda t: add_example("faq/sampah", t, paths), texts))
    now = block(paths.data / "faq_lingkungan.yml", "faq/sampah")
    assert now[: len(original)] == original
    assert sorted(now[len(original):]) == sorted(texts)  # each once, none lost


def test_the_closest_examples_are_the_best_of_the_nearest_intents(paths: NluPaths) -> None:
    near = closest("sampah di depan rumah belum diangkut", paths=paths)
    assert len(near) == 3 and near[0].intent == "faq/sampah"
    assert len({c.intent for c in near}) == 3
    assert near[0].score >= near[1].score >= near[2].score
    assert closest("🙏", paths=paths) == []


@pytest.mark.slow
def test_rasa_data_validate_accepts_the_data_after_labelling(paths: NluPaths,
                                                              tmp_path: Path) -> None:
    from test_rasa import BRAIN_ONLY_RESPONSES

    written = [add_example(intent, text, paths) for intent, text in (
        ("faq/sampah", "sampah numpuk di pinggir jalan anggrek"),
        ("faq/pdam", mask(f"air mati dari subuh, no pelanggan sy {PHONE}")),
        ("greet", "sugeng enjing min"),
        ("faq/kia", "kia [nik/kk](anak) dmn bikinnya"),
    )]
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate", "--data", str(paths.data),
         "data/rules", "--domain", "domain.yml", "--config", "config.yml"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    warnings = [line for line in output.splitlines() if "UserWarning" in line]
    unexplained = [w for w in warnings
                   if not any(f"'{r}'" in w for r in BRAIN_ONLY_RESPONSES)
                   and "duplicated intents have been found across multiple domain files: faq"
                   not in w]
    assert unexplained == [], unexplained
    for w in written:
        assert sum(line == f"    - {w.example}" for line in
                   w.path.read_text("utf-8").splitlines()) == 1


# -- the terminal review ------------------------------------------------------------------


class Terminal:
    """Lines typed by the trainer, and what the review printed."""

    def __init__(self, *typed: str) -> None:
        self.typed = list(typed)
        self.printed: list[str] = []

    def read(self) -> str | None:
        return self.typed.pop(0) if self.typed else None

    def write(self, line: str) -> None:
        self.printed.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.printed)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'garda.db'}")
    database.upgrade()
    return database


def test_a_review_session_labels_group_by_group_from_the_keyboard(
        db: Database, paths: NluPaths) -> None:
    chats = Chats(db)
    for n in range(3):  # the largest group: shown first
        chats.say(f"a{n}", f"air pdam mati trs dr pagi, hp {PHONE}", "answer", "faq/pdam",
                  THRESHOLD + 0.01)
    # Groups of one come newest first.
    chats.say("e1", "cara bayar pbb lewat atm", "answer", "faq/pbb", THRESHOLD)
    chats.say("d1", "xyz qqq", "fallback", None, 0.05)
    chats.say("c1", "izin keramaian buat hajatan", "fallback", "faq/pbg_simbg", 0.2)
    asked = chats.say("b1", "surat pindah sekolah anak", "clarify", "faq/ppdb", 0.35)
    chats.say("b1", "/faq/pindah_domisili", "answer", "faq/pindah_domisili", 1.0,
              kind="button")

    terminal = Terminal(
        "?",                  # an unknown key: explained, asked again
        "a",                  # accept the prediction (faq/pdam)
        "i",                  # type an intent...
        "faq/tidak_ada",      # ...that does not exist: asked again
        "i faq/ppdb",         # the intent on the same line
        "n",                  # a new topic
        "d",                  # discard
        "s",                  # skip
    )
    tally = review(db.engine, terminal.read, terminal.write, "tina", paths)
    printed = terminal.text
    assert printed.index("air pdam mati") < printed.index("surat pindah sekolah")
    assert "Prediksi : faq/pdam (keyakinan rata-rata" in printed
    assert "Usulan   : faq/pindah_domisili (1)" in printed
    assert re.search(r"^  1\. faq/pdam \(\d\.\d\d\)  ", printed, re.M)
    assert "Tombol tidak dikenal." in printed
    assert "Intent 'faq/tidak_ada' tidak ada di data/nlu." in printed
    assert PHONE not in printed and "[telepon]" in printed
    assert tally.decided == {"accept": 2, "new_topic": 1, "discard": 1}
    assert tally.skipped == 1 and tally.items == 3 + 1 + 1 + 1
    assert "Selesai: 2 kelompok diberi label (2 contoh ditulis)" in printed

    pdam = block(paths.data / "faq_lingkungan.yml", "faq/pdam")
    assert pdam[-1] == "air pdam mati trs dr pagi, hp nomortelepon"
    assert block(paths.data / "faq_pendidikan_kerja.yml", "faq/ppdb")[-1] == (
        "surat pindah sekolah anak")
    assert by_inbound(db, asked).status == inbox.ACCEPTED  # predicted faq/ppdb, labelled so
    assert by_inbound(db, asked).decided_by == "tina"
    statuses = {g.text for g in inbox.clusters(db.engine)}
    assert statuses == {"cara bayar pbb lewat atm"}  # skipped: still open


def test_a_refused_example_is_explained_and_the_group_can_be_discarded(
        db: Database, paths: NluPaths) -> None:
    chats = Chats(db)
    chats.say("a1", "cara bikin ktp gmn min", "answer", "faq/ktp_baru", THRESHOLD)
    terminal = Terminal("a", "d")
    tally = review(db.engine, terminal.read, terminal.write, "tina", paths)
    assert "Tidak tercatat: Contoh ini sudah ada di data latih" in terminal.text
    assert tally.decided == {"discard": 1}


def test_quit_and_the_end_of_input_stop_the_session(db: Database, paths: NluPaths) -> None:
    chats = Chats(db)
    chats.say("a1", "jam buka kantor dukcapil sabtu", "answer", "faq/jam_layanan", THRESHOLD)
    chats.say("b1", "jam buka puskesmas minggu", "answer", "faq/puskesmas", THRESHOLD)
    assert review(db.engine, Terminal("q").read, Terminal().write, "tina", paths).items == 0
    assert review(db.engine, Terminal().read, Terminal().write, "tina", paths).items == 0
    assert len(inbox.clusters(db.engine)) == 2
    empty = Terminal()
    inbox.decide(db.engine, inbox.clusters(db.engine)[0].key, inbox.DISCARD, "tina")
    inbox.decide(db.engine, inbox.clusters(db.engine)[0].key, inbox.DISCARD, "tina")
    review(db.engine, empty.read, empty.write, "tina", paths)
    assert "Kotak tinjauan kosong" in empty.text


def test_the_garda_trainer_commands_count_and_review_through_a_pipe(
        db: Database, paths: NluPaths) -> None:
    chats = Chats(db)
    chats.say("a1", "berkas kia anak sy hilang gmn", "answer", "faq/kia", THRESHOLD)
    chats.say("b1", "hmm", "fallback", None, 0.05)
    env = {**ENV, "GARDA_HOME": str(paths.data.parent.parent), "GARDA_DATABASE_URL": db.url}

    def garda(*args: str, stdin: str = "") -> Any:
        return subprocess.run([sys.executable, "-m", "bot.cli", "trainer", *args], cwd=ROOT,
                              env=env, input=stdin, capture_output=True, text=True,
                              timeout=300, check=False)

    counted = garda("inbox")
    assert counted.returncode == 0, counted.stderr
    assert "Kotak tinjauan: 2 pesan terbuka dalam 2 kelompok." in counted.stdout
    rows = {line.split()[0]: line.split()[1:] for line in counted.stdout.splitlines()[2:]}
    assert rows["low_margin"][0] == "1" and rows["fallback"][0] == "1"

    reviewed = garda("review", "--user", "tina", stdin="d\na\n")  # newest first
    assert reviewed.returncode == 0, reviewed.stderr
    assert "Ditulis ke" in reviewed.stdout and "faq_adminduk.yml" in reviewed.stdout
    assert block(paths.data / "faq_adminduk.yml", "faq/kia")[-1] == (
        "berkas kia anak sy hilang gmn")
    assert (ROOT / "data" / "nlu" / "faq_adminduk.yml").read_text("utf-8").count(
        "berkas kia anak sy hilang gmn") == 0
    after = garda("inbox")
    assert "Kotak tinjauan: 0 pesan terbuka dalam 0 kelompok." in after.stdout
