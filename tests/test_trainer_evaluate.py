"""`garda trainer evaluate`: the figures, the HTML report and its plots.

The figures' arithmetic is checked on hand-made Decisions, where every value is known; the
report on those figures (escaping, no external assets); then the command once for real on
the bootstrap model and the locked test sets.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bot.brain.decision import Decision
from bot.safety.categories import CRITICAL, DETECTED
from bot.trainer import evaluate as evaluation
from bot.trainer.evaluate import escalation_metrics, headline, hoax_metrics, nlu_metrics
from bot.trainer.report import CONFUSION_PNG, ESCALATION_PNG, F1_PNG, REPORT_HTML, render

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def decision(intent: str | None, route: str = "answer", text: str = "",
             hoax_id: str | None = None) -> Decision:
    return Decision(text=text, route=route, intent=intent, confidence=0.9, category=None,
                    hoax_id=hoax_id, reply="")


def small_nlu() -> dict:
    files = {
        "heldout_a": [("faq/ktp_baru", "bikin ktp"), ("faq/ktp_baru", "ktp baru gmn"),
                      ("faq/pbb", "bayar pbb"), ("greet", "halo")],
        "heldout_b": [("faq/pbb", "pajak bumi 3201234567890123 <b>"), ("greet", "pagi")],
    }
    decisions = {
        "heldout_a": [decision("faq/ktp_baru"), decision("faq/ktp_baru", "clarify"),
                      decision("faq/ktp_baru"), decision("greet")],
        "heldout_b": [decision("faq/ktp_baru", "clarify"), decision(None, "fallback")],
    }
    return nlu_metrics(files, decisions)


def test_nlu_figures_per_file_and_overall() -> None:
    nlu = small_nlu()
    a, b, overall = nlu["files"]["heldout_a"], nlu["files"]["heldout_b"], nlu["overall"]
    assert (a["total"], a["accuracy"], a["answered_right"], a["answered_wrong"]) == (
        4, 0.75, 0.5, 0.25)
    assert a["routes"]["clarify"] == 0.25 and a["route_counts"]["answer"] == 3
    assert (b["accuracy"], b["answered_wrong"], b["routes"]["fallback"]) == (0.0, 0.0, 0.5)
    assert overall["total"] == 6 and overall["accuracy"] == 0.5
    ktp = overall["per_intent"]["faq/ktp_baru"]
    assert ktp == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 2}
    assert overall["per_intent"]["faq/pbb"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                "support": 2}
    assert overall["macro_f1"] == 0.4444  # (2/3 + 0 + 2/3) / 3: greet's F1 is 2/3 too
    labels = overall["matrix"]["labels"]
    assert labels == ["(none)", "faq/ktp_baru", "faq/pbb", "greet"]
    counts = dict(zip(labels, overall["matrix"]["counts"], strict=True))
    assert counts["faq/pbb"] == [0, 2, 0, 0] and counts["greet"] == [1, 0, 0, 1]


def test_worst_confusions_come_with_masked_examples() -> None:
    confusions = small_nlu()["overall"]["confusions"]
    assert [(c["label"], c["predicted"], c["count"]) for c in confusions] == [
        ("faq/pbb", "faq/ktp_baru", 2), ("greet", "(none)", 1)]
    examples = confusions[0]["examples"]
    assert examples[0] == {"text": "bayar pbb", "route": "answer"}
    assert "3201234567890123" not in examples[1]["text"]
    assert "[nik/kk]" in examples[1]["text"]


def test_escalation_figures_recall_escalated_accuracy_and_negatives() -> None:
    categories = {name: [f"{name} {i}" for i in range(10)] for name in DETECTED}
    answers = {f"emergency {i}": "emergency" for i in range(9)}  # one emergency missed
    answers |= {f"threat {i}": "abuse" for i in range(2)}  # two threats as abuse
    answers |= {f"threat {i}": "threat" for i in range(2, 10)}
    answers |= {"kritik keras 1": "abuse"}
    figures = escalation_metrics(answers.get, categories, ["kritik keras 1", "kritik 2"],
                                 ["ktp"] * 4)
    emergency, threat = figures["categories"]["emergency"], figures["categories"]["threat"]
    assert (emergency["recall"], emergency["escalated"], emergency["critical"]) == (
        0.9, 0.9, True)
    assert (threat["recall"], threat["escalated"]) == (0.8, 1.0)
    assert figures["categories"]["privacy"] == {"support": 10, "escalated": 0.0,
                                                "recall": 0.0, "critical": False}
    overall = figures["overall"]
    assert overall == {"support": 80, "escalated": round(19 / 80, 4),
                       "recall": round(17 / 80, 4), "category_accuracy": round(17 / 19, 4)}
    assert figures["criticism"] == {"support": 2, "escalated": 0.5}
    assert figures["routine"]["escalated"] == 0.0
    assert {"label": "threat", "predicted": "abuse", "count": 2} in figures["confusions"]


def test_hoax_figures_right_wrong_and_false_alarms() -> None:
    decided = {
        "questions": {"vaksin-chip": [decision(None, "hoax", hoax_id="vaksin-chip"),
                                      decision(None, "hoax", hoax_id="bpjs-bubar"),
                                      decision("faq/vaksinasi")]},
        "chains": {"bpjs-bubar": [decision(None, "hoax", hoax_id="bpjs-bubar")]},
    }
    figures = hoax_metrics(decided, [decision(None, "hoax", hoax_id="x"), decision(None)],
                           [decision("faq/pbb")] * 5)
    assert figures["questions"] == {"support": 3, "recall": 0.3333, "wrong": 1}
    assert figures["chains"] == {"support": 1, "recall": 1.0, "wrong": 0}
    assert (figures["recall"], figures["wrong"], figures["wrong_share"]) == (0.5, 1, 0.25)
    assert figures["unknown_claims"] == {"support": 2, "matched": 1, "share": 0.5}
    assert figures["routine"] == {"support": 5, "matched": 0, "share": 0.0}


def test_the_test_hash_changes_with_a_locked_file_and_with_nothing_else(tmp_path: Path
                                                                        ) -> None:
    (tmp_path / "tests" / "nlu").mkdir(parents=True)
    (tmp_path / "data" / "nlu").mkdir(parents=True)
    locked = tmp_path / "tests" / "nlu" / "heldout_x.yml"
    locked.write_text("nlu: []\n")
    before = evaluation.test_hash(tmp_path)
    (tmp_path / "data" / "nlu" / "more.yml").write_text("nlu: []\n")  # training data
    assert evaluation.test_hash(tmp_path) == before
    locked.write_text("nlu: [] # changed\n")
    assert evaluation.test_hash(tmp_path) != before


def full_metrics() -> dict:
    nlu = small_nlu()
    nlu["overall"]["per_intent"]["<script>alert(1)</script>"] = {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    nlu["overall"]["confusions"][0]["examples"].append(
        {"text": '<img src="http://evil.example/x.png"> & "kutip"', "route": "answer"})
    categories = {name: [f"{name} {i}" for i in range(3)] for name in DETECTED}
    escalation = escalation_metrics(lambda t: t.split()[0], categories, ["a"], ["b"])
    escalation["nlu_escalated"] = 0.0
    hoax = hoax_metrics({"questions": {"h": [decision(None, "hoax", hoax_id="h")]},
                         "chains": {"h": [decision(None, "hoax", hoax_id="h")]}}, [], [])
    hoax["routine_false_alarms"] = 0.0
    return {"metrics_version": 1, "test_hash": "f" * 64, "model": "m1", "nlu": nlu,
            "escalation": escalation, "hoax": hoax, "eval_seconds": 1.5}


def test_report_is_self_contained_and_escapes_every_text(tmp_path: Path) -> None:
    metrics = full_metrics()
    gate = {"ok": False, "baseline": "m0", "tolerance": 0.01, "intent_tolerance": 0.1,
            "reasons": ["nlu overall accuracy dropped <b>"], "checks": [
                {"name": "nlu overall accuracy", "baseline": 0.9, "candidate": 0.5,
                 "limit": 0.01, "higher_is_better": True, "ok": False}]}
    page = render(metrics, tmp_path / "r", "Laporan <uji>", {"trained_by": "<tr>"},
                  baseline=metrics, gate=gate)
    assert page == tmp_path / "r" / REPORT_HTML
    for name in (CONFUSION_PNG, F1_PNG, ESCALATION_PNG):
        assert (tmp_path / "r" / name).read_bytes().startswith(PNG)
    text = page.read_text("utf-8")
    assert "<script" not in text and "<link" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=&quot;http://evil.example/x.png&quot;&gt; &amp; &quot;kutip&quot;" in text
    assert "Laporan &lt;uji&gt;" in text and "&lt;tr&gt;" in text
    assert "accuracy dropped &lt;b&gt;" in text and "DITOLAK" in text
    # Every image is embedded; nothing is fetched from anywhere.
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "[nik/kk]" in text and "3201234567890123" not in text


def test_headline_picks_the_weakest_critical_category() -> None:
    metrics = full_metrics()
    metrics["escalation"]["categories"]["self_harm"]["recall"] = 0.5
    assert headline(metrics)["critical_recall"] == 0.5
    assert set(CRITICAL) <= set(metrics["escalation"]["categories"])


@pytest.mark.model
def test_garda_trainer_evaluate_writes_metrics_report_and_plots(
        trained_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from bot.nlu_data import heldout_files, read_examples

    monkeypatch.setenv("GARDA_REGISTRY_DIR", str(tmp_path / "empty-registry"))
    out = tmp_path / "eval"
    assert main(["trainer", "evaluate", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("model bootstrap: accuracy ")
    assert re.search(r"load \d+ s, evaluation \d+ s", printed)
    metrics = json.loads((out / "metrics.json").read_text("utf-8"))
    assert metrics["model"] == "bootstrap" and metrics["test_hash"] == evaluation.test_hash()
    files = metrics["nlu"]["files"]
    assert set(files) == {p.name.removesuffix(".yml") for p in heldout_files()}
    overall = metrics["nlu"]["overall"]
    assert overall["total"] == len(read_examples(heldout_files())) == sum(
        f["total"] for f in files.values())
    counts = overall["matrix"]["counts"]
    diagonal = sum(counts[i][i] for i in range(len(counts)))
    assert overall["accuracy"] == round(diagonal / overall["total"], 4)
    assert abs(sum(overall["routes"].values()) - 1) < 1e-3
    assert overall["accuracy"] > 0.85  # the bootstrap model is a good one
    escalation = metrics["escalation"]
    assert set(escalation["categories"]) == set(DETECTED)
    assert all(0 <= c["recall"] <= c["escalated"] <= 1
               for c in escalation["categories"].values())
    assert escalation["overall"]["support"] == sum(
        c["support"] for c in escalation["categories"].values())
    assert metrics["hoax"]["questions"]["support"] > 0
    for name in (REPORT_HTML, CONFUSION_PNG, F1_PNG, ESCALATION_PNG):
        assert (out / name).stat().st_size > 1000
    shutil.rmtree(out)
