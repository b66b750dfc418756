"""Which hoax is circulating today: matches per hoax per day, and spikes.

A hoax *spikes* on a day when its count there is improbable under its own recent rate:
the Poisson chance of at least that many matches, at the mean of the previous
``baseline_days`` (floored at :data:`FLOOR_RATE`, so a hoax never seen before still
needs several matches), is below :data:`SPIKE_P`, and the count is at least
:data:`SPIKE_MIN`. A hoax seen 2-3 times a day every day does not spike at 4; one
seen once a week spikes at 5 in a day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from scipy.stats import poisson

SPIKE_MIN = 5
SPIKE_P = 0.001
FLOOR_RATE = 0.5


@dataclass(frozen=True)
class Trend:
    hoax_id: str
    period: int       # matches over the period
    last_day: int     # matches on the period's last day
    baseline: float   # mean matches per day over the baseline days before the last day
    spike: bool


def is_spike(count: int, baseline: float) -> bool:
    rate = max(baseline, FLOOR_RATE)
    return count >= SPIKE_MIN and float(poisson.sf(count - 1, rate)) < SPIKE_P


def trends(
    counts: Mapping[tuple[dt.date, str], int],
    last: dt.date,
    days: int = 7,
    baseline_days: int = 14,
) -> list[Trend]:
    """Each hoax matched in the ``days`` ending on ``last``, most matched first."""
    first = last - dt.timedelta(days=days - 1)
    base_first = last - dt.timedelta(days=baseline_days)
    found = []
    for hoax_id in sorted({h for (day, h) in counts if first <= day <= last}):
        period = sum(n for (day, h), n in counts.items() if h == hoax_id and first <= day <= last)
        today = counts.get((last, hoax_id), 0)
        before = sum(n for (day, h), n in counts.items()
                     if h == hoax_id and base_first <= day < last)
        baseline = before / baseline_days
        found.append(Trend(hoax_id, period, today, baseline, is_spike(today, baseline)))
    found.sort(key=lambda t: (not t.spike, -t.period, t.hoax_id))
    return found
