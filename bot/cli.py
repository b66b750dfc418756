"""The ``garda`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

# Quiet TensorFlow's and Rasa's start-up chatter, and Rasa's telemetry, before anything
# imports them (bot.logs.configure repeats this for other entry points).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LOG_LEVEL_LIBRARIES", "ERROR")
os.environ["RASA_TELEMETRY_ENABLED"] = "false"


def parse_line(line: str) -> tuple[Any, str | None]:
    """A triage input line: JSON with ``text`` (and optional ``sender``), else plain text."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            return line.rstrip("\r\n"), None
        if isinstance(data, dict) and "text" in data:
            sender = data.get("sender")
            return data.get("text"), None if sender is None else str(sender)
    return line.rstrip("\r\n"), None


def _lines(stream: IO[bytes]) -> Iterator[str]:
    for raw in stream:
        yield raw.decode("utf-8", errors="replace")


def cmd_triage(args: argparse.Namespace) -> int:
    from bot.brain.pipeline import Brain

    brain = Brain.load()
    out = sys.stdout

    async def run() -> None:
        for line in _lines(sys.stdin.buffer):
            text, sender = parse_line(line)
            decision = await brain.decide(text, sender)
            out.write(decision.to_json() + "\n")
            out.flush()

    asyncio.run(run())
    return 0


def chat_loop(brain: Any, read: Callable[[str], str], write: Callable[[str], None],
              settings: Any = None) -> None:
    """The terminal conversation (see bot.gateway.local): same path as Telegram/WhatsApp."""
    from bot.gateway.local import chat_loop as run_chat

    run_chat(brain, read, write, settings)


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.brain.pipeline import Brain

    print("Memuat model Garda...", file=sys.stderr)
    brain = Brain.load()
    print(
        "Garda, obrolan lokal (tanpa token, tanpa jaringan). Ketik pertanyaan Anda; "
        "ketik nomor untuk memilih tombol; Ctrl-D untuk keluar.\n"
    )
    chat_loop(brain, input, print)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bot import config
    from bot.gateway.runtime import WORKER

    try:
        settings = config.load()
    except config.ConfigError as error:
        print(f"garda run: {error}", file=sys.stderr)
        return 2
    problems = settings.problems()
    if args.role != "all" and not settings.redis_url:
        problems.append(
            f"--role {args.role} runs part of Garda in its own process; the parts share work "
            "through Redis, so GARDA_REDIS_URL must be set"
        )
    if problems:
        for problem in problems:
            print(f"garda run: {problem}", file=sys.stderr)
        return 2
    if args.role in ("all", WORKER):
        from bot.training import train

        train(quiet=True)
    if not settings.any_channel and args.role == "all":
        return cmd_chat(args)
    from bot.gateway.app import serve

    serve(settings, args.role)
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from bot import config
    from bot.store.db import Database

    settings = config.load()
    db = Database(settings.database_url)
    db.upgrade()
    result = db.purge(settings.retention_days)
    print(f"retention {settings.retention_days} days: emptied {result['emptied']} message(s), "
          f"deleted {result['deleted']} row(s)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bot.training import train

    train(force=args.force)
    return 0


def cmd_content_check(args: argparse.Namespace) -> int:
    from bot.content import Content
    from bot.nlu_data import required_responses

    content = Content.load()
    problems = content.problems(required=required_responses())
    for problem in problems:
        print(f"content: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): these answers may not be served.", file=sys.stderr)
        return 1
    print(f"{len(content.responses)} approved responses, all within their review date.")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.calibrate import run

    run(dev_share=args.dev_share, seed=args.seed, write=args.write,
        config=Path(args.config) if args.config else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="garda", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "triage", help="read messages on stdin (lines or JSON lines), print one Decision per line"
    ).set_defaults(func=cmd_triage)
    sub.add_parser("chat", help="chat with Garda in the terminal").set_defaults(func=cmd_chat)
    run = sub.add_parser(
        "run", help="run Garda: the gateway when a channel is configured, else the local chat"
    )
    run.add_argument(
        "--role", choices=("all", "gateway", "worker"), default="all",
        help="all (default): one process does everything; gateway: receive only; worker: "
        "answer only (gateway and worker processes share PostgreSQL and Redis)",
    )
    run.set_defaults(func=cmd_run)
    sub.add_parser(
        "retention", help="delete conversation content older than GARDA_RETENTION_DAYS now"
    ).set_defaults(func=cmd_retention)
    train = sub.add_parser("train", help="train the model if it is older than its data")
    train.add_argument("--force", action="store_true", help="train even if up to date")
    train.set_defaults(func=cmd_train)

    calibrate = sub.add_parser(
        "calibrate", help="choose the answer/clarify thresholds on a dev split of data/nlu"
    )
    calibrate.add_argument("--write", action="store_true", help="write them into config.yml")
    calibrate.add_argument("--dev-share", type=float, default=0.2)
    calibrate.add_argument("--seed", type=int, default=13)
    calibrate.add_argument("--config", help="pipeline config to calibrate (default config.yml)")
    calibrate.set_defaults(func=cmd_calibrate)

    content = sub.add_parser("content", help="approved content")
    content_sub = content.add_subparsers(dest="content_command", required=True)
    content_sub.add_parser(
        "check", help="fail on an answer that is missing, unapproved or past its review date"
    ).set_defaults(func=cmd_content_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bot import logs

    logs.configure(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
