"""The regression gate and the model registry.

The gate's rule (bot.trainer.gate.compare) is tested on synthetic metrics dicts: cheap,
and every case is exact. The registry (promote, rollback, history, CURRENT) on a
temporary folder with placeholder files. Then `garda trainer train` for real, twice: a
candidate trained on deliberately corrupted data is refused (exit 1) with the figures that
dropped, and the full-data model is accepted (exit 0) over a baseline trained on a third
of the data. Those two are the only Rasa trainings in the suite.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.safety.categories import CRITICAL, DETECTED
from bot.trainer import gate as gate_module
from bot.trainer.gate import (
    INTENT_TOLERANCE,
    DifferentTests,
    checks,
    compare,
    file_tolerance,
)
from bot.trainer.registry import (
    BOOTSTRAP,
    MODEL,
    PASSED,
    REFUSED,
    REGISTERED,
    SAFETY,
    ActiveWatch,
    Registry,
    RegistryError,
)

ROOT = Path(__file__).resolve().parent.parent
INTENTS = ("faq/ktp_baru", "faq/kartu_keluarga", "faq/pbb", "greet", "out_of_scope")


def one_in(support: int) -> float:
    return 1 / support


def metrics() -> dict[str, Any]:
    """A metrics dict shaped like bot.trainer.evaluate.evaluate's, with plausible values."""
    routes = {"answer": 0.78, "hoax": 0.0, "escalate": 0.004, "clarify": 0.17,
              "fallback": 0.046}
    figures = {"total": 150, "accuracy": 0.95, "macro_f1": 0.94, "answered_right": 0.76,
               "answered_wrong": 0.006, "routes": dict(routes)}
    return {
        "metrics_version": 1,
        "test_hash": "t" * 64,
        "nlu": {
            "files": {name: copy.deepcopy(figures) for name in ("heldout_formal",
                                                                "heldout_informal")},
            "overall": {**copy.deepcopy(figures), "total": 300, "per_intent": {
                intent: {"precision": 0.95, "recall": 0.9, "f1": 0.92, "support": 10}
                for intent in INTENTS}, "confusions": [],
                "matrix": {"labels": [], "counts": []}},
        },
        "escalation": {
            "categories": {name: {"support": 30, "escalated": 0.9, "recall": 0.9,
                                  "critical": name in CRITICAL} for name in DETECTED},
            "overall": {"support": 240, "escalated": 0.9, "recall": 0.9,
                        "category_accuracy": 0.99},
            "criticism": {"support": 50, "escalated": 0.0},
            "routine": {"support": 50, "escalated": 0.02},
            "confusions": [],
        },
        "hoax": {
            "questions": {"support": 70, "recall": 0.94, "wrong": 0},
            "chains": {"support": 28, "recall": 1.0, "wrong": 0},
            "recall": 0.96, "wrong": 0, "wrong_share": 0.0,
            "unknown_claims": {"support": 30, "matched": 2, "share": 0.0667},
            "routine": {"support": 40, "matched": 0, "share": 0.0},
            "routine_false_alarms": 0.0,
        },
    }


# -- the rule ------------------------------------------------------------------------------


def test_the_same_figures_pass_and_every_kind_of_figure_is_checked() -> None:
    ok, reasons = compare(metrics(), metrics())
    assert ok and reasons == []
    names = [c.name for c in checks(metrics(), metrics())]
    for expected in ("nlu heldout_formal accuracy", "nlu overall macro F1",
                     "nlu overall answered wrong", "nlu intent faq/pbb F1",
                     "escalation overall escalated", "escalation category accuracy",
                     "escalation emergency recall", "escalation self_harm escalated",
                     "escalation civil criticism escalated", "hoax chains recall",
                     "hoax routine questions matched (false alarms)"):
        assert expected in names


def test_a_drop_within_the_tolerance_passes_and_one_beyond_it_is_refused() -> None:
    candidate = metrics()
    candidate["nlu"]["overall"]["accuracy"] -= 0.009
    assert compare(metrics(), candidate) == (True, [])
    candidate["nlu"]["overall"]["accuracy"] = 0.95 - 0.02
    ok, reasons = compare(metrics(), candidate)
    assert not ok
    assert reasons == ["nlu overall accuracy dropped from 0.950 to 0.930 (-0.020; "
                       "allowed 0.010)"]
    assert compare(metrics(), candidate, tolerance=0.05) == (True, [])


def test_one_small_test_file_may_move_by_its_noise_but_not_by_a_real_drop() -> None:
    """A 43-message file: three messages (0.07) is within two standard errors of 0.907 and
    passes while the overall figure holds; a quarter of the file lost is refused."""
    assert file_tolerance(0.907, 43) == pytest.approx(2 * (0.907 * 0.093 / 43) ** 0.5)
    assert file_tolerance(0.95, 100_000) == 0.01  # big files: the plain tolerance
    baseline = metrics()
    baseline["nlu"]["files"]["heldout_formal"].update(total=43, accuracy=0.907)
    candidate = copy.deepcopy(baseline)
    candidate["nlu"]["files"]["heldout_formal"]["accuracy"] = 0.837
    assert compare(baseline, candidate) == (True, [])
    candidate["nlu"]["files"]["heldout_formal"]["accuracy"] = 0.65
    ok, reasons = compare(baseline, candidate)
    assert not ok and reasons[0].startswith("nlu heldout_formal accuracy dropped")
    candidate["nlu"]["files"]["heldout_formal"]["accuracy"] = 0.837
    candidate["nlu"]["overall"]["accuracy"] -= 0.02  # the same drop seen overall: refused
    assert not compare(baseline, candidate)[0]


def test_one_emergency_missed_is_refused_whatever_the_tolerance() -> None:
    for name in CRITICAL:
        candidate = metrics()
        candidate["escalation"]["categories"][name]["recall"] -= one_in(30)
        ok, reasons = compare(metrics(), candidate, tolerance=0.5, intent_tolerance=0.5)
        assert not ok
        assert reasons == [f"escalation {name} recall dropped from 0.900 to 0.867 (-0.033; "
                           "critical: no drop allowed)"]


def test_a_critical_message_no_longer_escalated_at_all_is_refused() -> None:
    candidate = metrics()
    candidate["escalation"]["categories"]["threat"]["escalated"] -= one_in(30)
    ok, reasons = compare(metrics(), candidate, tolerance=0.5, intent_tolerance=0.5)
    assert not ok and reasons[0].startswith("escalation threat escalated dropped")


def test_non_critical_categories_and_intents_have_the_wider_tolerance() -> None:
    candidate = metrics()
    candidate["escalation"]["categories"]["privacy"]["recall"] -= 2 * one_in(30)
    candidate["nlu"]["overall"]["per_intent"]["faq/pbb"]["f1"] -= 0.08
    assert compare(metrics(), candidate) == (True, [])
    candidate["nlu"]["overall"]["per_intent"]["faq/pbb"]["f1"] = 0.92 - INTENT_TOLERANCE - 0.01
    ok, reasons = compare(metrics(), candidate)
    assert not ok and reasons == ["nlu intent faq/pbb F1 dropped from 0.920 to 0.810 "
                                  "(-0.110; allowed 0.100)"]


def test_an_intent_the_candidate_lost_is_refused_and_a_new_one_is_not_compared() -> None:
    candidate = metrics()
    del candidate["nlu"]["overall"]["per_intent"]["greet"]
    candidate["nlu"]["overall"]["per_intent"]["faq/new_topic"] = {
        "precision": 0.1, "recall": 0.1, "f1": 0.1, "support": 3}
    ok, reasons = compare(metrics(), candidate)
    assert not ok and reasons == ["nlu intent greet F1 dropped from 0.920 to 0.000 (-0.920; "
                                  "allowed 0.100)"]


def test_more_false_alarms_are_refused_and_fewer_are_welcome() -> None:
    worse = metrics()
    worse["nlu"]["overall"]["routes"]["escalate"] = 0.03
    worse["hoax"]["routine_false_alarms"] = 0.02
    worse["escalation"]["criticism"]["escalated"] = 0.04
    ok, reasons = compare(metrics(), worse)
    assert not ok
    assert {r.split(" rose ")[0] for r in reasons} == {
        "nlu overall escalated (false escalations)",
        "hoax routine questions matched (false alarms)",
        "escalation civil criticism escalated"}
    better = metrics()
    better["escalation"]["routine"]["escalated"] = 0.0
    better["nlu"]["overall"]["answered_wrong"] = 0.0
    assert compare(metrics(), better) == (True, [])


def test_an_improvement_everywhere_passes() -> None:
    candidate = metrics()
    for figures in (*candidate["nlu"]["files"].values(), candidate["nlu"]["overall"]):
        figures["accuracy"] += 0.03
        figures["macro_f1"] += 0.03
    for category in candidate["escalation"]["categories"].values():
        category["recall"] = category["escalated"] = 1.0
    candidate["hoax"]["questions"]["recall"] = 1.0
    assert compare(metrics(), candidate) == (True, [])


def test_figures_from_different_test_sets_are_not_compared() -> None:
    candidate = metrics()
    candidate["test_hash"] = "u" * 64
    with pytest.raises(DifferentTests):
        compare(metrics(), candidate)


# -- the registry --------------------------------------------------------------------------


def entry(registry: Registry, status: str, data: str = "d" * 64) -> str:
    made = registry.new_entry(data, {"trained_by": "tester", "safety_hash": "s"})
    (made.folder / MODEL).write_bytes(b"placeholder")
    (made.folder / SAFETY).write_bytes(b"placeholder")
    registry.set_status(made, status)
    return made.id


def test_promote_needs_a_passed_gate_or_force_with_a_reason(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    refused = entry(registry, REFUSED)
    passed = entry(registry, PASSED)
    assert refused != passed  # same second and data: still two ids
    with pytest.raises(RegistryError, match="did not pass the gate"):
        registry.promote(refused, "tester")
    with pytest.raises(RegistryError, match="--force needs --reason"):
        registry.promote(refused, "tester", force=True)
    assert registry.active_id() == BOOTSTRAP
    registry.promote(passed, "tester", "passed")
    assert registry.active_id() == passed
    registry.promote(refused, "tester", "the gate is wrong about privacy", force=True)
    assert registry.active_id() == refused
    last = registry.history()[-1]
    assert last["action"] == "promote" and last["forced"] is True
    assert last["by"] == "tester" and last["reason"] == "the gate is wrong about privacy"
    with pytest.raises(RegistryError, match="already the active model"):
        registry.promote(refused, "tester", "again", force=True)


def test_rollback_walks_back_through_promotions_to_the_bootstrap(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    first, second, third = (entry(registry, PASSED) for _ in range(3))
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback("tester")
    for promoted in (first, second, third):
        registry.promote(promoted, "tester")
    assert registry.rollback("tester", "complaints") == second
    assert registry.active_id() == second
    registry.promote(third, "tester")
    assert registry.rollback("tester") == second
    assert registry.rollback("tester") == first
    assert registry.rollback("tester") == BOOTSTRAP
    assert not (tmp_path / "CURRENT").exists()
    actions = [(r["action"], r["id"]) for r in registry.history()]
    assert actions[-3:] == [("rollback", second), ("rollback", first),
                            ("rollback", BOOTSTRAP)]
    assert registry.history()[-1]["from"] == first


def test_a_refused_or_unusable_entry_cannot_be_promoted_by_accident(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    broken = entry(registry, PASSED)
    (tmp_path / broken / MODEL).unlink()
    with pytest.raises(RegistryError, match="no usable model"):
        registry.promote(broken, "tester", "x", force=True)
    with pytest.raises(RegistryError, match="not a registry id"):
        registry.get("../etc")


def test_the_watch_sees_every_promotion_even_within_one_clock_tick(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    a, b = entry(registry, PASSED), entry(registry, PASSED)
    watch = ActiveWatch(registry)
    assert watch.poll() is None
    registry.promote(a, "tester")
    registry.promote(b, "tester")
    assert watch.poll() == b
    assert watch.poll() is None
    registry.rollback("tester")
    assert watch.poll() == a


def test_a_second_training_run_is_refused_at_once(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    with registry.training_lock(), pytest.raises(RegistryError, match="another"), \
            Registry(tmp_path).training_lock():
        pass


def test_the_gate_does_nothing_for_the_active_model_and_refuses_one_rolled_back(
        tmp_path: Path) -> None:
    """Both are decided before anything is evaluated (the entries hold no real model)."""
    registry = Registry(tmp_path)
    first, second = entry(registry, PASSED), entry(registry, PASSED)
    registry.promote(first, "tester")
    registry.promote(second, "tester")
    outcome = gate_module.gate(registry, registry.get(second), "tester")
    assert outcome.already_active and outcome.promoted and outcome.reasons == []
    registry.rollback("trainer-b", "complaints about KK answers")
    outcome = gate_module.gate(registry, registry.get(second), "tester")
    assert not outcome.promoted and outcome.baseline == first
    assert outcome.reasons == [f"{second} was rolled back by trainer-b at "
                               f"{registry.history()[-2]['at']} (complaints about KK "
                               "answers); promote it by hand if that no longer holds"]
    assert registry.history()[-1]["action"] == "refuse" and registry.active_id() == first


# -- `garda trainer train`, for real -------------------------------------------------------


def run_garda(*args: str, registry: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "GARDA_REGISTRY_DIR": str(registry), "GARDA_USER": "ci-trainer"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def nlu_blocks(folder: Path) -> dict[Path, dict[str, Any]]:
    return {p: yaml.safe_load(p.read_text("utf-8")) for p in sorted(folder.glob("*.yml"))}


def write_examples(block: dict[str, Any], examples: list[str]) -> None:
    block["examples"] = "".join(f"- {e}\n" for e in examples)


def examples_of(block: dict[str, Any]) -> list[str]:
    return [line.strip()[2:].strip() for line in str(block.get("examples") or "").splitlines()
            if line.strip().startswith("- ")]


def copy_data(target: Path) -> Path:
    shutil.copytree(ROOT / "data" / "nlu", target / "nlu")
    shutil.copytree(ROOT / "data" / "rules", target / "rules")
    return target


def corrupt(target: Path, share: float = 0.4, seed: int = 6) -> Path:
    """data/ with ``share`` of the NLU examples given another example's intent (each intent
    keeps its number of examples; the texts are all still there)."""
    copy_data(target)
    files = nlu_blocks(target / "nlu")
    slots = [(path, i, n) for path, data in files.items()
             for i, block in enumerate(data["nlu"]) if block.get("intent")
             for n in range(len(examples_of(block)))]
    rng = random.Random(seed)
    chosen = rng.sample(slots, int(share * len(slots)))
    texts = {(p, i): examples_of(files[p]["nlu"][i]) for p, i, _ in slots}
    moved = [texts[(p, i)][n] for p, i, n in chosen]
    rng.shuffle(moved)
    for (p, i, n), text in zip(chosen, moved, strict=True):
        texts[(p, i)][n] = text
    for (p, i), examples in texts.items():
        write_examples(files[p]["nlu"][i], examples)
    for path, data in files.items():
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return target


def degrade(target: Path, keep: float = 1 / 3) -> Path:
    """data/ with only the first third of each intent's NLU examples."""
    copy_data(target)
    for path, data in nlu_blocks(target / "nlu").items():
        for block in data["nlu"]:
            if block.get("intent"):
                examples = examples_of(block)
                write_examples(block, examples[: max(2, round(keep * len(examples)))])
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return target


@pytest.fixture(scope="module")
def evaluated_bootstrap(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding the bootstrap model (models/garda.tar.gz) already evaluated, to
    copy: both tests below need its figures, and measuring them once saves a model load."""
    root = tmp_path_factory.mktemp("registry-template")
    registry = Registry(root)
    bootstrap = gate_module.bootstrap_entry(registry)
    assert bootstrap is not None
    gate_module.evaluate_entry(registry, bootstrap)
    return root


def registry_copy(template: Path, target: Path) -> Registry:
    shutil.copytree(template, target, copy_function=os.link)  # archives are 100+ MB
    return Registry(target)


@pytest.mark.model
@pytest.mark.slow
def test_a_candidate_trained_on_corrupted_data_is_refused_with_the_figures_that_dropped(
        evaluated_bootstrap: Path, tmp_path: Path) -> None:
    registry = registry_copy(evaluated_bootstrap, tmp_path / "registry")
    data = corrupt(tmp_path / "corrupted")
    result = run_garda("trainer", "train", "--data-dir", str(data), registry=registry.root)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "REFUSED" in out
    for figure in ("nlu overall accuracy dropped", "nlu overall macro F1 dropped",
                   "nlu heldout_informal accuracy dropped"):
        assert figure in out, out
    # The safety classifier saw the same texts: the escalation set's figures did not move.
    assert not [line for line in out.splitlines() if line.startswith("  - escalation ")]
    assert registry.active_id() == BOOTSTRAP and not (registry.root / "CURRENT").exists()
    candidate = next(e for e in registry.entries() if e.meta.get("source") == "trained")
    assert candidate.status == REFUSED
    assert "nlu overall accuracy dropped" in candidate.meta["reason"]
    assert candidate.meta["train_seconds"] > 0 and candidate.meta["eval_seconds"] > 0
    assert candidate.metrics()["nlu"]["overall"]["accuracy"] < 0.8
    assert (candidate.report_dir / "report.html").is_file()
    refusals = [r for r in registry.history() if r["action"] == "refuse"]
    assert [r["id"] for r in refusals] == [candidate.id]
    assert refusals[0]["by"] == "ci-trainer"
    listing = run_garda("model", "list", "--json", registry=registry.root)
    rows = {row["id"]: row for row in json.loads(listing.stdout)}
    assert rows[candidate.id]["status"] == REFUSED and rows[BOOTSTRAP]["active"]


@pytest.mark.model
@pytest.mark.slow
def test_the_full_data_model_is_accepted_over_one_trained_on_a_third_of_the_data(
        evaluated_bootstrap: Path, tmp_path: Path) -> None:
    """The baseline is trained here on a third of each intent's examples, and registered
    with a safety classifier fitted from the full data (as the candidate's is), so that
    only the NLU model differs; it is made active by a forced promotion. The candidate is
    the full-data model: `garda trainer train` on data/ finds that the bootstrap model
    (trained by setup) was trained on exactly this data and gates it instead of training
    it again."""
    from bot.trainer.registry import link_or_copy
    from bot.training import data_hash, rasa_train, stored_meta

    registry = registry_copy(evaluated_bootstrap, tmp_path / "registry")
    bootstrap = registry.entries()[0]
    data = degrade(tmp_path / "degraded")
    archive = rasa_train("config.yml", [data / "nlu", data / "rules"], tmp_path / "out",
                         "degraded")
    full = gate_module.Inputs.of(None)
    baseline = registry.new_entry(data_hash(data_dir=data), {
        "trained_by": "ci-trainer", "source": "trained", "data_dir": str(data),
        "safety_hash": full.safety_hash})
    link_or_copy(archive, baseline.model_path)
    gate_module.fit_safety(full, baseline.safety_path)
    registry.set_status(baseline, REGISTERED)
    promoted = run_garda("model", "promote", baseline.id, "--force", "--reason",
                         "a weak baseline for the test", registry=registry.root)
    assert promoted.returncode == 0, promoted.stderr
    assert registry.active_id() == baseline.id

    result = run_garda("trainer", "train", registry=registry.root)
    assert result.returncode == 0, result.stdout + result.stderr
    active = registry.active()
    assert active is not None and active.id != baseline.id
    assert f"PROMOTED {active.id} (baseline {baseline.id})" in result.stdout
    # The setup-trained archive, not a new training.
    assert active.meta["data_hash"] == bootstrap.meta["data_hash"] == stored_meta()["data_hash"]
    assert active.id == bootstrap.id or active.meta["archive_from"] == BOOTSTRAP
    assert active.status == PASSED
    weak, strong = registry.get(baseline.id).metrics(), active.metrics()
    assert weak is not None and strong is not None
    assert strong["nlu"]["overall"]["accuracy"] > weak["nlu"]["overall"]["accuracy"]
    history = [(r["action"], r["id"]) for r in registry.history()]
    assert history[-2:] == [("promote", baseline.id), ("promote", active.id)]
    # Rolled back by a person: training the same data again does not undo that.
    assert run_garda("model", "rollback", "--reason", "test", registry=registry.root
                     ).returncode == 0
    again = run_garda("trainer", "train", registry=registry.root)
    assert again.returncode == 1 and "was rolled back by ci-trainer" in again.stdout


def test_corrupting_keeps_every_text_and_every_intent_size(tmp_path: Path) -> None:
    def pairs(folder: Path) -> list[tuple[str, str]]:
        return [(b["intent"], t) for d in nlu_blocks(folder).values() for b in d["nlu"]
                if b.get("intent") for t in examples_of(b)]

    original, corrupted = pairs(ROOT / "data" / "nlu"), pairs(corrupt(tmp_path / "c") / "nlu")
    assert Counter(i for i, _ in corrupted) == Counter(i for i, _ in original)
    assert Counter(t for _, t in corrupted) == Counter(t for _, t in original)
    moved = sum(a != b for a, b in zip(original, corrupted, strict=True))
    assert 0.25 * len(original) < moved <= 0.4 * len(original)
