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
              settings: Any = None, console: bool = False) -> None:
    """The terminal conversation (see bot.gateway.local): same path as Telegram/WhatsApp."""
    from bot.gateway.local import chat_loop as run_chat

    run_chat(brain, read, write, settings, console)


def cmd_chat(args: argparse.Namespace) -> int:
    from bot import config
    from bot.brain.pipeline import Brain

    print("Memuat model Garda...", file=sys.stderr)
    brain = Brain.load().follow_approvals(config.load().database_url)
    print(
        "Garda, obrolan lokal (tanpa token, tanpa jaringan). Ketik pertanyaan Anda; "
        "ketik nomor untuk memilih tombol; Ctrl-D untuk keluar.\n"
    )
    chat_loop(brain, input, print, console=True)
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


def _content_versions() -> Any:
    from bot import config
    from bot.content_versions import ContentVersions
    from bot.store.db import Database

    db = Database(config.load().database_url)
    db.upgrade()
    return ContentVersions(db.engine)


def _content_refused(command: str, error: Exception) -> int:
    from bot.content_versions import InvalidText

    if isinstance(error, InvalidText):
        print(f"garda content {command}: the text may not be served:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
    else:
        print(f"garda content {command}: {error}", file=sys.stderr)
    return 1


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


def cmd_content_propose(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.content_versions import PROPOSERS, VersionError, check_actor, unified_diff

    if args.file:
        try:
            text = Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            print(f"garda content propose: cannot read {args.file}: {error}", file=sys.stderr)
            return 1
    else:
        text = args.text
    versions = _content_versions()
    try:
        by = check_actor(versions.engine, args.by, PROPOSERS, "propose a change")
        kind = args.kind or versions.kind_of(args.key)
        version = versions.propose(kind, args.key, text, by, args.reason or "")
        old = versions.text_of(kind, args.key, version.based_on or 0)
    except VersionError as error:
        return _content_refused("propose", error)
    print(f"proposed {kind} {args.key} v{version.version} (id {version.id}), written against "
          f"v{version.based_on}:")
    print(unified_diff(old, version.text, f"v{version.based_on}", f"v{version.version}")
          or "(the same text: a renewed review)")
    print(f"It is not served until someone other than {by} approves it: "
          f"garda content approve {version.id} --by NAME")
    return 0


def cmd_content_approve(args: argparse.Namespace) -> int:
    from bot.content_versions import APPROVERS, VersionError, check_actor

    versions = _content_versions()
    try:
        by = check_actor(versions.engine, args.by, APPROVERS, "approve a change")
        version = versions.approve(args.id, by)
    except VersionError as error:
        return _content_refused("approve", error)
    print(f"approved {version.kind} {version.key} v{version.version} (proposed by "
          f"{version.proposed_by}); served from now on (running workers re-read approved "
          "content every GARDA_CONTENT_POLL_SECONDS, default 5)")
    return 0


def cmd_content_reject(args: argparse.Namespace) -> int:
    from bot.content_versions import APPROVERS, VersionError, check_actor

    versions = _content_versions()
    try:
        by = check_actor(versions.engine, args.by, APPROVERS, "reject a change")
        version = versions.reject(args.id, by, args.reason)
    except VersionError as error:
        return _content_refused("reject", error)
    print(f"rejected {version.kind} {version.key} v{version.version}; it is never served")
    return 0


def cmd_content_withdraw(args: argparse.Namespace) -> int:
    from bot.content_versions import PROPOSERS, VersionError, check_actor

    versions = _content_versions()
    try:
        by = check_actor(versions.engine, args.by, PROPOSERS, "withdraw a change")
        version = versions.withdraw(args.id, by)
    except VersionError as error:
        return _content_refused("withdraw", error)
    print(f"withdrew {version.kind} {version.key} v{version.version}")
    return 0


def cmd_content_history(args: argparse.Namespace) -> int:
    from bot.content_versions import APPROVED, VersionError, unified_diff

    versions = _content_versions()
    try:
        kind = args.kind or versions.kind_of(args.key)
        found = versions.versions(kind, args.key)
    except VersionError as error:
        return _content_refused("history", error)
    texts = {v.version: v.text for v in found}
    served = max(v.version for v in found if v.status == APPROVED)
    print(f"{kind} {args.key} ({versions.title(kind, args.key)}): v{served} is served")
    for v in found:
        mark = "*" if v.version == served else " "
        if v.from_file:
            print(f"{mark} v0  file      approved by {v.decided_by or '-'} "
                  f"({v.file_approved_at or '-'})")
            continue
        decided = (f"; {v.status} by {v.decided_by} {_when(v.decided_at)}"
                   if v.decided_by else "")
        print(f"{mark} v{v.version:<2} {v.status:<9} proposed by {v.proposed_by} "
              f"{_when(v.proposed_at)}{decided}")
        if v.reason:
            print(f"      reason: {v.reason}")
        base = v.based_on or 0
        diff = unified_diff(texts.get(base, ""), v.text, f"v{base}", f"v{v.version}")
        for line in (diff or f"(the same text as v{base})").split("\n"):
            print(f"      {line}")
    print("audit log:")
    for entry in versions.audit(kind, args.key):
        detail = f": {entry.detail}" if entry.detail else ""
        print(f"  {_when(entry.at)}  {entry.actor} {entry.action} v{entry.version}{detail}")
    return 0


def cmd_content_rollback(args: argparse.Namespace) -> int:
    from bot.content_versions import APPROVERS, PROPOSERS, VersionError, check_actor

    versions = _content_versions()
    try:
        by = check_actor(versions.engine, args.by, APPROVERS if args.now else PROPOSERS,
                         "roll back at once" if args.now else "propose a rollback")
        kind = args.kind or versions.kind_of(args.key)
        version = versions.rollback(kind, args.key, args.to, by, args.reason or "",
                                    immediate=args.now)
    except VersionError as error:
        return _content_refused("rollback", error)
    if args.now:
        print(f"rolled {kind} {args.key} back to the text of v{args.to} as v{version.version}; "
              "served from now on")
    else:
        print(f"proposed {kind} {args.key} v{version.version} (id {version.id}) with the text "
              f"of v{args.to}; it is not served until someone other than {by} approves it: "
              f"garda content approve {version.id} --by NAME")
    return 0


def cmd_hoax_check(args: argparse.Namespace) -> int:
    from bot.content import Content
    from bot.hoax.registry import Registry

    registry = Registry.load()
    problems = registry.check(Content.load().settings)
    for problem in problems:
        print(f"hoax: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in data/hoaxes/.", file=sys.stderr)
        return 1
    by_status: dict[str, int] = {}
    for entry in registry.entries.values():
        by_status[entry.status] = by_status.get(entry.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    print(f"{len(registry.entries)} hoax entries ({summary}); "
          f"{len(registry.servable())} may be served.")
    return 0


def cmd_hoax_match(args: argparse.Namespace) -> int:
    from bot.hoax.claims import claim_kind
    from bot.hoax.matcher import HoaxMatcher
    from bot.hoax.registry import Registry

    matcher = HoaxMatcher(Registry.load().servable())
    text = " ".join(args.text) if args.text else sys.stdin.read()
    normal = matcher.normalize(text)
    print(f"claim cue: {claim_kind(normal, text) or 'none'}")
    found = matcher.best(text, normal)
    if found is not None and matcher.accepts(found, normal, text):
        how = (f"probability {found.probability:.3f}" if found.probability is not None
               else f"score {found.score:.3f}, margin {found.margin:+.3f}")
        print(f"MATCH {found.hoax_id} ({how})")
    else:
        why = "" if found is None else f" (best candidate {found.hoax_id}, " + (
            f"probability {found.probability:.3f})" if found.probability is not None
            else f"score {found.score:.3f}, margin {found.margin:+.3f})")
        print(f"no match: Garda abstains{why}")
    print("most similar entries (score, margin over routine questions):")
    for match in matcher.rank(text, args.top, normal):
        print(f"  {match.score:.3f} {match.margin:+.3f} {match.hoax_id}")
    return 0


def cmd_hoax_stats(args: argparse.Namespace) -> int:
    import datetime as dt

    from bot import config
    from bot.hoax.registry import Registry
    from bot.hoax.stats import trends
    from bot.store.db import Database, local_day

    settings = config.load()
    db = Database(settings.database_url)
    db.upgrade()
    last = dt.date.fromisoformat(args.until) if args.until else local_day(dt.datetime.now(
        dt.timezone.utc))
    first = last - dt.timedelta(days=max(args.days, args.baseline + 1) - 1)
    found = trends(db.hoax_counts(first, last), last, args.days, args.baseline)[: args.top]
    titles = {e.id: e.title for e in Registry.load().entries.values()}
    print(f"Hoax matches, {args.days} day(s) to {last} "
          f"(spike: improbable against the previous {args.baseline} days)")
    if not found:
        print("  no hoax matched in this period")
    for t in found:
        flag = "SPIKE" if t.spike else "     "
        print(f"{flag} {t.period:6d} total {t.last_day:5d} on {last} "
              f"(avg {t.baseline:.1f}/day before)  {t.hoax_id}: {titles.get(t.hoax_id, '?')}")
    since = dt.datetime.combine(last - dt.timedelta(days=args.days - 1), dt.time.min,
                                dt.timezone.utc) - dt.timedelta(hours=14)
    pending = {d: n for d, n in db.fact_check_counts(since).items()
               if last - dt.timedelta(days=args.days - 1) <= d <= last}
    print(f"Unknown claims sent to the fact-check team in the period: {sum(pending.values())}")
    return 0


def cmd_hoax_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.hoax.importer import HoaxImportError, import_csv
    from bot.hoax.registry import registry_dir

    try:
        result = import_csv(Path(args.csv), Path(args.into) if args.into else registry_dir(),
                            owner=args.owner, verdict=args.verdict)
    except HoaxImportError as error:
        print(f"garda hoax import: {error}", file=sys.stderr)
        return 1
    for path in result.written:
        print(f"draft  {path}")
    for reason in result.skipped:
        print(f"skip   {reason}")
    for note in result.notes:
        print(f"review {note}")
    print(f"{len(result.written)} draft(s) written, {len(result.skipped)} row(s) skipped. "
          "Drafts are never sent: approve each by hand, then run `garda hoax check`.")
    return 0


def cmd_safety_calibrate(args: argparse.Namespace) -> int:
    from bot.safety.calibrate import run

    run()
    return 0


def cmd_safety_check(args: argparse.Namespace) -> int:
    from bot.safety.triage import SafetyTriage

    triage = SafetyTriage()
    text = " ".join(args.text) if args.text else sys.stdin.read()
    normal = triage.normalize(text)
    probabilities = triage.probabilities(normal) if normal else {}
    verdict = triage.decide(probabilities) if probabilities else None
    if verdict is None or verdict.category is None:
        print("not escalated")
    else:
        print(f"ESCALATE {verdict.category} (probability {verdict.probability:.3f})")
    for name, value in sorted(probabilities.items(), key=lambda kv: -kv[1])[:4]:
        print(f"  {value:.3f} {name} (threshold {triage.thresholds.get(name, 0):.2f})"
              if name in triage.thresholds else f"  {value:.3f} {name}")
    return 0


def cmd_hoax_calibrate(args: argparse.Namespace) -> int:
    from bot.hoax.calibrate import run

    run()
    return 0


def cmd_eval_hoax_retrieval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.hoax.evaluate import EvalError, evaluate, read_columns

    try:
        claims = read_columns(Path(args.claims), args.claim_columns.split(","))
        queries = read_columns(Path(args.queries), args.query_columns.split(","))
        if args.out:
            with open(args.out, "w", encoding="utf-8") as out:
                report = evaluate(claims, queries, out)
        else:
            report = evaluate(claims, queries)
    except EvalError as error:
        print(f"garda eval hoax-retrieval: {error}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bot.calibrate import run

    run(dev_share=args.dev_share, seed=args.seed, write=args.write,
        config=Path(args.config) if args.config else None)
    return 0


def _new_password() -> str | None:
    """A new password: typed twice at a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != first:
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _admin_users() -> Any:
    from bot import config
    from bot.admin.users import Users
    from bot.store.db import Database

    db = Database(config.load().database_url)
    db.upgrade()
    return Users(db.engine)


def cmd_admin_add_user(args: argparse.Namespace) -> int:
    from bot.admin.users import (
        UserExists,
        name_problem,
        normal_name,
        password_problem,
        role_problem,
    )

    name = normal_name(args.name)
    problem = name_problem(name) or role_problem(args.role)
    if problem:
        print(f"garda admin add-user: {problem}", file=sys.stderr)
        return 2
    password = _new_password()
    if password is None:
        print("garda admin add-user: the passwords do not match", file=sys.stderr)
        return 2
    problem = password_problem(password)
    if problem:
        print(f"garda admin add-user: {problem}", file=sys.stderr)
        return 2
    try:
        _admin_users().add(name, password, args.role)
    except UserExists as error:
        print(f"garda admin add-user: {error}", file=sys.stderr)
        return 1
    print(f"added {name} ({args.role})")
    return 0


def cmd_admin_set_role(args: argparse.Namespace) -> int:
    from bot.admin.users import NoSuchUser, normal_name, role_problem

    problem = role_problem(args.role)
    if problem:
        print(f"garda admin set-role: {problem}", file=sys.stderr)
        return 2
    try:
        _admin_users().set_role(args.name, args.role)
    except NoSuchUser as error:
        print(f"garda admin set-role: {error}", file=sys.stderr)
        return 1
    print(f"{normal_name(args.name)} is now {args.role}")
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
    kinds = ("answer", "hoax")
    propose = content_sub.add_parser(
        "propose", help="propose a new text for an answer or a hoax clarification (served "
        "only after someone else approves it)")
    propose.add_argument("key", help="the response name (utter_...) or the hoax entry's id")
    propose.add_argument("--kind", choices=kinds, help="default: found from the key")
    propose.add_argument("--by", required=True, help="your console user name")
    source = propose.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the new text")
    source.add_argument("--file", help="a UTF-8 file holding the new text")
    propose.add_argument("--reason", help="why the text changes")
    propose.set_defaults(func=cmd_content_propose)
    approve = content_sub.add_parser(
        "approve", help="approve someone else's proposal (supervisor, admin): served from now")
    approve.add_argument("id", type=int, help="the proposal's id (shown by propose, history)")
    approve.add_argument("--by", required=True, help="your console user name")
    approve.set_defaults(func=cmd_content_approve)
    reject = content_sub.add_parser("reject", help="reject someone else's proposal")
    reject.add_argument("id", type=int)
    reject.add_argument("--by", required=True, help="your console user name")
    reject.add_argument("--reason", required=True, help="why, for the author")
    reject.set_defaults(func=cmd_content_reject)
    withdraw = content_sub.add_parser("withdraw", help="take back your own proposal")
    withdraw.add_argument("id", type=int)
    withdraw.add_argument("--by", required=True, help="your console user name")
    withdraw.set_defaults(func=cmd_content_withdraw)
    history = content_sub.add_parser(
        "history", help="every version of a key with its diff, and the audit log")
    history.add_argument("key")
    history.add_argument("--kind", choices=kinds, help="default: found from the key")
    history.set_defaults(func=cmd_content_history)
    rollback = content_sub.add_parser(
        "rollback", help="go back to an earlier approved version (0: the file's text)")
    rollback.add_argument("key")
    rollback.add_argument("--to", type=int, required=True, help="the version to go back to")
    rollback.add_argument("--by", required=True, help="your console user name")
    rollback.add_argument("--kind", choices=kinds, help="default: found from the key")
    rollback.add_argument("--now", action="store_true",
                          help="serve it at once, without a second person (supervisor, admin; "
                          "needs --reason)")
    rollback.add_argument("--reason", help="why")
    rollback.set_defaults(func=cmd_content_rollback)

    hoax = sub.add_parser("hoax", help="the approved hoax registry (data/hoaxes/)")
    hoax_sub = hoax.add_subparsers(dest="hoax_command", required=True)
    hoax_sub.add_parser(
        "check", help="fail on an entry that is malformed, or approved but not servable"
    ).set_defaults(func=cmd_hoax_check)
    match = hoax_sub.add_parser("match", help="show the best registry matches for a text")
    match.add_argument("text", nargs="*", help="the message (default: read stdin)")
    match.add_argument("--top", type=int, default=5)
    match.set_defaults(func=cmd_hoax_match)
    stats = hoax_sub.add_parser("stats", help="top hoaxes over a period, and spikes")
    stats.add_argument("--days", type=int, default=7, help="period length (default 7)")
    stats.add_argument("--until", help="last day of the period, YYYY-MM-DD (default today)")
    stats.add_argument("--baseline", type=int, default=14,
                       help="days before the last day that set each hoax's usual rate")
    stats.add_argument("--top", type=int, default=20)
    stats.set_defaults(func=cmd_hoax_stats)
    imp = hoax_sub.add_parser("import", help="turn a fact-checker's CSV into draft entries")
    imp.add_argument("csv", help="columns: title, claim, clarification, link")
    imp.add_argument("--into", help="registry folder (default data/hoaxes/)")
    imp.add_argument("--owner", default="Tim Pemeriksa Fakta",
                     help="the unit that will own the drafts")
    imp.add_argument("--verdict", default="hoaks",
                     choices=("hoaks", "disinformasi", "misinformasi", "penipuan"))
    imp.set_defaults(func=cmd_hoax_import)
    hoax_sub.add_parser(
        "calibrate", help="show the thresholds that keep routine questions from matching"
    ).set_defaults(func=cmd_hoax_calibrate)

    admin = sub.add_parser("admin", help="users of the admins' web console (/admin)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    add_user = admin_sub.add_parser(
        "add-user", help="add a console user; the password is read from stdin (at a "
        "terminal: asked twice)")
    add_user.add_argument("name")
    add_user.add_argument("--role", required=True,
                          help="trainer (read-only), agent, supervisor or admin")
    add_user.set_defaults(func=cmd_admin_add_user)
    set_role = admin_sub.add_parser("set-role", help="change a console user's role")
    set_role.add_argument("name")
    set_role.add_argument("role", help="trainer, agent, supervisor or admin")
    set_role.set_defaults(func=cmd_admin_set_role)

    safety = sub.add_parser("safety", help="safety triage: what goes to people")
    safety_sub = safety.add_subparsers(dest="safety_command", required=True)
    safety_sub.add_parser(
        "calibrate", help="per-category thresholds from k-fold held-out data/safety and data/nlu"
    ).set_defaults(func=cmd_safety_calibrate)
    check = safety_sub.add_parser("check", help="how the safety classifier reads a message")
    check.add_argument("text", nargs="*", help="the message (default: read stdin)")
    check.set_defaults(func=cmd_safety_check)

    evaluation = sub.add_parser("eval", help="evaluate a part of Garda on your own data")
    eval_sub = evaluation.add_subparsers(dest="eval_command", required=True)
    retrieval = eval_sub.add_parser(
        "hoax-retrieval", help="recall@1/@5, MRR, abstention and latency of the hoax matcher"
    )
    retrieval.add_argument("--claims", required=True, help="CSV with columns id,claim")
    retrieval.add_argument("--queries", required=True,
                           help="CSV with columns id,text (id: the claim it should match)")
    retrieval.add_argument("--claim-columns", default="id,claim",
                           help="the id and text columns of CLAIMS (default id,claim)")
    retrieval.add_argument("--query-columns", default="id,text",
                           help="the id and text columns of QUERIES (default id,text)")
    retrieval.add_argument("--out", help="write per-query results here as JSON lines")
    retrieval.set_defaults(func=cmd_eval_hoax_retrieval)
    from bot.trainer.cli import add_commands  # garda trainer ..., garda model ...

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bot import logs

    logs.configure(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
