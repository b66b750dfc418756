"""Trainer benchmark: how long `garda trainer train` takes on the full training data.

    python -m bot.bench_trainer --out docs/benchmarks.md      (`make bench-trainer`)

Trains a candidate from data/ into a temporary registry (never models/registry: nothing
here changes what Garda serves), with ``--force`` so that Rasa really trains even though
the bootstrap model was trained on the same data; then evaluates it on the locked test
sets as the gate does. Writes its own section of the page, between
``<!-- trainer-bench:start -->`` and ``<!-- trainer-bench:end -->``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

from bot.bench import machine, write_marked_section

TRAINER_START = "<!-- trainer-bench:start -->"
TRAINER_END = "<!-- trainer-bench:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args(argv)
    from bot import logs
    from bot.nlu_data import heldout_files, read_examples, training_files
    from bot.trainer.gate import Inputs, evaluate_entry, train_candidate
    from bot.trainer.registry import Registry

    logs.configure()
    with tempfile.TemporaryDirectory(prefix="garda-bench-trainer-") as folder:
        os.environ["GARDA_REGISTRY_DIR"] = folder
        registry = Registry(Path(folder))
        inputs = Inputs.of(None)
        started = time.monotonic()
        entry, _ = train_candidate(registry, inputs, "bench", force=True,
                                   progress=lambda line: print(line, file=sys.stderr))
        trained = time.monotonic() - started
        started = time.monotonic()
        metrics = evaluate_entry(registry, entry, lambda line: print(line, file=sys.stderr))
        evaluated = time.monotonic() - started
        meta = registry.get(entry.id).meta
    examples = len(read_examples(training_files()))
    tests = len(read_examples(heldout_files()))
    escalation = metrics["escalation"]["overall"]["support"]
    hoax = metrics["hoax"]["questions"]["support"] + metrics["hoax"]["chains"]["support"]
    decide = metrics["eval_seconds"]
    lines = [
        "## Training and evaluation time", "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with "
        "`python -m bot.bench_trainer --out docs/benchmarks.md` (`make bench-trainer`) on: "
        + machine() + ".", "",
        f"`garda trainer train --force` on the full data ({examples:,} NLU examples in "
        "`data/nlu`, the safety examples in `data/safety`) into a temporary registry, then "
        f"the gate's evaluation on the locked test sets ({tests} NLU messages, {escalation} "
        f"escalation messages, {hoax} hoax paraphrases and the negatives).", "",
        "| step | seconds |", "|---|---|",
        f"| Rasa training (`rasa train`, config.yml) | {meta['train_seconds']:.0f} |",
        f"| safety classifier fit and save | {meta['safety_seconds']:.0f} |",
        f"| **training, all** | **{trained:.0f}** |",
        f"| model load (Rasa archive, saved safety classifier, hoax index) | "
        f"{meta['eval_seconds'] - decide:.0f} |",
        f"| deciding every locked test message | {decide:.0f} |",
        f"| report (HTML and plots) | {evaluated - meta['eval_seconds']:.0f} |",
        f"| **evaluation, all** | **{evaluated:.0f}** |", "",
        "`garda trainer train` evaluates the active model too when its figures are missing "
        "or were measured on other test sets (once per change of the test sets or of the "
        "code that turns a parse into a decision), which adds one evaluation.",
    ]
    write_marked_section(Path(args.out), TRAINER_START, TRAINER_END, "\n".join(lines))
    print(f"Wrote the trainer section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
