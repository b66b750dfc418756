"""Escalation benchmark: the safety triage on its held-out test set and on real abusive
tweets, false escalations of routine questions through the whole brain, the k-fold
development figures, and the admin console's queue page with 10,000 active tickets.

    python -m bot.bench_escalation --out docs/benchmarks.md      (part of `make bench`)

Writes its own section of the page, between ``<!-- escalation-bench:start -->`` and
``<!-- escalation-bench:end -->``; the rest of the page is left as it is. External data
from ``../shared/data`` is used where present and reported as skipped where not. Nothing
here tunes anything: thresholds are those in use (:data:`bot.safety.triage.THRESHOLDS`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bot.bench import ESCALATION_END, ESCALATION_START, machine, write_marked_section
from bot.nlu_data import heldout_files, read_examples
from bot.paths import project_root
from bot.safety.calibrate import (
    FOLDS,
    MAX_CRITICISM,
    MAX_HARD,
    MAX_KFOLD_ROUTINE,
    MAX_ROUTINE,
    ROUTINE,
    dev_scores,
    held_out,
    load_dev,
    score,
)
from bot.safety.categories import CRITICAL, DETECTED, FACT_CHECK
from bot.safety.triage import NONE, THRESHOLDS, SafetyTriage, load_examples, routine_texts

SHARED = project_root().parent / "shared" / "data"
TEGAL = SHARED / "faq" / "tegal_gov_questions.csv"
TWEETS = SHARED / "abuse" / "ibrohim2019_tweets.csv"
HELDOUT = project_root() / "tests" / "safety" / "heldout.yml"
OVERALL_GOAL = 0.95
CRITICAL_GOAL = 1.0
ACCURACY_GOAL = 0.90
FALSE_GOAL = 0.01
TICKETS = 10_000
REQUESTS = 20
PAGE_GOAL_MS = 200
ESCALATE = "escalate"


def _rows(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _quote(texts: Sequence[str], limit: int = 3) -> str:
    return "; ".join(f"\"{t[:80]}\"" for t in texts[:limit])


def _progress(message: str) -> None:
    print(f"bench_escalation: {message}", file=sys.stderr, flush=True)


# -- 1. the held-out escalation set --------------------------------------------------------


@dataclass(frozen=True)
class EscalationTestSet:
    """``tests/safety/heldout.yml``: messages per detected category, and the negatives."""

    categories: dict[str, list[str]]
    criticism: list[str]   # civil criticism and political opinion: never escalated
    routine: list[str]     # routine questions


def load_heldout(path: Path = HELDOUT) -> EscalationTestSet:
    """The held-out escalation set (also scored by `garda trainer evaluate`)."""
    data = yaml.safe_load(path.read_text("utf-8"))
    return EscalationTestSet({name: list(data["categories"][name]) for name in DETECTED},
                             list(data["criticism"]), list(data["routine"]))


def heldout_section(triage: SafetyTriage) -> list[str]:
    data = load_heldout()
    lines = [
        "### Held-out escalation test set", "",
        "`tests/safety/heldout.yml`: written by a writer who never saw `data/safety/` or",
        "`data/nlu/`; never used for training, calibration or tuning. Scored with",
        "`SafetyTriage.classify` directly, the classifier `Brain.decide` runs first (a known",
        "hoax, or a chain message that is not critical, can still take another route there).",
        "*Escalated* is any category; *right category* is recall of the category itself.", "",
        "| category | messages | escalated (any) | right category (recall) | goal |",
        "|---|---|---|---|---|",
    ]
    total = escalated = right = 0
    confusions: Counter[tuple[str, str]] = Counter()
    for name in DETECTED:
        texts = data.categories[name]
        verdicts = [triage.classify(t).category for t in texts]
        hits = sum(v is not None for v in verdicts)
        correct = sum(v == name for v in verdicts)
        confusions.update((name, v or "not escalated") for v in verdicts if v != name)
        total, escalated, right = total + len(texts), escalated + hits, right + correct
        goal = f">= {CRITICAL_GOAL:.2f}" if name in CRITICAL else ""
        lines.append(f"| {name} | {len(texts)} | {_share(hits, len(texts)):.3f} | "
                     f"{_share(correct, len(texts)):.3f} | {goal} |")
    lines += [
        f"| **all** | {total} | **{_share(escalated, total):.3f}** | "
        f"{_share(right, total):.3f} | escalated >= {OVERALL_GOAL:.2f} |",
        "",
        f"Category accuracy (right category among the {escalated} escalated): "
        f"**{_share(right, escalated):.3f}** (goal >= {ACCURACY_GOAL:.2f}).",
    ]
    if confusions:
        lines.append("Misses and confusions (expected -> got, count): " + "; ".join(
            f"{a} -> {b} ({n})" for (a, b), n in confusions.most_common(12)) + ".")
    lines += ["", "| negatives | messages | escalated | share | goal |", "|---|---|---|---|---|"]
    examples: list[str] = []
    for key, name, goal in (("criticism", "civil criticism, political opinion", "0"),
                            ("routine", "routine questions", f"<= {FALSE_GOAL:.2f}")):
        texts = getattr(data, key)
        flagged = [t for t in texts if triage.classify(t).category is not None]
        examples += flagged
        lines.append(f"| {name} | {len(texts)} | {len(flagged)} | "
                     f"{_share(len(flagged), len(texts)):.3f} | {goal} |")
    if examples:
        lines += ["", "Escalated: " + _quote(examples, 5) + "."]
    return lines


# -- 2. development figures (what calibration sees) -----------------------------------------


def development_section() -> list[str]:
    examples, routine = load_examples(), routine_texts()
    dev = load_dev()
    found = dev_scores(SafetyTriage(examples, routine), dev)
    kfold = held_out(examples, routine)
    in_use = score(found, kfold, THRESHOLDS)
    thresholds = ", ".join(f"{n} {THRESHOLDS[n]:.2f}" for n in DETECTED)
    counts = {n: len(dev.categories[n]) for n in DETECTED}
    lines = [
        "", "### Development figures (what `garda safety calibrate` chooses on)", "",
        "**Development figures, not test results.** The dev set `data/safety/dev/` was written",
        "by writers who never saw the training data and is never trained on; it is scored by",
        "the classifier the service runs. The hard negatives are scored "
        f"{FOLDS}-fold (each by a",
        f"model trained without it). Thresholds in use: {thresholds}.", "",
        "| measure | texts | value | calibration budget |", "|---|---|---|---|",
        f"| dev routine traffic escalated | {len(dev.routine):,} | {in_use.routine:.4f} | "
        f"<= {MAX_ROUTINE:.2f} |",
        f"| dev civil criticism escalated | {len(dev.criticism):,} | {in_use.criticism:.3f} | "
        f"<= {MAX_CRITICISM:.2f} |",
        f"| k-fold hard negatives (`data/safety/none.yml`) escalated | "
        f"{sum(t == NONE for t, _ in kfold):,} | {in_use.hard_negatives:.3f} | "
        f"<= {MAX_HARD:.2f} |",
        f"| k-fold `data/nlu` examples escalated | "
        f"{sum(t == ROUTINE for t, _ in kfold):,} | {in_use.kfold_routine:.4f} | "
        f"<= {MAX_KFOLD_ROUTINE:.2f} |",
        f"| dev recall, every category | {sum(counts.values()):,} | "
        f"{in_use.overall:.3f} | |",
        f"| dev category accuracy among escalated | | {in_use.accuracy:.3f} | |",
        "", "| category | dev examples | dev recall |", "|---|---|---|",
    ]
    for name in DETECTED:
        lines.append(f"| {name} | {counts[name]} | {in_use.recall[name]:.3f} |")
    return lines


# -- 3. routine questions through the whole brain -----------------------------------------


def brain_section(brain: Any) -> list[str]:
    from bot.evaluation import decide_all

    lines = [
        "", "### False escalations of routine questions (whole brain)", "",
        "`Brain.load()`, then `decide` on each message: safety triage, hoax match, NLU.",
        "*Escalated* counts `route == \"escalate\"`, whatever the category; `fact_check` is",
        "the part of it that reads as an unverified claim (held for the fact-check team);",
        "the rest is the safety triage.", "",
        "| set | messages | escalated | share | of which `fact_check` | safety categories "
        "| goal |", "|---|---|---|---|---|---|---|",
    ]
    sets: list[tuple[str, list[str]]] = []
    if TEGAL.is_file():
        rows = _rows(TEGAL)
        column = next((c for c in rows[0] if c.lower() in {"text", "pattern", "question"}),
                      next(iter(rows[0])))
        sets.append(("tegal_gov_questions.csv (external, unique)",
                     sorted({(r.get(column) or "").strip() for r in rows} - {""})))
    sets.append(("tests/nlu held-out FAQ test set",
                 [text for _, text in read_examples(heldout_files())]))
    examples: list[str] = []
    categories: Counter[str] = Counter()
    for name, texts in sets:
        _progress(f"deciding {len(texts):,} messages of {name}")
        decisions = decide_all(brain, texts)
        hits = [d for d in decisions if d.route == ESCALATE]
        facts = sum(d.category == FACT_CHECK for d in hits)
        categories.update(str(d.category) for d in hits)
        examples += [f"\"{d.text[:80]}\" ({d.category})" for d in hits
                     if d.category != FACT_CHECK][:3]
        lines.append(f"| {name} | {len(texts):,} | {len(hits)} | "
                     f"**{_share(len(hits), len(texts)):.4f}** | {facts} "
                     f"({_share(facts, len(texts)):.4f}) | {len(hits) - facts} "
                     f"({_share(len(hits) - facts, len(texts)):.4f}) | <= {FALSE_GOAL:.2f} |")
    if not TEGAL.is_file():
        lines.append(f"\nSkipped the external set: {TEGAL} is not present on this machine.")
    if categories:
        lines += ["", "Categories of the false escalations: " + ", ".join(
            f"{c} {n}" for c, n in categories.most_common()) + "."]
    if examples:
        lines.append("Examples (safety categories): " + "; ".join(examples) + ".")
    return lines


# -- 4. abusive tweets --------------------------------------------------------------------


def _pr(predicted: Sequence[bool], truth: Sequence[bool]) -> tuple[float, float, int]:
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    return _share(tp, sum(predicted)), _share(tp, sum(truth)), sum(predicted)


def abuse_section(triage: SafetyTriage) -> list[str]:
    lines = ["", "### Abusive tweets (external data)", ""]
    if not TWEETS.is_file():
        return [*lines, f"Skipped: {TWEETS} is not present on this machine."]
    rows = _rows(TWEETS)
    _progress(f"classifying {len(rows):,} tweets")
    verdicts = [triage.classify(r["Tweet"]).category for r in rows]
    abusive = [r["Abusive"].strip() == "1" for r in rows]
    hateful = [r["HS"].strip() == "1" for r in rows]
    as_abuse = [v in ("abuse", "hate_speech") for v in verdicts]
    at_all = [v is not None for v in verdicts]
    lines += [
        "`../shared/data/abuse/ibrohim2019_tweets.csv` (Ibrohim & Budi 2019, CC BY-NC-SA 4.0):",
        f"all {len(rows):,} tweets, {sum(abusive):,} labelled `Abusive` = 1. Garda does not",
        "train, calibrate or tune on this data (docs/escalation.md), so every row is unseen",
        "and no split is needed. Scored with `SafetyTriage.classify`. The tweets are",
        "another genre (Twitter, 2018, anonymised `USER`/`URL` tokens) and their labels",
        "another policy: `Abusive` marks rude words wherever they are, Garda escalates abuse",
        "aimed at its staff and the service.", "",
        "| prediction | against | flagged | precision | recall |", "|---|---|---|---|---|",
    ]
    for label, predicted in (("escalated as abuse or hate_speech", as_abuse),
                             ("escalated at all", at_all)):
        precision, recall, flagged = _pr(predicted, abusive)
        lines.append(f"| {label} | `Abusive` = 1 | {flagged:,} | {precision:.3f} | "
                     f"{recall:.3f} |")
    precision, recall, flagged = _pr(at_all, hateful)
    lines.append(f"| escalated at all (for information) | `HS` = 1 ({sum(hateful):,}) | "
                 f"{flagged:,} | {precision:.3f} | {recall:.3f} |")
    clean = [v for v, a, h in zip(verdicts, abusive, hateful, strict=True) if not a and not h]
    spread = Counter(v for v in verdicts if v is not None)
    lines += [
        "",
        "Escalated by category: " + ", ".join(f"{c} {n:,}" for c, n in spread.most_common())
        + f". Tweets labelled neither abusive nor hate speech ({len(clean):,}): "
        f"{_share(sum(v is not None for v in clean), len(clean)):.3f} escalated.",
        "The `HS` label includes sharp political criticism, which Garda must not escalate",
        "by itself (see `../shared/data/README.md`): that row is not a goal.",
    ]
    return lines


# -- 5. the console ------------------------------------------------------------------------


def _populate(engine: Any, count: int, seed: int = 7) -> dict[str, int]:
    from bot.safety.categories import categories
    from bot.store.models import CLAIMED, OPEN, conversations, tickets, utcnow

    found = categories()
    names = list(found)
    rng = random.Random(seed)  # noqa: S311 (reproducible test data)
    now = utcnow().replace(tzinfo=None)
    chats, rows = [], []
    statuses: Counter[str] = Counter()
    for i in range(1, count + 1):
        name = rng.choice(names)
        opened = now - dt.timedelta(minutes=rng.uniform(0, 3 * 24 * 60))
        claimed = rng.random() < 0.2
        status = CLAIMED if claimed else OPEN
        statuses[status] += 1
        chats.append({"id": i, "channel": "telegram", "chat_id": f"bench{i}",
                      "created_at": opened, "last_inbound_at": opened})
        rows.append({"id": i, "conversation_id": i, "inbound_id": None, "category": name,
                     "priority": found[name].priority, "status": status,
                     "assignee": f"agent{rng.randint(1, 9)}" if claimed else None,
                     "opened_at": opened, "claim_by": opened + found[name].claim_within,
                     "claimed_at": opened if claimed else None, "closed_at": None})
    with engine.begin() as conn:
        conn.execute(conversations.insert(), chats)
        conn.execute(tickets.insert(), rows)
    return dict(statuses)


def _timed(client: Any, path: str) -> tuple[list[float], str]:
    for _ in range(3):  # warm-up
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return timings, response.text


def console_section() -> list[str]:
    from sqlalchemy import func, select
    from starlette.testclient import TestClient

    from bot.admin import console
    from bot.admin.users import Users
    from bot.config import Settings
    from bot.gateway.app import create_app
    from bot.gateway.runtime import Runtime
    from bot.store.db import Database
    from bot.store.models import ACTIVE, tickets
    from bot.store.queue import InProcessQueue

    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'console.db'}"
        db = Database(url)
        db.upgrade()
        started = time.perf_counter()
        statuses = _populate(db.engine, TICKETS)
        populate_s = time.perf_counter() - started
        with db.engine.connect() as conn:
            active = int(conn.execute(select(func.count()).select_from(tickets)
                                      .where(tickets.c.status.in_(ACTIVE))).scalar() or 0)
        Users(db.engine).add("agent", password, "agent")
        settings = Settings(database_url=url)
        runtime = Runtime(settings, db, InProcessQueue(), {}, role="gateway")
        client = TestClient(create_app(settings, runtime), base_url="https://testserver",
                            follow_redirects=False)
        page = client.get("/admin/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None, "no csrf field on the login page"
        login = client.post("/admin/login", data={"csrf": token.group(1), "name": "agent",
                                                  "password": password})
        assert login.status_code == 303, login.text
        measured = [(name, *_timed(client, path)) for name, path in
                    (("queue page `GET /admin/`", "/admin/"),
                     ("rows fragment `GET /admin/queue/rows`", "/admin/queue/rows"))]
        db.engine.dispose()
    overdue = measured[0][2].count('class="overdue"')
    totals = {f"{active:,}", f"{active:_}".replace("_", ".")}
    told = any(t in body for _, _, body in measured for t in totals)
    lines = [
        "", f"### Admin console: the queue with {active:,} active tickets", "",
        f"SQLite in a temporary directory: {active:,} active tickets "
        f"({statuses.get('open', 0):,} open, {statuses.get('claimed', 0):,} claimed), every",
        "category, opened at random over the last three days, one conversation each,",
        f"inserted in bulk ({populate_s:.1f} s). A logged-in agent through starlette's",
        f"`TestClient` (in process, no network): {REQUESTS} requests each after 3 warm-up",
        "requests; each checks the session, reads the queue and renders the HTML.", "",
        "| request | rows shown | size | p50 | p95 | max | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, timings, body in measured:
        shown = body.count("data-ticket=")
        lines.append(f"| {name} | {shown:,} | {len(body) / 1024:.0f} KiB | "
                     f"{np.percentile(timings, 50):.1f} ms | {np.percentile(timings, 95):.1f} ms "
                     f"| {max(timings):.1f} ms | p95 <= {PAGE_GOAL_MS} ms |")
    lines += [
        "",
        f"The page shows at most {console.QUEUE_LIMIT} tickets (`QUEUE_LIMIT` in "
        "`bot/admin/console.py`), the most urgent",
        f"first (priority, then claim deadline; {overdue} of those shown are overdue). There "
        "is no paging,",
        "and the page " + ("shows" if told else "does not show") + " how many active tickets "
        "there are in all. The rows fragment is what the",
        f"page polls every {console.REFRESH_SECONDS} s.",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args(argv)
    from bot import logs
    from bot.brain.pipeline import Brain
    from bot.training import stored_meta, train

    logs.configure()
    train(quiet=True)
    _progress("loading the brain")
    brain = Brain.load()
    triage = brain.safety
    _progress("held-out escalation set")
    heldout = heldout_section(triage)
    _progress(f"{FOLDS}-fold development figures")
    kfold = development_section()
    routine = brain_section(brain)
    abuse = abuse_section(triage)
    _progress(f"console with {TICKETS:,} tickets")
    admin = console_section()
    lines = [
        "## Escalation",
        "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with "
        "`python -m bot.bench_escalation --out docs/benchmarks.md` (part of `make bench`; "
        "alone: `make bench-escalation`) on: " + machine() + ". "
        f"Model data hash `{str(stored_meta().get('data_hash', ''))[:12]}`.",
        "",
        *heldout,
        *kfold,
        *routine,
        *abuse,
        *admin,
    ]
    write_marked_section(Path(args.out), ESCALATION_START, ESCALATION_END, "\n".join(lines))
    print(f"Wrote the escalation section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
