"""The trainer tools' ``garda`` commands (bot/cli.py calls :func:`add_commands`).

To add a command: ``garda trainer <name>`` is one ``_add_<name>(commands)`` function in
:data:`TRAINER_COMMANDS`; a new group (``garda model ...``) is one ``_add_<group>(sub)``
function in :data:`GROUPS`. Each sets ``func`` to a ``cmd_*`` function that imports what
it needs when it runs, so that ``garda --help`` stays fast.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

SubParsers = Any  # argparse's _SubParsersAction (private in typeshed)


def _database() -> Any:
    from bot import config
    from bot.store.db import Database

    db = Database(config.load().database_url)
    db.upgrade()
    return db


def cmd_inbox(args: argparse.Namespace) -> int:
    from bot.store.models import REVIEW_SOURCES, REVIEW_STATUSES
    from bot.trainer import inbox

    db = _database()
    found = inbox.counts(db.engine)
    groups = inbox.clusters(db.engine)
    open_items = sum(n for (_, status), n in found.items() if status == inbox.OPEN)
    print(f"Kotak tinjauan: {open_items} pesan terbuka dalam {len(groups)} kelompok.")
    width = max(len(s) for s in REVIEW_STATUSES)
    print("sumber".ljust(14) + "".join(s.rjust(width + 2) for s in REVIEW_STATUSES))
    for source in REVIEW_SOURCES:
        print(source.ljust(14) + "".join(str(found.get((source, s), 0)).rjust(width + 2)
                                         for s in REVIEW_STATUSES))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from bot.trainer.review import review

    user = (args.user or getpass.getuser()).strip()
    if not user or len(user) > 64:
        print("garda trainer review: --user must be 1-64 characters", file=sys.stderr)
        return 2
    db = _database()

    def read() -> str | None:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    review(db.engine, read, write, user, limit=args.limit)
    return 0


def _add_inbox(commands: SubParsers) -> None:
    commands.add_parser(
        "inbox", help="messages waiting in the review inbox, by source and status"
    ).set_defaults(func=cmd_inbox)


def _add_review(commands: SubParsers) -> None:
    review = commands.add_parser(
        "review", help="label the review inbox in the terminal, one group at a time (keys: "
        "a accept, 1-3 pick an intent, i type one, n new topic, d discard, s skip, q quit)")
    review.add_argument("--user", help="recorded as who decided (default: the OS user)")
    review.add_argument("--limit", type=int, help="at most this many groups, largest first")
    review.set_defaults(func=cmd_review)


# -- evaluation, the regression gate and the model registry (docs/models.md) ---------------


def _user(value: str | None) -> str:
    from bot.trainer.registry import current_user

    return (value or current_user()).strip()[:64] or "unknown"


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from bot.brain.pipeline import Brain
    from bot.safety.triage import SafetyDataError
    from bot.trainer.evaluate import evaluate, headline
    from bot.trainer.registry import BOOTSTRAP, Registry, RegistryError
    from bot.trainer.report import render
    from bot.training import stored_meta

    out = Path(args.out)
    started = time.monotonic()
    try:
        brain = Brain.load(model_id=args.model)
    except (RegistryError, FileNotFoundError, SafetyDataError) as error:
        print(f"garda trainer evaluate: {error}", file=sys.stderr)
        return 2
    loaded = time.monotonic() - started
    metrics = evaluate(brain)
    model_id = str(brain.model_id)
    meta = ({"id": BOOTSTRAP, "trained_by": "setup", **stored_meta()} if model_id == BOOTSTRAP
            else Registry().get(model_id).meta)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n",
                                      "utf-8")
    page = render(metrics, out, f"Laporan evaluasi model {model_id}", meta)
    figures = headline(metrics)
    print(f"model {model_id}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    print(f"load {loaded:.0f} s, evaluation {metrics['eval_seconds']:.0f} s; wrote "
          f"{out / 'metrics.json'} and {page}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.safety.triage import SafetyDataError
    from bot.trainer.gate import train_and_gate
    from bot.trainer.registry import Registry, RegistryError

    try:
        outcome = train_and_gate(Path(args.data_dir) if args.data_dir else None,
                                 _user(args.user), args.tolerance, args.intent_tolerance,
                                 args.force, progress=lambda line: print(line, flush=True))
    except (RegistryError, FileNotFoundError, SafetyDataError) as error:
        print(f"garda trainer train: {error}", file=sys.stderr)
        return 2
    except SystemExit as error:  # rasa train failed
        print(f"garda trainer train: {error}", file=sys.stderr)
        return 2
    meta = Registry().get(outcome.candidate).meta
    steps = (("train_seconds", f"Rasa archive of {meta['archive_from']} reused (trained in"
              if meta.get("archive_from") else "training"),
             ("safety_seconds", "safety classifier"), ("eval_seconds", "evaluation"))
    timing = ", ".join(f"{label} {meta[key]:.0f} s" + (")" if label.endswith("in") else "")
                       for key, label in steps if isinstance(meta.get(key), (int, float)))
    if timing:
        print(f"{outcome.candidate}: {timing}")
    if outcome.already_active:
        print(f"{outcome.candidate} was trained on the same data and is the active model "
              "already: nothing to do")
        return 0
    if outcome.promoted:
        print(f"PROMOTED {outcome.candidate} (baseline {outcome.baseline})")
        for note in outcome.reasons:
            print(f"  note: {note}")
        return 0
    print(f"REFUSED {outcome.candidate} against {outcome.baseline}:")
    for reason in outcome.reasons:
        print(f"  - {reason}")
    print(f"Report: {Registry().get(outcome.candidate).report_dir / 'report.html'}")
    return 1


def cmd_model_list(args: argparse.Namespace) -> int:
    import json

    from bot.trainer.evaluate import headline
    from bot.trainer.registry import BOOTSTRAP, Registry
    from bot.training import model_path, stored_meta

    registry = Registry()
    active = registry.active_id()
    rows: list[dict[str, Any]] = []
    if model_path().is_file():
        meta = stored_meta()
        rows.append({"id": BOOTSTRAP, "status": "fallback", "active": active == BOOTSTRAP,
                     "created_at": meta.get("trained_at"), "trained_by": "setup",
                     "data_hash": meta.get("data_hash"), "reason": str(model_path()),
                     "train_seconds": meta.get("train_seconds")})
    for entry in registry.entries():
        metrics = entry.metrics()
        rows.append({**{k: entry.meta.get(k) for k in (
            "created_at", "trained_by", "data_hash", "safety_hash", "source", "train_seconds",
            "eval_seconds", "test_hash", "reason")}, "id": entry.id, "status": entry.status,
            "active": entry.id == active,
            "metrics": headline(metrics) if metrics else None})
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    print(f"{'':2}{'id':28} {'status':10} {'created (UTC)':20} {'by':12} {'data':8} "
          f"{'acc':>5} {'F1':>5} {'esc':>5} {'crit':>5} {'hoax':>5}  reason")
    for row in rows:
        m = row.get("metrics") or {}
        figures = " ".join(f"{m[k]:5.3f}" if k in m else f"{'-':>5}" for k in (
            "accuracy", "macro_f1", "escalated", "critical_recall", "hoax_recall"))
        reason = str(row.get("reason") or "")
        print(f"{'*' if row['active'] else ' ':2}{row['id']:28} {row['status']:10} "
              f"{str(row.get('created_at') or '-')[:19]:20} "
              f"{str(row.get('trained_by') or '-')[:12]:12} "
              f"{str(row.get('data_hash') or '-')[:8]:8} {figures}  "
              f"{reason[:70] + ('...' if len(reason) > 70 else '')}")
    print(f"* active: {active}")
    return 0


def cmd_model_promote(args: argparse.Namespace) -> int:
    from bot.trainer.registry import Registry, RegistryError, poll_seconds

    try:
        Registry().promote(args.id, _user(args.user), args.reason or "", force=args.force)
    except RegistryError as error:
        print(f"garda model promote: {error}", file=sys.stderr)
        return 1
    print(f"promoted {args.id}; running workers switch to it within {poll_seconds():.0f} s "
          "plus the time to load it")
    return 0


def cmd_model_rollback(args: argparse.Namespace) -> int:
    from bot.trainer.registry import Registry, RegistryError, poll_seconds

    try:
        target = Registry().rollback(_user(args.user), args.reason or "")
    except RegistryError as error:
        print(f"garda model rollback: {error}", file=sys.stderr)
        return 1
    print(f"rolled back to {target}; running workers switch to it within "
          f"{poll_seconds():.0f} s plus the time to load it")
    return 0


def _add_evaluate(commands: SubParsers) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score a model on the locked test sets: metrics.json, report.html, "
        "plots")
    evaluate.add_argument("--out", required=True, help="folder to write into")
    evaluate.add_argument("--model", help="a registry id, or bootstrap (default: the active "
                          "model)")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_train(commands: SubParsers) -> None:
    from bot.trainer.gate import DEFAULT_TOLERANCE, INTENT_TOLERANCE

    train = commands.add_parser(
        "train", help="train a candidate into the model registry, evaluate it and promote "
        "it only if no locked metric got worse (exit 0 promoted, 1 refused)")
    train.add_argument("--user", help="recorded as who trained it (default: GARDA_USER or "
                       "the OS user)")
    train.add_argument("--data-dir", help="training data laid out like data/ (nlu/, rules/, "
                       "optionally safety/); default data/")
    train.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                       help=f"largest drop allowed in an aggregate figure (default "
                       f"{DEFAULT_TOLERANCE})")
    train.add_argument("--intent-tolerance", type=float, default=INTENT_TOLERANCE,
                       help=f"largest drop allowed in one intent's F1 or one non-critical "
                       f"category's recall (default {INTENT_TOLERANCE})")
    train.add_argument("--force", action="store_true",
                       help="train even if a version was trained on the same data")
    train.set_defaults(func=cmd_train)


TRAINER_COMMANDS: list[Callable[[SubParsers], None]] = [_add_inbox, _add_review, _add_evaluate,
                                                        _add_train]


def _add_model(sub: SubParsers) -> None:
    model = sub.add_parser("model", help="the model registry: list, promote, roll back "
                           "(docs/models.md)")
    commands = model.add_subparsers(dest="model_command", required=True)
    listing = commands.add_parser("list", help="every version with its data hash, figures, "
                                  "who trained it and when")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(func=cmd_model_list)
    promote = commands.add_parser("promote", help="make a version the active one (only one "
                                  "that passed the gate, unless --force --reason)")
    promote.add_argument("id")
    promote.add_argument("--force", action="store_true", help="override the gate")
    promote.add_argument("--reason", help="why (required with --force)")
    promote.add_argument("--user", help="recorded as who did it")
    promote.set_defaults(func=cmd_model_promote)
    rollback = commands.add_parser("rollback", help="back to the version active before the "
                                   "last promotion")
    rollback.add_argument("--reason", help="why")
    rollback.add_argument("--user", help="recorded as who did it")
    rollback.set_defaults(func=cmd_model_rollback)


def _add_trainer(sub: SubParsers) -> None:
    trainer = sub.add_parser("trainer", help="the review inbox and labelling (docs/training.md)")
    commands = trainer.add_subparsers(dest="trainer_command", required=True)
    for add in TRAINER_COMMANDS:
        add(commands)


GROUPS: list[Callable[[SubParsers], None]] = [_add_trainer, _add_model]


def add_commands(sub: SubParsers) -> None:
    """Add the trainer tools' command groups to ``garda``'s subparsers."""
    for add in GROUPS:
        add(sub)
