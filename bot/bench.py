"""`make bench`: quality, latency and memory, written to docs/benchmarks.md.

    python -m bot.bench --out docs/benchmarks.md [--skip-default-pipeline]

Reads ../shared/data when present (external, never copied into the repository) and says so
when it is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.evaluation import Scores, decide_all
from bot.nlu_data import heldout_files, read_examples
from bot.paths import project_root, state_dir
from bot.training import RASA_DATA, data_hash, model_path, rasa_train, train

ROOT = project_root()
# `python -m bot.bench_gateway` writes its own section between these markers; this page is
# rewritten here, and that section is carried over to the end of the new one.
GATEWAY_START = "<!-- gateway-bench:start -->"
GATEWAY_END = "<!-- gateway-bench:end -->"
HOAX_START = "<!-- hoax-bench:start -->"  # written by bot.bench_hoax
HOAX_END = "<!-- hoax-bench:end -->"
ESCALATION_START = "<!-- escalation-bench:start -->"  # written by bot.bench_escalation
ESCALATION_END = "<!-- escalation-bench:end -->"
SHARED = ROOT.parent / "shared" / "data"
TEGAL = SHARED / "faq" / "tegal_gov_questions.csv"

# The pipeline `rasa init` writes (Rasa 3.6), with the same retrieval intent.
DEFAULT_CONFIG = """\
recipe: default.v1
language: id
assistant_id: garda-default-baseline
pipeline:
- name: WhitespaceTokenizer
- name: RegexFeaturizer
- name: LexicalSyntacticFeaturizer
- name: CountVectorsFeaturizer
- name: CountVectorsFeaturizer
  analyzer: char_wb
  min_ngram: 1
  max_ngram: 4
- name: DIETClassifier
  epochs: 100
  constrain_similarities: true
- name: EntitySynonymMapper
- name: ResponseSelector
  epochs: 100
  constrain_similarities: true
- name: FallbackClassifier
  threshold: 0.3
  ambiguity_threshold: 0.1
policies:
- name: RulePolicy
"""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib.metadata import version

    return (f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, no GPU; "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"Rasa {version('rasa')}, TensorFlow {version('tensorflow')}, spaCy {version('spacy')}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def quality_section(brain: Any) -> tuple[list[str], dict[str, Scores]]:
    # Each held-out file is decided once; its Decisions feed its own scores and the total.
    results: dict[str, Scores] = {}
    combined = Scores()
    for path in heldout_files():
        pairs = read_examples([path])
        results[path.name] = scores = Scores()
        for (label, _), decision in zip(pairs, decide_all(brain, [t for _, t in pairs]),
                                        strict=True):
            scores.add(label, decision)
            combined.add(label, decision)
    lines = [
        "## NLU quality on the held-out test set",
        "",
        "`tests/nlu/heldout_*.yml`: written separately from `data/nlu/` by a writer who never",
        "saw it; never used for training, calibration or tuning. *Top-1* is the topic Garda",
        "ranks first whatever the route; *answered right / wrong* count only messages Garda",
        "answered outright (the rest were offered two buttons or a fallback).",
        "",
        "| set | messages | top-1 accuracy | macro-F1 | answered right | answered wrong "
        "| clarify | fallback |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in results.items():
        lines.append(
            f"| {name.removesuffix('.yml')} | {s.total} | {s.accuracy:.3f} | {s.macro_f1:.3f} | "
            f"{s.answered_correct / s.total:.3f} | {s.answered_wrong / s.total:.3f} | "
            f"{s.share('clarify'):.3f} | {s.share('fallback'):.3f} |"
        )
    lines += [
        "", "Per topic, all held-out files together:", "",
        "| intent / topic | support | precision | recall | F1 |", "|---|---|---|---|---|",
    ]
    for label in combined.labels():
        p, r, f = combined.f1(label)
        support = combined.per_label[label]["tp"] + combined.per_label[label]["fn"]
        lines.append(f"| {label} | {support} | {p:.2f} | {r:.2f} | {f:.2f} |")
    worst = combined.confusions.most_common(10)
    if worst:
        lines += ["", "Most frequent confusions (expected -> predicted, count): " + "; ".join(
            f"{a} -> {b} ({n})" for (a, b), n in worst)]
    return lines, results


def tegal_section(brain: Any) -> list[str]:
    lines = ["", "## Routine questions from another city (external data)", ""]
    if not TEGAL.is_file():
        return [*lines, f"Skipped: {TEGAL} is not present on this machine."]
    with TEGAL.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    text_column = next((c for c in rows[0] if c.lower() in {"text", "pattern", "question",
                                                          "pertanyaan", "patterns"}),
                       next(iter(rows[0])))
    texts = sorted({(r.get(text_column) or "").strip() for r in rows} - {""})
    decisions = decide_all(brain, texts)
    routes: dict[str, int] = {}
    for d in decisions:
        routes[d.route] = routes.get(d.route, 0) + 1
    total = len(decisions)
    lines += [
        f"`../shared/data/faq/tegal_gov_questions.csv` (column `{text_column}`, {total} unique",
        "questions about Kota Tegal's services; not all are topics Garda covers). For",
        "information only: no label mapping, so no accuracy is claimed.", "",
        "| route | share |", "|---|---|",
    ]
    for route in ("answer", "clarify", "fallback", "hoax", "escalate"):
        lines.append(f"| {route} | {routes.get(route, 0) / total:.3f} |")
    return lines


PROBE = r"""
import asyncio, json, resource, sys, time
t0 = time.perf_counter()
from bot import logs
logs.configure()
from bot.brain.pipeline import Brain
t1 = time.perf_counter()
brain = Brain.load()
t2 = time.perf_counter()
texts = json.load(open(sys.argv[1]))
async def run():
    lat = []
    for text in texts[:50]:
        await brain.decide(text)  # warm-up
    start = time.perf_counter()
    for text in texts:
        s = time.perf_counter()
        await brain.decide(text)
        lat.append((time.perf_counter() - s) * 1000)
    return lat, time.perf_counter() - start
lat, wall = asyncio.run(run())
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "latencies_ms": lat, "wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def speed_section() -> list[str]:
    texts = [t for _, t in read_examples(heldout_files())]
    texts = (texts * (2000 // len(texts) + 1))[:2000]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(texts, handle)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RASA_TELEMETRY_ENABLED": "false"}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, handle.name], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    total = time.perf_counter() - started
    os.unlink(handle.name)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    lat = data["latencies_ms"]
    return [
        "", "## `garda triage` speed and memory (one process, model loaded once)", "",
        f"{len(lat)} messages (the held-out texts, repeated), after 50 warm-up messages.", "",
        "| measure | value | goal |", "|---|---|---|",
        f"| latency p50 per message | {percentile(lat, 50):.1f} ms | |",
        f"| latency p95 per message | {percentile(lat, 95):.1f} ms | <= 25 ms |",
        f"| latency max | {max(lat):.1f} ms | |",
        f"| messages per second | {len(lat) / data['wall_s']:.0f} | |",
        f"| model load (Brain.load: TensorFlow and Rasa imports, unpacking, graphs) "
        f"| {data['load_s']:.1f} s | <= 15 s |",
        f"| Garda's own imports before the load | {data['import_s']:.1f} s | |",
        f"| whole process, start to exit | {total:.1f} s | |",
        f"| peak memory (max RSS) | {data['peak_rss_mb']:.0f} MB | <= 1,500 MB |",
    ]


def default_pipeline_section(garda_scores: dict[str, Scores]) -> list[str]:
    """Train the same data with Rasa's default pipeline and score it the same way."""
    from bot.brain.pipeline import Brain

    # Kept between runs (keyed on the training data's hash): it takes ~20 min to train here.
    work = state_dir() / "bench-default"
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / "default.json"
    current = data_hash()
    cached = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if cached.get("data_hash") != current or not (work / "default.tar.gz").is_file():
        (work / "config.yml").write_text(DEFAULT_CONFIG, "utf-8")
        started = time.monotonic()
        rasa_train(work / "config.yml", RASA_DATA, work, "default")
        cached = {"data_hash": current, "train_seconds": round(time.monotonic() - started)}
        stamp.write_text(json.dumps(cached), "utf-8")
    train_s = cached["train_seconds"]
    agent = Brain.load(work / "default.tar.gz").agent

    async def score(pairs: list[tuple[str, str]]) -> tuple[float, list[float]]:
        hits, latencies = 0, []
        for label, text in pairs:
            started = time.perf_counter()
            parsed = await agent.parse_message(text)
            latencies.append((time.perf_counter() - started) * 1000)
            ranking = parsed.get("intent_ranking") or []
            intent = next((r["name"] for r in ranking if r["name"] != "nlu_fallback"), "")
            if intent == "faq":
                # Without a retrieval_intent the default ResponseSelector reports as "default".
                selector = parsed["response_selector"]
                selected = selector.get("faq") or selector["default"]
                intent = selected["response"]["intent_response_key"]
            hits += intent == label
        return hits / len(pairs), latencies

    lines = ["", "## Rasa's default pipeline on the same data, side by side", "",
             "The pipeline `rasa init` writes (WhitespaceTokenizer, CountVectors words + char 1-4,",
             "DIET and ResponseSelector at 100 epochs, FallbackClassifier), trained on the same",
             "`data/nlu/` and scored on the same held-out files by its top-1 topic.", "",
             "| set | Garda top-1 | default top-1 | default parse latency p50 / p95 |",
             "|---|---|---|---|"]
    for path in heldout_files():
        accuracy, latencies = asyncio.run(score(read_examples([path])))
        lines.append(
            f"| {path.stem} | {garda_scores[path.name].accuracy:.3f} | {accuracy:.3f} | "
            f"{statistics.median(latencies):.1f} / {percentile(latencies, 95):.1f} ms |")
    lines.append(f"\nThe default pipeline trained in {train_s:.0f} s on this machine "
                 "(Garda's: see the top of this page).")
    return lines


def write_marked_section(path: Path, start_mark: str, end_mark: str, section: str) -> None:
    """Put ``section`` between two markers of ``path`` (replaced if present, appended if
    not); the rest of the page is left as it is. Used by the gateway and hoax benchmarks."""
    block = f"{start_mark}\n{section.rstrip()}\n{end_mark}"
    old = path.read_text("utf-8") if path.is_file() else ""
    start = old.find(start_mark)
    end = old.find(end_mark, start) if start >= 0 else -1
    if start >= 0 and end >= 0:
        new = old[:start] + block + old[end + len(end_mark):]
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block + "\n"
    path.write_text(new, "utf-8")


def kept_sections(path: Path) -> list[str]:
    """The sections other benchmarks wrote on the page being replaced (hoax, escalation,
    gateway, trainer)."""
    try:
        old = path.read_text("utf-8")
    except OSError:
        return []
    kept = []
    marks = ((HOAX_START, HOAX_END), (ESCALATION_START, ESCALATION_END),
             (GATEWAY_START, GATEWAY_END), ("<!-- trainer-bench:start -->",
                                            "<!-- trainer-bench:end -->"),
             ("<!-- trainer-loop-bench:start -->", "<!-- trainer-loop-bench:end -->"))
    for start_mark, end_mark in marks:
        start = old.find(start_mark)
        end = old.find(end_mark, start) if start >= 0 else -1
        if start >= 0 and end >= 0:
            kept += ["", old[start:end + len(end_mark)]]
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--skip-default-pipeline", action="store_true")
    args = parser.parse_args(argv)
    from bot import logs
    from bot.brain.pipeline import Brain

    logs.configure()

    train(quiet=True)
    meta = json.loads((model_path().parent / "garda.json").read_text())
    brain = Brain.load()
    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with `make bench`",
        "(`python -m bot.bench --out docs/benchmarks.md`) on: " + machine() + ".",
        f"Model data hash `{meta['data_hash'][:12]}`, trained in {meta['train_seconds']:.0f} s "
        "(`garda train --force`).",
        "",
    ]
    quality, garda_scores = quality_section(brain)
    lines += quality
    lines += tegal_section(brain)
    lines += speed_section()
    if not args.skip_default_pipeline:
        lines += default_pipeline_section(garda_scores)
    lines += kept_sections(Path(args.out))
    Path(args.out).write_text("\n".join(lines) + "\n", "utf-8")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
