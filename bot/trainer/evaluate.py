"""A model version's figures on the locked test sets: one dict, saved as metrics.json.

    nlu         tests/nlu/heldout_*.yml through Brain.decide: per file and overall,
                top-1 accuracy, macro F1, answered right/wrong, the share of each route;
                overall also per-intent precision/recall/F1/support, the confusion matrix
                and the worst confusions with (masked) examples.
    escalation  tests/safety/heldout.yml through the version's own safety classifier (as
                `make bench-escalation` scores it): per category the share escalated at
                all and the share given the right category (recall); overall both, the
                category accuracy among those escalated, and the share of civil
                criticism and of routine questions escalated.
    hoax        tests/hoax/paraphrases.yml through Brain.decide: questions and chain
                messages recognised as the right hoax, named as a wrong hoax, claims not
                in the registry and routine questions routed to a hoax.

Nothing here trains or tunes; the locked files are read by code only, and training never
reads them (bot/training.py hashes and trains on data/ alone). ``test_hash`` fingerprints
everything besides the model that the figures depend on, so two versions' figures are
compared only when they were measured the same way (bot/trainer/gate.py).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.brain.decision import ESCALATE, HOAX, ROUTES, Decision
from bot.evaluation import Scores, decide_all
from bot.nlu_data import heldout_files, read_examples
from bot.paths import project_root
from bot.privacy import mask
from bot.safety.categories import CRITICAL, DETECTED

# Bump when a figure's definition changes: cached metrics of older versions are then
# measured again before any comparison.
METRICS_VERSION = 1
# What the figures depend on besides the model version: the locked test sets, the hoax
# registry and the code that turns a parse into a Decision and a Decision into figures.
EVAL_INPUTS = (
    "tests/nlu/heldout_*.yml", "tests/safety/heldout.yml", "tests/hoax/paraphrases.yml",
    "data/hoaxes/**/*.yml", "bot/brain/*.py", "bot/hoax/*.py", "bot/nlu/**/*",
    "bot/safety/*.py", "bot/evaluation.py", "bot/trainer/evaluate.py",
)
NONE_LABEL = "(none)"
WORST = 15          # confusions listed
EXAMPLES = 3        # examples per confusion


def test_hash(root: Path | None = None) -> str:
    root = root or project_root()
    digest = hashlib.sha256(f"metrics v{METRICS_VERSION}\n".encode())
    files = sorted({p for pattern in EVAL_INPUTS for p in root.glob(pattern)
                    if p.is_file() and "__pycache__" not in p.parts})
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _round(value: float) -> float:
    return round(float(value), 4)


# -- NLU --------------------------------------------------------------------------------


def _file_figures(scores: Scores) -> dict[str, Any]:
    return {
        "total": scores.total,
        "accuracy": _round(scores.accuracy),
        "macro_f1": _round(scores.macro_f1),
        "answered_right": _round(_share(scores.answered_correct, scores.total)),
        "answered_wrong": _round(_share(scores.answered_wrong, scores.total)),
        "routes": {route: _round(scores.share(route)) for route in ROUTES},
        "route_counts": {route: scores.routes[route] for route in ROUTES},
    }


def nlu_metrics(files: Mapping[str, Sequence[tuple[str, str]]],
                decisions: Mapping[str, Sequence[Decision]]) -> dict[str, Any]:
    """Figures from labelled examples and the Decisions taken on them, per file name."""
    per_file: dict[str, Any] = {}
    overall = Scores()
    matrix: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for name, pairs in files.items():
        scores = Scores()
        for (label, text), decision in zip(pairs, decisions[name], strict=True):
            scores.add(label, decision)
            overall.add(label, decision)
            predicted = decision.intent or NONE_LABEL
            matrix[(label, predicted)] += 1
            if predicted != label and len(examples[(label, predicted)]) < EXAMPLES:
                examples[(label, predicted)].append({"text": mask(text),
                                                     "route": decision.route})
        per_file[name] = _file_figures(scores)
    per_intent = {}
    for label in overall.labels():
        precision, recall, f1 = overall.f1(label)
        counts = overall.per_label[label]
        per_intent[label] = {"precision": _round(precision), "recall": _round(recall),
                             "f1": _round(f1), "support": counts["tp"] + counts["fn"]}
    labels = sorted({a for a, _ in matrix} | {b for _, b in matrix})
    worst = sorted(overall.confusions.items(), key=lambda kv: (-kv[1], kv[0]))[:WORST]
    return {
        "files": per_file,
        "overall": {
            **_file_figures(overall),
            "per_intent": per_intent,
            "confusions": [{"label": a, "predicted": b, "count": n,
                            "examples": examples[(a, b)]} for (a, b), n in worst],
            "matrix": {"labels": labels,
                       "counts": [[matrix[(a, b)] for b in labels] for a in labels]},
        },
    }


# -- escalation -------------------------------------------------------------------------


def escalation_metrics(classify: Any, categories: Mapping[str, Sequence[str]],
                       criticism: Sequence[str], routine: Sequence[str]) -> dict[str, Any]:
    """``classify(text)`` returns the category escalated to, or None."""
    per_category: dict[str, Any] = {}
    total = escalated = right = 0
    confusions: Counter[tuple[str, str]] = Counter()
    for name in DETECTED:
        texts = categories.get(name, [])
        verdicts = [classify(t) for t in texts]
        hits = sum(v is not None for v in verdicts)
        correct = sum(v == name for v in verdicts)
        confusions.update((name, v or "not escalated") for v in verdicts if v != name)
        per_category[name] = {"support": len(texts), "escalated": _round(_share(hits,
                                                                                len(texts))),
                              "recall": _round(_share(correct, len(texts))),
                              "critical": name in CRITICAL}
        total, escalated, right = total + len(texts), escalated + hits, right + correct
    negatives = {}
    for key, texts in (("criticism", criticism), ("routine", routine)):
        flagged = sum(classify(t) is not None for t in texts)
        negatives[key] = {"support": len(texts), "escalated": _round(_share(flagged,
                                                                            len(texts)))}
    return {
        "categories": per_category,
        "overall": {"support": total, "escalated": _round(_share(escalated, total)),
                    "recall": _round(_share(right, total)),
                    "category_accuracy": _round(_share(right, escalated))},
        **negatives,
        "confusions": [{"label": a, "predicted": b, "count": n}
                       for (a, b), n in confusions.most_common(WORST)],
    }


# -- hoaxes -----------------------------------------------------------------------------


def hoax_metrics(decided: Mapping[str, Mapping[str, Sequence[Decision]]],
                 unknown: Sequence[Decision], routine: Sequence[Decision]) -> dict[str, Any]:
    """``decided``: kind ("questions", "chains") -> hoax id -> the Decisions taken on the
    messages about that hoax; ``unknown``, ``routine``: those taken on claims the registry
    does not hold and on routine questions."""
    figures: dict[str, Any] = {}
    all_right = all_wrong = all_total = 0
    for kind, by_hoax in decided.items():
        right = wrong = total = 0
        for hoax_id, decisions in by_hoax.items():
            for decision in decisions:
                total += 1
                if decision.route == HOAX:
                    right += decision.hoax_id == hoax_id
                    wrong += decision.hoax_id != hoax_id
        figures[kind] = {"support": total, "recall": _round(_share(right, total)),
                         "wrong": wrong}
        all_right, all_wrong, all_total = all_right + right, all_wrong + wrong, all_total + total
    unknown_hits = sum(d.route == HOAX for d in unknown)
    routine_hits = sum(d.route == HOAX for d in routine)
    return {
        **figures,
        "recall": _round(_share(all_right, all_total)),
        "wrong": all_wrong,
        "wrong_share": _round(_share(all_wrong, all_total)),
        "unknown_claims": {"support": len(unknown), "matched": unknown_hits,
                           "share": _round(_share(unknown_hits, len(unknown)))},
        "routine": {"support": len(routine), "matched": routine_hits,
                    "share": _round(_share(routine_hits, len(routine)))},
    }


# -- all of it --------------------------------------------------------------------------


def _decide(brain: Any, texts: Iterable[str]) -> list[Decision]:
    return decide_all(brain, list(texts))


def evaluate(brain: Any) -> dict[str, Any]:
    """Every figure for ``brain`` (its Rasa model and its safety classifier)."""
    from bot.bench_escalation import load_heldout
    from bot.bench_hoax import load_paraphrases

    started = time.perf_counter()
    files = {path.name.removesuffix(".yml"): read_examples([path]) for path in heldout_files()}
    if not files:
        raise FileNotFoundError("no locked NLU test set (tests/nlu/heldout_*.yml)")
    nlu = nlu_metrics(files, {name: _decide(brain, [t for _, t in pairs])
                              for name, pairs in files.items()})

    escalation_set = load_heldout()
    triage = brain.safety
    escalation = escalation_metrics(lambda text: triage.classify(text).category,
                                    escalation_set.categories, escalation_set.criticism,
                                    escalation_set.routine)

    paraphrases = load_paraphrases()
    sets = {"questions": paraphrases.questions, "chains": paraphrases.chains}
    decided = {kind: {h: _decide(brain, texts) for h, texts in by_hoax.items()}
               for kind, by_hoax in sets.items()}
    hoax = hoax_metrics(decided, _decide(brain, paraphrases.unknown_claims),
                        _decide(brain, paraphrases.routine))
    nlu_total = nlu["overall"]["total"]
    nlu_hoax = nlu["overall"]["route_counts"][HOAX]
    # Routine questions routed to a hoax: the paraphrase file's and the NLU test set's.
    hoax["routine_false_alarms"] = _round(_share(
        hoax["routine"]["matched"] + nlu_hoax, hoax["routine"]["support"] + nlu_total))
    escalation["nlu_escalated"] = nlu["overall"]["routes"][ESCALATE]
    return {
        "metrics_version": METRICS_VERSION,
        "test_hash": test_hash(),
        "model": getattr(brain, "model_id", None),
        "nlu": nlu,
        "escalation": escalation,
        "hoax": hoax,
        "eval_seconds": round(time.perf_counter() - started, 1),
    }


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The few figures a listing shows."""
    overall = metrics["nlu"]["overall"]
    critical = [c["recall"] for c in metrics["escalation"]["categories"].values()
                if c.get("critical")]
    return {
        "accuracy": overall["accuracy"],
        "macro_f1": overall["macro_f1"],
        "answered_wrong": overall["answered_wrong"],
        "escalated": metrics["escalation"]["overall"]["escalated"],
        "critical_recall": min(critical) if critical else 0.0,
        "hoax_recall": metrics["hoax"]["recall"],
    }
