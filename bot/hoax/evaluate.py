"""``garda eval hoax-retrieval``: how well the matcher finds the right claim, on anyone's data.

CLAIMS.csv has a claim id and the claim's text; QUERIES.csv has the id of the claim each
text should match, and the text. A temporary registry is built from CLAIMS alone (one
entry per claim, indexed by its text), every query is matched, and the figures are:

* recall@1 and recall@5: the expected claim is ranked first / in the first five;
* MRR: the mean of 1 / rank of the expected claim over all claims;
* abstained: the share of queries Garda would not answer with a clarification at its
  operating thresholds (the project's routine questions serve as the background);
* precision at the operating point: of the queries Garda would answer, the share
  answered with the expected claim;
* latency p50/p95 per query: normalise, score against every claim, rank.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from bot.hoax.matcher import HoaxMatcher, Match
from bot.hoax.registry import HoaxEntry

TOP = 5


class EvalError(Exception):
    """The input files cannot be read as asked."""


def read_columns(path: Path, columns: Sequence[str]) -> list[tuple[str, str]]:
    """(id, text) pairs from a CSV file; header names match case-insensitively."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise EvalError(f"{path}: empty file")
            names = [h.strip().lower() for h in header]
            try:
                where = [names.index(c.strip().lower()) for c in columns]
            except ValueError:
                raise EvalError(
                    f"{path}: needs columns {', '.join(columns)}; it has {', '.join(header)}"
                ) from None
            rows = []
            for row in reader:
                if len(row) <= max(where):
                    continue
                key, text = (row[i].strip() for i in where)
                if key:
                    rows.append((key, text))
            return rows
    except (OSError, UnicodeDecodeError) as error:
        raise EvalError(f"{path}: {error}") from error


@dataclass(frozen=True)
class RetrievalReport:
    claims: int
    queries: int
    skipped: int  # queries naming a claim id that CLAIMS does not have
    recall_at_1: float
    recall_at_5: float
    mrr: float
    abstained: float
    answered_precision: float
    p50_ms: float
    p95_ms: float
    build_s: float

    def lines(self) -> list[str]:
        return [
            f"claims {self.claims}, queries {self.queries}"
            + (f" ({self.skipped} skipped: unknown claim id)" if self.skipped else ""),
            f"recall@1   {self.recall_at_1:.3f}",
            f"recall@5   {self.recall_at_5:.3f}",
            f"MRR        {self.mrr:.3f}",
            f"abstained  {self.abstained:.3f}",
            f"precision  {self.answered_precision:.3f} (right claim first, of those answered)",
            f"latency    p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms per query",
            f"index      built in {self.build_s:.2f} s",
        ]


def evaluate(
    claims: Sequence[tuple[str, str]],
    queries: Sequence[tuple[str, str]],
    out: IO[str] | None = None,
    matcher_factory: type[HoaxMatcher] = HoaxMatcher,
) -> RetrievalReport:
    unique: dict[str, str] = {}
    for key, text in claims:
        unique.setdefault(key, text)
    entries = [
        HoaxEntry(id=key, title=text, claim="", verdict="hoaks", status="draft", owner="eval",
                  examples=(), clarification="", sources=())
        for key, text in unique.items()
    ]
    started = time.perf_counter()
    matcher = matcher_factory(entries)
    build_s = time.perf_counter() - started
    position = {key: i for i, key in enumerate(matcher.ids)}
    ranks: list[int] = []
    abstained: list[bool] = []
    latencies: list[float] = []
    skipped = 0
    for query_id, text in queries:
        if query_id not in unique:
            skipped += 1
            continue
        started = time.perf_counter()
        normal = matcher.normalize(text)
        scores, routine = matcher.score_all(normal)
        top = np.argsort(-scores, kind="stable")[:TOP]
        latencies.append(time.perf_counter() - started)
        gold = scores[position[query_id]]
        # Ties count against the expected claim: a query that shares nothing with any
        # claim (every score 0) ranks last, not first.
        rank = int((scores >= gold).sum())
        best = float(scores[top[0]]) if len(top) else 0.0
        abstain = not matcher.accepts(Match("", best, best - routine), normal, text)
        ranks.append(rank)
        abstained.append(abstain)
        if out is not None:
            out.write(json.dumps({
                "id": query_id,
                "rank": rank,
                "abstained": abstain,
                "top": [{"id": matcher.ids[i], "score": round(float(scores[i]), 4)} for i in top],
                "latency_ms": round(latencies[-1] * 1000, 3),
            }, ensure_ascii=False) + "\n")
    if not ranks:
        raise EvalError("no query names a claim id present in CLAIMS")
    rank_array = np.asarray(ranks)
    answered = ~np.asarray(abstained)
    lat = np.asarray(latencies) * 1000
    return RetrievalReport(
        claims=len(unique),
        queries=len(ranks),
        skipped=skipped,
        recall_at_1=float(np.mean(rank_array == 1)),
        recall_at_5=float(np.mean(rank_array <= TOP)),
        mrr=float(np.mean(1.0 / rank_array)),
        abstained=float(np.mean(~answered)),
        answered_precision=float(np.mean(rank_array[answered] == 1)) if answered.any() else 0.0,
        p50_ms=float(np.percentile(lat, 50)),
        p95_ms=float(np.percentile(lat, 95)),
        build_s=build_s,
    )
