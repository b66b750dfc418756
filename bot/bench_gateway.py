"""`make bench-gateway`: webhook acknowledgement and end-to-end latency of `garda run`, with
stock `rasa run` under the same end-to-end load for reference.

    python -m bot.bench_gateway --out docs/benchmarks.md [--quick] [--only embedded,servers,...]

Writes its own section of the page, between ``<!-- gateway-bench:start -->`` and
``<!-- gateway-bench:end -->`` (replaced if present, appended if not); the rest of the page
(written by ``python -m bot.bench``) is left as it is.

It reuses the test suite's helpers, so it puts ``tests/`` on ``sys.path``: the WhatsApp
Cloud API stub and webhook builders (``tests/stubs/whatsapp.py``: ``GraphStub``,
``text_message``, ``encode``, ``sign`` with the stub's app secret), ``tests/stubs.serve``
(a stub on a free loopback port, in a thread) and the private PostgreSQL and Redis
servers of ``tests/servers.py``.

Everything runs on 127.0.0.1. Every rate is sent for a fixed time and every wait has a
bound; every process started here is stopped on the way out, Ctrl-C and SIGTERM included.
Process logs are kept in ``.garda/bench-gateway/`` until the next run. The model is never
trained here: if models/garda.tar.gz is stale the benchmark stops and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bot.bench import GATEWAY_END, GATEWAY_START, machine, percentile, write_marked_section
from bot.paths import project_root, state_dir

ROOT = project_root()
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from servers import PostgresServer, RedisServer, ServerUnavailable  # noqa: E402
from stubs import free_port, serve  # noqa: E402
from stubs import whatsapp as wa  # noqa: E402

COMMAND = "python -m bot.bench_gateway --out docs/benchmarks.md"
GRACE_TEXT = "10 s after the run's last message"

# Citizens' questions, as they are typed into a chat (written for this benchmark).
QUESTIONS = (
    "cara bikin ktp gimana min",
    "jam buka dukcapil hari sabtu",
    "cek bansos dimana ya",
    "syarat bikin kk baru apa aja",
    "ktp saya hilang, gimana ngurusnya",
    "mau bikin akta kelahiran anak, bawa apa aja?",
    "urus akta kematian bapak saya dimana",
    "bayar pbb bisa online ga",
    "pajak motor telat sebulan dendanya berapa",
    "perpanjang sim dimana min",
    "bikin paspor harus ke kantor imigrasi ya?",
    "daftar bpjs kesehatan gratis gimana caranya",
    "pendaftaran ppdb sd kapan dibuka",
    "lowongan cpns tahun ini ada ga",
    "cara bikin kartu kuning buat ngelamar kerja",
    "puskesmas terdekat buka jam berapa",
    "jadwal vaksin anak di posyandu kapan",
    "air pdam mati dari kemarin lapor kemana",
    "sampah di gang belum diangkut seminggu",
    "nomor darurat pemadam kebakaran berapa",
    "mau pindah domisili ke kota lain syaratnya apa",
    "daftar nib lewat oss gimana",
    "ada bantuan modal buat umkm ga",
    "izin bangun rumah pbg ngurusnya dimana",
    "beasiswa buat anak sd ada ga min",
    "bikin kia buat anak umur 5 tahun",
    "daftar nikah di kua syaratnya apa aja",
    "biaya bikin akta berapa ya",
    "mau lapor jalan rusak depan rumah",
    "alamat kantor dinas sosial dimana",
    "halo min selamat pagi",
    "makasih infonya ya",
)

ACK_RATES = (200, 500, 1000)
E2E_RATES = (20, 50, 100)
STEP_RATES = (20, 50, 100, 150, 200)
ACK_GOAL_RATE, ACK_GOAL_P99 = 500, 0.250
E2E_GOAL_RATE, E2E_GOAL_P95 = 50, 0.150
WORKERS = 2

CONNECTIONS = 512          # the generator's connection pool
REQUEST_TIMEOUT = 30.0     # per request, pool wait included
READY_TIMEOUT = 300.0      # start-up, model load included
STEP_GRACE = 5.0           # a step's replies must all be in this long after its last send
STEP_LATE = 3.0            # ... no later than this at p95 over the step ...
STEP_GROWTH = 1.0          # ... and the last quarter's p95 within max(this, 2 × the first's)
WARMUP = 30                # messages sent (at 10/s) and answered before anything is measured

DEPLOYMENTS = ("embedded", "servers", "workers", "gateway", "rasa")
LABELS = {
    "embedded": "Garda, one process, SQLite + in-process queue (embedded default)",
    "servers": "Garda, one process (one worker), PostgreSQL + Redis",
    "workers": f"Garda, gateway + {WORKERS} worker processes, PostgreSQL + Redis",
    "gateway": "Garda's gateway process alone, PostgreSQL + Redis (nothing answers)",
    "rasa": "stock `rasa run`, REST channel (synchronous)",
}
SHORT = {"embedded": "Garda embedded (SQLite)", "servers": "Garda 1 worker (PG + Redis)",
         "workers": f"Garda gateway + {WORKERS} workers (PG + Redis)",
         "gateway": "Garda gateway alone, no workers (PG + Redis)", "rasa": "stock Rasa (REST)"}

_T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    quick: bool

    @property
    def ack_seconds(self) -> float:
        return 5.0 if self.quick else 10.0

    @property
    def e2e_seconds(self) -> float:
        return 10.0 if self.quick else 60.0

    @property
    def step_seconds(self) -> float:
        return 10.0 if self.quick else 20.0

    @property
    def grace(self) -> float:
        return 10.0  # GRACE_TEXT says so

    @property
    def drain(self) -> float:
        return 30.0 if self.quick else 60.0

    @property
    def ack_pause(self) -> float:
        return 3.0


# -- processes ----------------------------------------------------------------------------


def _hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    return found


def _running(pid: int) -> bool:
    """Still running (not gone, not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z"


class Proc:
    """One process we started, its log file and its peak memory."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 port: int) -> None:
        self.name = name
        self.log = log
        self.url = f"http://127.0.0.1:{port}"
        with log.open("wb") as sink:
            self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=sink,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.peak_kb = 0

    def check(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n"
                               + self.tail())

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def sample_rss(self) -> int:
        """Peak RSS so far (VmHWM, MB), this process and its children."""
        if self.popen.poll() is None:
            pids = [self.popen.pid, *_descendants(self.popen.pid)]
            self.peak_kb = max(self.peak_kb, sum(_hwm_kb(p) for p in pids))
        return self.peak_kb // 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time so far, all threads (and children we have not reaped)."""
        total = 0.0
        for pid in [self.popen.pid, *_descendants(self.popen.pid)]:
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        """Stop the process, and then any child of it still running (a brain process)."""
        if self.popen.poll() is not None:
            return
        self.sample_rss()
        children = _descendants(self.popen.pid)
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
        deadline = time.monotonic() + 10
        for pid in children:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not _running(pid):
                    break
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
                while _running(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)

    def problems(self) -> list[str]:
        """Log lines at WARNING or above (start-up banner aside) and tracebacks."""
        lines = []
        for line in self.tail(10**8).splitlines():
            if line.startswith("WARNING") and "listening on http" in line:
                continue
            if line.startswith(("WARNING", "ERROR", "CRITICAL", "Traceback")) or (
                    " ERROR " in line or " CRITICAL " in line):
                lines.append(line.strip()[:300])
        return lines


def wait_until_ready(procs: Sequence[Proc], path: str, what: str) -> float:
    started = time.monotonic()
    deadline = started + READY_TIMEOUT
    pending = list(procs)
    last_note = started
    while pending:
        for proc in list(pending):
            proc.check()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(proc.url + path, timeout=2).status_code == 200:
                    pending.remove(proc)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {READY_TIMEOUT:.0f} s")
        if time.monotonic() - last_note > 15:
            last_note = time.monotonic()
            say(f"  waiting for {what} ({', '.join(p.name for p in pending)}): "
                f"{last_note - started:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def ensure_model_fresh() -> None:
    from bot.training import is_stale, model_path

    if is_stale():
        raise SystemExit(
            f"{model_path()} is missing or stale (its inputs changed since it was trained): "
            "`garda run` would train it first. This benchmark never trains; run "
            "`garda train` (or `make setup`) and start it again.")


def garda_env(graph_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GARDA_") or k == "GARDA_HOME"}
    env.update({
        "GARDA_HOST": "127.0.0.1",
        "GARDA_WHATSAPP_TOKEN": wa.TOKEN,
        "GARDA_WHATSAPP_PHONE_NUMBER_ID": wa.PHONE_NUMBER_ID,
        "GARDA_WHATSAPP_APP_SECRET": wa.APP_SECRET,
        "GARDA_WHATSAPP_VERIFY_TOKEN": wa.VERIFY_TOKEN,
        "GARDA_WHATSAPP_API_URL": f"{graph_url}/{wa.API_VERSION}",
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    })
    return env


# -- the Graph API stub, timing replies ---------------------------------------------------


class TimedGraph(wa.GraphStub):
    """The test suite's Graph API stub, noting when the first reply to each wa_id came and
    whether any wa_id got the same body twice. It forgets the requests themselves (the base
    class keeps them all) so that memory stays flat over tens of thousands of replies."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[str, float] = {}
        self.total = 0
        self.doubled = 0
        self.refused = 0
        self._seen: set[tuple[str, str]] = set()

    async def _handle(self, request: Any) -> Any:
        at = time.monotonic()
        response = await super()._handle(request)
        raw = await request.body()  # cached by Starlette
        with self._lock:
            self._requests.clear()
            if response.status_code != 200:
                self.refused += 1
                return response
            to = str(json.loads(raw).get("to"))
            self.total += 1
            self.first.setdefault(to, at)
            key = (to, hashlib.sha256(raw).hexdigest())
            if key in self._seen:
                self.doubled += 1
            self._seen.add(key)
        return response


# -- load generation ----------------------------------------------------------------------


@dataclass
class Shot:
    scheduled: float = math.nan
    issued: float = math.nan
    done: float = math.nan
    status: int = 0          # HTTP status; 0: no response (timeout, connection error)
    error: str = ""
    answered: bool = True    # Rasa: the response held at least one message


Request = tuple[str, bytes, dict[str, str]]


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, from /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used over a span, as a percentage of one core: by some processes, by this one
    (generator and stub), and by everything else on the machine (PostgreSQL, Redis, and
    whatever else runs here)."""

    def __init__(self, procs: Sequence[Proc]) -> None:
        self.procs = procs
        self.wall = time.monotonic()
        self.theirs = sum(p.cpu_seconds() for p in procs)
        times = os.times()
        self.ours = times.user + times.system
        self.machine = machine_busy_seconds()

    def read(self) -> Cpu:
        wall = max(1e-6, time.monotonic() - self.wall)
        theirs = sum(p.cpu_seconds() for p in self.procs) - self.theirs
        times = os.times()
        ours = times.user + times.system - self.ours
        rest = machine_busy_seconds() - self.machine - theirs - ours
        return Cpu(100 * theirs / wall, 100 * ours / wall,
                   math.nan if math.isnan(rest) else 100 * max(0.0, rest) / wall)


@dataclass(frozen=True)
class Cpu:
    """Percentages of one core."""

    measured: float
    bench: float
    rest: float

    def __str__(self) -> str:
        rest = "?" if math.isnan(self.rest) else f"{self.rest:.0f}"
        return f"{self.measured:.0f} / {self.bench:.0f} / {rest}"


class Counters:
    def __init__(self) -> None:
        self.issued = 0
        self.done = 0


async def open_loop(session: aiohttp.ClientSession, rate: float, requests: Sequence[Request],
                    counters: Counters, check: Callable[[bytes], bool] | None = None,
                    ) -> list[Shot]:
    """Send ``requests`` at ``rate`` per second on a fixed schedule, whatever the answers."""
    shots = [Shot() for _ in requests]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)

    async def fire(index: int) -> None:
        shot = shots[index]
        url, body, headers = requests[index]
        shot.issued = time.monotonic()
        counters.issued += 1
        try:
            async with session.post(url, data=body, headers=headers, timeout=timeout) as resp:
                payload = await resp.read()
                shot.status = resp.status
                if check is not None and resp.status == 200:
                    shot.answered = check(payload)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            shot.error = type(error).__name__
        shot.done = time.monotonic()
        counters.done += 1

    tasks = []
    start = time.monotonic() + 0.05
    for index in range(len(requests)):
        target = start + index / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        shots[index].scheduled = target
        tasks.append(asyncio.create_task(fire(index)))
    await asyncio.gather(*tasks)
    return shots


def achieved_rate(shots: Sequence[Shot]) -> float:
    issued = sorted(s.issued for s in shots if not math.isnan(s.issued))
    if len(issued) < 2 or issued[-1] <= issued[0]:
        return 0.0
    return (len(issued) - 1) / (issued[-1] - issued[0])


def done_rate(times: Sequence[float], shots: Sequence[Shot]) -> float:
    """How many of ``times`` (replies, acknowledgements) per second, from the first request
    to the last of them."""
    if not times:
        return 0.0
    span = max(times) - min(s.issued for s in shots)
    return len(times) / span if span > 0 else 0.0


def late_failures(label: str, shots: Sequence[Shot]) -> None:
    """Say when in the run the failed requests were issued (seconds from the first)."""
    bad = [s for s in shots if s.status != 200]
    if bad:
        first = shots[0].issued
        say(f"  {label}: {len(bad)} requests failed, issued at "
            + ", ".join(f"{s.issued - first:.1f} s ({s.error or s.status})" for s in bad[:10])
            + (" ..." if len(bad) > 10 else ""))


def slow_acks(used: Samples) -> int:
    """Acknowledgements Garda's own histogram put above its top bucket (5 s)."""
    count = metric(used, "garda_webhook_ack_seconds_count")
    return round(count - metric(used, "garda_webhook_ack_seconds_bucket", le="5.0"))


def lag_p99(shots: Sequence[Shot]) -> float:
    return percentile([s.issued - s.scheduled for s in shots], 99)


def session(connections: int = CONNECTIONS) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))


# -- Garda's /metrics ---------------------------------------------------------------------


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            found[key] = found.get(key, 0.0) + float(sample.value)
    return found


def metric(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def delta(after: Samples, before: Samples) -> Samples:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def mean_ms(samples: Samples, histogram: str) -> float | None:
    count = metric(samples, f"{histogram}_count")
    return 1000 * metric(samples, f"{histogram}_sum") / count if count else None


async def fetch_metrics(http: aiohttp.ClientSession, urls: Sequence[str]) -> Samples:
    total: Samples = {}
    for url in urls:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
                for key, value in parse_metrics(await r.text()).items():
                    total[key] = total.get(key, 0.0) + value
    return total


async def backlog(http: aiohttp.ClientSession, url: str) -> int | None:
    """garda_queue_depth: messages stored but not yet decided (counted in SQL)."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
            found = re.search(r"^garda_queue_depth (\S+)$", await r.text(), re.MULTILINE)
            return int(float(found.group(1))) if found else None
    return None


# -- results ------------------------------------------------------------------------------


@dataclass
class AckResult:
    deployment: str
    rate: int
    seconds: float
    sent: int
    achieved: float
    lag_p99: float
    p50: float
    p99: float
    worst: float
    failed: int
    failures: str
    server_mean_ms: float | None
    backlog_start: int | None
    rss: str
    cpu: Cpu
    acked_rate: float


@dataclass
class E2EResult:
    deployment: str
    rate: int
    seconds: float
    sent: int
    achieved: float
    lag_p99: float
    latencies: list[float]     # in send order; inf: no reply (Garda) / error (Rasa)
    failed: int                # Garda: webhook not answered 200; Rasa: error or empty answer
    failures: str
    missing: int               # Garda: no reply when the grace ran out
    backlog_max: int | None
    backlog_end: int | None
    brain_ms: float | None
    rss: str
    cpu: Cpu
    answered_rate: float       # replies (or Rasa answers) per second over the run and grace
    ack_p99: float = math.nan  # Garda: webhook acknowledgement p99 during the run
    slow_acks: int = 0         # Garda: acknowledgements Garda itself timed at over 5 s
    sustained: bool | None = None
    verdict: str = ""

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) if self.latencies else math.inf


@dataclass
class Deployed:
    key: str
    ready_s: float = 0.0
    acks: list[AckResult] = field(default_factory=list)
    runs: list[E2EResult] = field(default_factory=list)
    steps: list[E2EResult] = field(default_factory=list)
    counts: str = ""
    doubled: int = 0
    log_problems: list[str] = field(default_factory=list)
    error: str = ""
    rss: str = ""

    def everything(self) -> list[AckResult | E2EResult]:
        return [*self.runs, *self.steps, *self.acks]


def describe_failures(shots: Sequence[Shot]) -> tuple[int, str]:
    kinds: dict[str, int] = {}
    for s in shots:
        if s.status != 200:
            name = s.error or f"HTTP {s.status}"
            kinds[name] = kinds.get(name, 0) + 1
        elif not s.answered:
            kinds["empty answer"] = kinds.get("empty answer", 0) + 1
    return sum(kinds.values()), ", ".join(f"{n}× {k}" for k, n in sorted(kinds.items()))


# -- Garda deployments --------------------------------------------------------------------


class Garda:
    """A running deployment: its processes, the Graph API stub it replies to, fresh ids."""

    def __init__(self, key: str, procs: list[Proc], graph: TimedGraph, database_url: str,
                 ) -> None:
        self.key = key
        self.procs = procs
        self.graph = graph
        self.database_url = database_url
        self._next = 6281100000000

    @property
    def receiver(self) -> str:
        """The process that takes the webhooks (all-in-one, or the gateway)."""
        return self.procs[0].url

    def wa_ids(self, n: int) -> list[str]:
        start, self._next = self._next, self._next + n
        return [str(start + i) for i in range(n)]

    def webhooks(self, wa_ids: Sequence[str], offset: int = 0) -> list[Request]:
        url = f"{self.receiver}/webhooks/whatsapp"
        requests = []
        for i, wa_id in enumerate(wa_ids):
            body = wa.encode(wa.text_message(wa_id, QUESTIONS[(offset + i) % len(QUESTIONS)]))
            requests.append((url, body, {"content-type": "application/json",
                                         "x-hub-signature-256": wa.sign(body)}))
        return requests

    def rss(self) -> str:
        sizes = [p.sample_rss() for p in self.procs]
        if len(sizes) == 1:
            return f"{sizes[0]}"
        return f"{sizes[0]} + " + " + ".join(str(s) for s in sizes[1:])

    def check(self) -> None:
        for proc in self.procs:
            proc.check()

    def counts(self) -> str:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                parts = []
                for table in ("inbound", "outbox"):
                    rows = conn.execute(text(
                        f"SELECT status, count(*) FROM {table} GROUP BY status")).all()  # noqa: S608
                    parts.append(f"{table}: " + (", ".join(
                        f"{n} {s}" for s, n in sorted(rows)) or "none"))
        finally:
            engine.dispose()
        return "; ".join(parts) + (f"; replies received by the stub: {self.graph.total}, "
                                   f"identical reply bodies to one wa_id twice: "
                                   f"{self.graph.doubled}")


@contextlib.contextmanager
def start_garda(key: str, work: Path, postgres: PostgresServer | None,
                note: Deployed) -> Iterator[Garda]:
    ensure_model_fresh()
    graph = TimedGraph()
    with contextlib.ExitStack() as stack:
        graph_url = stack.enter_context(serve(graph.app))
        env = garda_env(graph_url)
        if key == "embedded":
            database_url = f"sqlite:///{work / 'garda-embedded.db'}"
            roles = ["all"]
        else:
            assert postgres is not None
            redis = RedisServer()
            stack.callback(redis.cleanup)
            redis.start()
            database_url = postgres.create_database(f"bench_{key}")
            env["GARDA_REDIS_URL"] = redis.url
            roles = {"servers": ["all"], "gateway": ["gateway"]}.get(
                key, ["gateway"] + ["worker"] * WORKERS)
        env["GARDA_DATABASE_URL"] = database_url
        procs: list[Proc] = []

        def launch(number: int, role: str) -> Proc:
            port = free_port()
            argv = [sys.executable, "-m", "bot.cli", "run"]
            if role != "all":
                argv += ["--role", role]
            name = role if role != "worker" else f"worker-{number}"
            proc = Proc(name, argv, {**env, "GARDA_PORT": str(port)},
                        work / f"{key}-{name}.log", port)
            stack.callback(proc.stop)
            procs.append(proc)
            return proc

        garda = Garda(key, procs, graph, database_url)
        try:
            say(f"{key}: starting {', '.join(roles)}")
            # All at once on a fresh database, as an operator would start them.
            note.ready_s = wait_until_ready([launch(n, r) for n, r in enumerate(roles)],
                                            "/readyz", key)
            say(f"{key}: ready after {note.ready_s:.0f} s; warming up")
            asyncio.run(warm_up(garda))
            yield garda
        finally:
            note.rss = garda.rss()
            for proc in procs:
                proc.stop()
            for proc in procs:
                note.log_problems += [f"{proc.name}: {line}" for line in proc.problems()]


async def warm_up(garda: Garda) -> None:
    wa_ids = garda.wa_ids(WARMUP)
    async with session() as http:
        shots = await open_loop(http, 10, garda.webhooks(wa_ids), Counters())
    failed, failures = describe_failures(shots)
    if failed:
        raise RuntimeError(f"warm-up webhooks failed: {failures}")
    if garda.key == "gateway":
        return  # nothing answers
    deadline = time.monotonic() + 60
    while not all(w in garda.graph.first for w in wa_ids):
        if time.monotonic() > deadline:
            raise RuntimeError("warm-up replies did not all arrive within 60 s")
        await asyncio.sleep(0.2)


async def garda_e2e(garda: Garda, rate: int, seconds: float, grace: float,
                    label: str) -> E2EResult:
    n = round(rate * seconds)
    wa_ids = garda.wa_ids(n)
    requests = garda.webhooks(wa_ids)
    counters = Counters()
    depths: list[int] = []
    urls = [p.url for p in garda.procs]
    async with session() as http:
        before = await fetch_metrics(http, urls)
        stop = asyncio.Event()
        replies_before = garda.graph.total

        async def watch() -> None:
            last = time.monotonic()
            while not stop.is_set():
                depth = await backlog(http, garda.receiver)
                if depth is not None:
                    depths.append(depth)
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    say(f"  {label}: sent {counters.issued}/{n}, acknowledged "
                        f"{counters.done}, replies {garda.graph.total - replies_before}, "
                        f"backlog {depths[-1] if depths else '?'}")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

        watcher = asyncio.create_task(watch())
        meter = CpuMeter(garda.procs)
        try:
            shots = await open_loop(http, rate, requests, counters)
            for _ in range(int(grace * 10)):  # until every reply is in, or the grace is up
                if all(w in garda.graph.first for w in wa_ids):
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await watcher
        cpu = meter.read()
        end_depth = await backlog(http, garda.receiver)
        used = delta(await fetch_metrics(http, urls), before)
    latencies = [garda.graph.first[w] - s.issued if w in garda.graph.first else math.inf
                 for w, s in zip(wa_ids, shots, strict=True)]
    failed, failures = describe_failures(shots)
    late_failures(label, shots)
    missing = sum(1 for w in wa_ids if w not in garda.graph.first)
    replies = [garda.graph.first[w] for w in wa_ids if w in garda.graph.first]
    acks = [s.done - s.issued if s.status == 200 else math.inf for s in shots]
    return E2EResult(garda.key, rate, seconds, n, achieved_rate(shots), lag_p99(shots),
                     latencies, failed, failures, missing, max(depths, default=None),
                     end_depth, mean_ms(used, "garda_brain_seconds"), garda.rss(), cpu,
                     done_rate(replies, shots), percentile(acks, 99), slow_acks(used))


@contextlib.asynccontextmanager
async def reporting(every: float, line: Callable[[], str]) -> AsyncIterator[None]:
    """Say ``line()`` on stderr every ``every`` seconds while the block runs."""
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if not stop.is_set():
                say(line())

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        stop.set()
        await watcher


async def garda_ack(garda: Garda, rate: int, seconds: float, label: str) -> AckResult:
    n = round(rate * seconds)
    requests = garda.webhooks(garda.wa_ids(n))
    counters = Counters()
    urls = [p.url for p in garda.procs]
    async with session() as http:
        start_depth = await backlog(http, garda.receiver)
        before = await fetch_metrics(http, urls)
        meter = CpuMeter(garda.procs)
        async with reporting(2.5, lambda: f"  {label}: sent {counters.issued}/{n}, "
                             f"acknowledged {counters.done}"):
            shots = await open_loop(http, rate, requests, counters)
        cpu = meter.read()
        used = delta(await fetch_metrics(http, urls), before)
    ok = [s.done - s.issued for s in shots if s.status == 200]
    every = [s.done - s.issued if s.status == 200 else math.inf for s in shots]
    failed, failures = describe_failures(shots)
    late_failures(label, shots)
    return AckResult(garda.key, rate, seconds, n, achieved_rate(shots), lag_p99(shots),
                     percentile(every, 50), percentile(every, 99), max(ok, default=math.inf),
                     failed, failures, mean_ms(used, "garda_webhook_ack_seconds"),
                     start_depth, garda.rss(), cpu,
                     done_rate([s.done for s in shots if s.status == 200], shots))


async def drain(garda: Garda, bound: float) -> int | None:
    """Wait (at most ``bound`` s) until Garda has decided everything stored."""
    deadline = time.monotonic() + bound
    async with session(4) as http:
        while True:
            depth = await backlog(http, garda.receiver)
            if depth == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
    await asyncio.sleep(1.0)  # the last decisions' replies
    return depth


def judge(result: E2EResult) -> tuple[bool, str]:
    if result.failed:
        return False, f"{result.failed} webhooks not acknowledged ({result.failures})"
    if result.achieved < 0.95 * result.rate:
        return False, f"the generator reached only {result.achieved:.0f}/s"
    if result.missing:
        return False, f"{result.missing} replies missing {STEP_GRACE:.0f} s after the last send"
    if result.p(95) > STEP_LATE:
        return False, f"replies fell behind: p95 {fmt_s(result.p(95))}"
    quarter = max(1, len(result.latencies) // 4)
    early = percentile(result.latencies[:quarter], 95)
    late = percentile(result.latencies[-quarter:], 95)
    if late > max(STEP_GROWTH, 2 * early):
        return False, (f"replies falling behind: p95 {fmt_s(early)} in the first quarter, "
                       f"{fmt_s(late)} in the last")
    return True, ""


class OutOfTime(RuntimeError):
    """The run's time budget is spent: the rest is skipped (and the page says so)."""


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def check(self, upcoming: float = 0.0) -> None:
        used = time.monotonic() - self.started
        if used + upcoming > self.seconds:
            raise OutOfTime(f"time budget of {self.seconds / 60:.0f} min spent "
                            f"({used / 60:.1f} min used); the rest was skipped")


def bench_garda(key: str, plan: Plan, work: Path, postgres: PostgresServer | None,
                note: Deployed, budget: Budget) -> None:
    budget.check(60)
    with start_garda(key, work, postgres, note) as garda:
        if key in ("servers", "workers"):
            for rate in STEP_RATES:
                budget.check(plan.step_seconds)
                label = f"{key} step {rate}/s"
                say(f"{label}, {plan.step_seconds:.0f} s")
                result = asyncio.run(garda_e2e(garda, rate, plan.step_seconds, STEP_GRACE,
                                               label))
                result.sustained, result.verdict = judge(result)
                note.steps.append(result)
                say(f"  -> {'sustained' if result.sustained else 'NOT sustained'} "
                    f"{result.verdict} (p95 {fmt_s(result.p(95))}, backlog max "
                    f"{result.backlog_max})")
                garda.check()
                settle(garda, plan)
                if not result.sustained:
                    break
        for number, rate in enumerate(E2E_RATES if key != "gateway" else ()):
            budget.check(plan.e2e_seconds)
            label = f"{key} end-to-end {rate}/s"
            say(f"{label}, {plan.e2e_seconds:.0f} s")
            result = asyncio.run(garda_e2e(garda, rate, plan.e2e_seconds, plan.grace, label))
            note.runs.append(result)
            say(f"  -> p50 {fmt_s(result.p(50))}, p95 {fmt_s(result.p(95))}, p99 "
                f"{fmt_s(result.p(99))}, achieved {result.achieved:.1f}/s, not acknowledged "
                f"{result.failed}, missing {result.missing}, backlog at end "
                f"{result.backlog_end}")
            garda.check()
            if number < len(E2E_RATES) - 1:
                settle(garda, plan)
        for number, rate in enumerate(ACK_RATES):
            budget.check(plan.ack_seconds)
            if number:
                time.sleep(plan.ack_pause)
            label = f"{key} acknowledgement {rate}/s"
            say(f"{label}, {plan.ack_seconds:.0f} s")
            ack = asyncio.run(garda_ack(garda, rate, plan.ack_seconds, label))
            note.acks.append(ack)
            say(f"  -> p50 {fmt_s(ack.p50)}, p99 {fmt_s(ack.p99)}, max {fmt_s(ack.worst)},"
                f" achieved {ack.achieved:.0f}/s, failed {ack.failed} {ack.failures}")
            garda.check()
        note.doubled = garda.graph.doubled
        try:
            note.counts = garda.counts()
        except Exception as error:  # informative only
            note.counts = f"could not be read ({type(error).__name__})"
        say(f"{key}: {note.counts}")


def settle(garda: Garda, plan: Plan) -> None:
    left = asyncio.run(drain(garda, plan.drain))
    if left:
        say(f"  backlog still {left} after waiting {plan.drain:.0f} s")


# -- stock Rasa ---------------------------------------------------------------------------


def rasa_answered(payload: bytes) -> bool:
    try:
        return bool(json.loads(payload))
    except ValueError:
        return False


def rasa_requests(url: str, senders: Sequence[str]) -> list[Request]:
    return [(url, json.dumps({"sender": s, "message": QUESTIONS[i % len(QUESTIONS)]}).encode(),
             {"content-type": "application/json"}) for i, s in enumerate(senders)]


async def rasa_run(url: str, rate: int, seconds: float, first_sender: int, label: str,
                   proc: Proc) -> E2EResult:
    n = round(rate * seconds)
    senders = [str(first_sender + i) for i in range(n)]
    counters = Counters()
    async with session(1024) as http:
        meter = CpuMeter([proc])
        async with reporting(5.0, lambda: f"  {label}: sent {counters.issued}/{n}, "
                             f"answered {counters.done}"):
            shots = await open_loop(http, rate, rasa_requests(url, senders), counters,
                                    check=rasa_answered)
        cpu = meter.read()
    latencies = [s.done - s.issued if s.status == 200 and s.answered else math.inf
                 for s in shots]
    failed, failures = describe_failures(shots)
    late_failures(label, shots)
    answers = [s.done for s in shots if s.status == 200 and s.answered]
    return E2EResult("rasa", rate, seconds, n, achieved_rate(shots), lag_p99(shots),
                     latencies, failed, failures, 0, None, None, None,
                     str(proc.sample_rss()), cpu, done_rate(answers, shots))


async def rasa_settle(url: str, bound: float) -> None:
    """Wait (at most ``bound`` s) until one more message is answered within a second."""
    deadline = time.monotonic() + bound
    async with session(4) as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.post(url, json={"sender": "settle", "message": "halo"},
                                     timeout=aiohttp.ClientTimeout(total=bound)) as r:
                    await r.read()
                    if r.status == 200 and time.monotonic() - started < 1.0:
                        return
            await asyncio.sleep(1.0)


def bench_rasa(plan: Plan, work: Path, note: Deployed, budget: Budget) -> None:
    budget.check(60)
    credentials = work / "credentials.yml"
    credentials.write_text("rest:\n", "utf-8")
    port = free_port()
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    argv = [sys.executable, "-m", "rasa", "run", "--model", "models/garda.tar.gz",
            "--credentials", str(credentials), "--port", str(port), "--interface",
            "127.0.0.1"]
    proc = Proc("rasa", argv, env, work / "rasa.log", port)
    try:
        say("rasa: starting `rasa run` (REST channel)")
        note.ready_s = wait_until_ready([proc], "/", "rasa")
        url = f"{proc.url}/webhooks/rest/webhook"
        say(f"rasa: ready after {note.ready_s:.0f} s; warming up")
        asyncio.run(rasa_run(url, 10, WARMUP / 10, 9100000000, "rasa warm-up", proc))
        for number, rate in enumerate(E2E_RATES):
            budget.check(plan.e2e_seconds)
            label = f"rasa end-to-end {rate}/s"
            say(f"{label}, {plan.e2e_seconds:.0f} s")
            result = asyncio.run(rasa_run(url, rate, plan.e2e_seconds,
                                          6281900000000 + number * 10**6, label, proc))
            note.runs.append(result)
            say(f"  -> p50 {fmt_s(result.p(50))}, p95 {fmt_s(result.p(95))}, p99 "
                f"{fmt_s(result.p(99))}, achieved {result.achieved:.1f}/s, failed "
                f"{result.failed} {result.failures}")
            proc.check()
            if number < len(E2E_RATES) - 1:
                asyncio.run(rasa_settle(url, plan.drain))
    finally:
        note.rss = str(proc.sample_rss())
        proc.stop()
        lines = proc.problems()
        interpolation = [line for line in lines if "interpolator" in line]
        others = [line for line in lines if "interpolator" not in line]
        if interpolation:
            others.insert(0, f"{len(interpolation)} ERROR lines from rasa.core.nlg.interpolator "
                             "(response placeholders that only Garda fills)")
        note.log_problems = others


# -- the page -----------------------------------------------------------------------------


def fmt_s(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "no answer"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def fmt_n(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def goals(done: dict[str, Deployed]) -> list[str]:
    lines = ["| goal | deployment | measured | result |", "|---|---|---|---|"]
    for key in ("embedded", "servers", "workers", "gateway"):
        ack = next((a for a in done[key].acks if a.rate == ACK_GOAL_RATE), None) \
            if key in done else None
        if ack is None:
            continue
        ok = ack.p99 <= ACK_GOAL_P99 and ack.failed == 0
        extra = f"; {ack.failed} not acknowledged" if ack.failed else ""
        lines.append(f"| webhook acknowledgement p99 <= {ACK_GOAL_P99 * 1000:.0f} ms at "
                     f"{ACK_GOAL_RATE}/s | {SHORT[key]} | p99 {fmt_s(ack.p99)} (sent at "
                     f"{ack.achieved:.0f}/s, acknowledged at {ack.acked_rate:.0f}/s{extra}) "
                     f"| {met(ok)} |")
    for key in ("embedded", "servers", "workers"):
        run = next((r for r in done[key].runs if r.rate == E2E_GOAL_RATE), None) \
            if key in done else None
        if run is None:
            continue
        ok = run.p(95) <= E2E_GOAL_P95 and run.failed == 0 and run.missing == 0
        if math.isinf(run.p(95)):
            measured = (f"p95 not reached: {run.missing:,} of {run.sent:,} messages had no "
                        f"reply {GRACE_TEXT}; p50 {fmt_s(run.p(50))}")
        else:
            measured = f"p95 {fmt_s(run.p(95))}"
        lines.append(f"| end to end p95 <= {E2E_GOAL_P95 * 1000:.0f} ms at {E2E_GOAL_RATE}/s "
                     f"| {SHORT[key]} | {measured} | {met(ok)} |")
    return lines


def summary(done: dict[str, Deployed]) -> list[str]:
    """Plain numbers read off the tables below."""
    garda = [k for k in ("embedded", "servers", "workers", "gateway") if k in done]
    lines = []
    acked = [f"{SHORT[k]} {max(a.acked_rate for a in done[k].acks):.0f}/s" for k in garda
             if done[k].acks]
    if acked:
        lines.append("- Webhooks acknowledged per second, the most in any burst: "
                     + "; ".join(acked) + ".")
    answered = [f"{SHORT[k]} {max(r.answered_rate for r in done[k].runs + done[k].steps):.0f}/s"
                for k in [*garda, "rasa"] if k in done and done[k].runs]
    if answered:
        lines.append("- Messages answered per second, the most in any end-to-end run or step "
                     "(from the first message sent to the last reply in): "
                     + "; ".join(answered) + ".")
    cpu = []
    for k in [*garda, "rasa"]:
        if k in done and (done[k].runs or done[k].acks):
            most = max(x.cpu.measured for x in done[k].everything())
            cpu.append(f"{SHORT[k]} {most:.0f}%")
    if cpu:
        lines.append("- The most CPU the measured processes used in one run, in % of one core "
                     "(the machine has 200%): " + "; ".join(cpu) + ".")
    failed = [f"{SHORT[k]} {sum(x.failed for x in done[k].everything()):,}"
              for k in garda if done[k].runs or done[k].acks]
    if failed:
        lines.append("- Webhooks not acknowledged with a 200 (all runs): " + "; ".join(failed)
                     + ". The same reply body sent twice to one citizen: "
                     + "; ".join(f"{SHORT[k]} {done[k].doubled}" for k in garda
                                 if done[k].runs) + ".")
    return lines


def render(done: dict[str, Deployed], plan: Plan, started: dt.datetime,
           wall: float) -> str:
    quick = " --quick" if plan.quick else ""
    lines = [
        "## Gateway: acknowledgement and end-to-end latency",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `make bench-gateway` "
        f"(`{COMMAND}{quick}`, {wall / 60:.0f} min) on: {machine()}.",
    ]
    if plan.quick:
        lines += ["", "**Quick run (`--quick`): every rate held for about 10 s only; for "
                  "development, not for quoting.**"]
    lines += [
        "",
        "How it was measured:",
        "",
        "- **One machine, loopback only.** The load generator, the WhatsApp Graph API stub "
        "that receives Garda's replies (`tests/stubs/whatsapp.py`, served by uvicorn in a "
        "thread of the benchmark's own process), PostgreSQL, Redis and Garda all share the "
        "same 2 cores: whatever the generator and the stub use is taken from Garda, so "
        "these numbers are lower than on a server that only runs Garda.",
        "- **Open loop.** An asyncio + aiohttp generator (pooled keep-alive connections, up "
        f"to {CONNECTIONS}) sends each request at its scheduled time whatever the earlier "
        "ones got back; bodies and signatures are computed before the timed part. "
        "*Achieved* is the rate at which requests actually went out; *generator lag* is "
        "how late the generator itself issued them (p99). Latency is counted from the moment "
        "a request was issued, waiting for a free pooled connection included; a request "
        f"unanswered after {REQUEST_TIMEOUT:.0f} s counts as failed.",
        "- **Messages.** Signed WhatsApp Cloud API webhooks (`text_message`, "
        "`X-Hub-Signature-256` from the stub's app secret), one message per citizen "
        f"(a new wa_id each), texts cycling through {len(QUESTIONS)} citizen questions "
        "written for this benchmark (`cara bikin ktp gimana min`, `jam buka dukcapil hari "
        "sabtu`, `cek bansos dimana ya`, ...). Each deployment answers "
        f"{WARMUP} messages before anything is measured.",
        "- **Deployments**, each started fresh: "
        f"*{SHORT['embedded']}*: `garda run` with its defaults; "
        f"*{SHORT['servers']}*: `garda run` with `GARDA_DATABASE_URL` (PostgreSQL) and "
        f"`GARDA_REDIS_URL`; *{SHORT['workers']}*: `garda run --role gateway` and "
        f"{WORKERS} × `garda run --role worker`, started together, each its own process; "
        f"*{SHORT['gateway']}*: `garda run --role gateway` with no worker process at all, "
        "for the acknowledgement bursts only: the webhook path (check, store, enqueue) "
        "with the cores to itself. Garda's settings are the defaults "
        "(`GARDA_WORKER_CONCURRENCY` 16 conversations in flight per worker). PostgreSQL "
        "and Redis are private servers (`tests/servers.py`; PostgreSQL with fsync off). "
        "On each deployment, in this order: the step search (PostgreSQL deployments), the "
        "end-to-end runs, the acknowledgement bursts.",
        "- **End to end**: from issuing the webhook to the reply's arrival at the Graph API "
        f"stub (its first `/messages` call for that wa_id). *Missing*: no reply "
        f"{plan.grace:.0f} s after the last message of the run was sent. *Backlog*: Garda's "
        "`garda_queue_depth` (messages stored but not yet decided, counted in SQL), read "
        "from `/metrics` every second; between runs the benchmark waits (at most "
        f"{plan.drain:.0f} s) for it to reach 0. *Brain*: mean decide time from Garda's "
        "`garda_brain_seconds` histogram over the run (waiting for the brain's thread "
        "included).",
        "- **Stock Rasa** as the reference: `python -m rasa run --model models/garda.tar.gz "
        "--credentials <rest:> --port P` (same model, same custom components, run from the "
        "project root), messages POSTed as `{\"sender\", \"message\"}` to "
        "`/webhooks/rest/webhook`, which answers synchronously: its latency is the response "
        "time, and a failed or empty answer counts as failed. Behind the REST channel there "
        "is no database, queue or outbox (trackers stay in memory) and no platform to send "
        "to.",
        "- **Memory**: peak RSS (VmHWM) of the Garda processes, MB (gateway + workers), "
        "or of the Rasa process, each with its child processes, as of the end of each run. "
        "**CPU**: CPU time used during "
        "the run by Garda's processes (or Rasa's), children included, by the benchmark's own "
        "process "
        "(generator and Graph API stub) and by the rest of the machine (PostgreSQL, Redis, "
        "anything else running), as percentages of one core: the machine has 200%.",
        "",
        "### Goals",
        "",
        *goals(done),
        "",
        "In numbers:",
        "",
        *summary(done),
    ]
    acks = [a for d in done.values() for a in d.acks]
    if acks:
        lines += [
            "",
            f"### Webhook acknowledgement, bursts of {plan.ack_seconds:.0f} s",
            "",
            "After the end-to-end runs on the same deployment, in ascending order "
            f"{plan.ack_pause:.0f} s apart, to the process that takes the webhooks (with "
            "separate workers: the gateway process). Garda's workers keep answering what "
            "came before while the bursts arrive (they decide far fewer messages per second "
            "than these rates), as they would in a real burst: *backlog at start* shows how "
            "much was still waiting. *Sent*: the rate the generator reached; *acknowledged*: "
            "200s per second from the first request to the last 200. *Server* is Garda's own "
            "mean from its `garda_webhook_ack_seconds` histogram.",
            "",
            "| deployment | offered | sent | acknowledged | requests | p50 | p99 | max "
            "| not 200 | generator lag p99 | server mean | backlog at start "
            "| CPU % Garda / bench / rest | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for a in acks:
            failures = f"{a.failed} ({a.failures})" if a.failed else "0"
            lines.append(
                f"| {SHORT[a.deployment]} | {a.rate}/s | {a.achieved:.0f}/s | "
                f"{a.acked_rate:.0f}/s | {a.sent:,} | "
                f"{fmt_s(a.p50)} | {fmt_s(a.p99)} | {fmt_s(a.worst)} | {failures} | "
                f"{fmt_s(a.lag_p99)} | {fmt_ms(a.server_mean_ms)} | {fmt_n(a.backlog_start)} "
                f"| {a.cpu} | {a.rss} |")
    runs = [r for key in DEPLOYMENTS if key in done for r in done[key].runs]
    if runs:
        lines += [
            "",
            f"### End to end, {plan.e2e_seconds:.0f} s at each rate, Garda and stock Rasa",
            "",
            "*Sent*: the rate the generator reached; *answered*: replies (Rasa: answers) per "
            "second from the first message to the last reply in; *ack p99*: Garda's webhook "
            "acknowledgement during the run; *failed*: webhooks not acknowledged with a 200 "
            "(Rasa: requests failed or answered empty).",
            "",
            "| deployment | offered | sent | answered | messages | p50 | p95 | p99 | ack p99 "
            "| failed | missing | backlog max / end | brain mean | CPU % Garda / bench / rest "
            "| peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in runs:
            failures = f"{r.failed} ({r.failures})" if r.failed else "0"
            if r.slow_acks:
                failures += f"; Garda timed {r.slow_acks} acknowledgements at over 5 s"
            missing = "n/a" if r.deployment == "rasa" else f"{r.missing:,}"
            backlog_cell = ("n/a" if r.deployment == "rasa"
                            else f"{fmt_n(r.backlog_max)} / {fmt_n(r.backlog_end)}")
            lines.append(
                f"| {SHORT[r.deployment]} | {r.rate}/s | {r.achieved:.1f}/s | "
                f"{r.answered_rate:.1f}/s | {r.sent:,} | "
                f"{fmt_s(r.p(50))} | {fmt_s(r.p(95))} | {fmt_s(r.p(99))} | {fmt_s(r.ack_p99)} | "
                f"{failures} | "
                f"{missing} | {backlog_cell} | {fmt_ms(r.brain_ms)} | {r.cpu} | {r.rss} |")
        lines += ["", "*no answer*: the percentile falls among messages that got no reply "
                  "(Garda: missing; Rasa: failed)."]
    steps = [(name, done[name].steps) for name in ("servers", "workers")
             if name in done and done[name].steps]
    if steps:
        lines += [
            "",
            "### Highest rate sustained without a growing queue",
            "",
            f"Steps of {plan.step_seconds:.0f} s at "
            + ", ".join(f"{r}" for r in STEP_RATES) + " messages per second, stopping at the "
            "first step not sustained. A step is sustained when every webhook got a 200, the "
            f"generator reached 95% of the rate, every reply arrived within {STEP_GRACE:.0f} "
            f"s of the step's last message, replies came at most {STEP_LATE:.0f} s after "
            "their message at p95, and the replies to the step's last quarter at p95 were no "
            f"later than max({STEP_GROWTH:.0f} s, twice the first quarter's) (a queue that "
            "grows shows as rising latency).",
            "",
            "| deployment | highest sustained | steps (p95; answered/s; backlog max) |",
            "|---|---|---|",
        ]
        for name, results in steps:
            best = max((r.rate for r in results if r.sustained), default=None)
            cells = []
            for r in results:
                state = "ok" if r.sustained else f"not sustained: {r.verdict}"
                cells.append(f"{r.rate}/s {state} ({fmt_s(r.p(95))}; {r.answered_rate:.0f}/s; "
                             f"{fmt_n(r.backlog_max)})")
            top = "none" if best is None else f"{best}/s"
            if best is not None and best == STEP_RATES[-1]:
                top += " (the highest step tried)"
            lines.append(f"| {SHORT[name]} | {top} | {'; '.join(cells)} |")
    lines += ["", "### Start-up, stores and logs", ""]
    for key in DEPLOYMENTS:
        if key not in done:
            continue
        note = done[key]
        if note.error and not note.ready_s:
            lines.append(f"- {SHORT[key]}: **not measured: {note.error}**")
            continue
        parts = [f"ready after {note.ready_s:.0f} s", f"peak RSS {note.rss or 'n/a'} MB"]
        if note.counts:
            parts.append(f"rows at the end (after the bursts, not drained): {note.counts}")
        problems = note.log_problems
        if problems:
            shown = "; ".join(f"`{p[:160]}`" for p in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            parts.append(f"log lines at WARNING or above: {len(problems)}: {shown}{more}")
        else:
            parts.append("no log lines at WARNING or above")
        if note.error:
            parts.append(f"**stopped early: {note.error}**")
        lines.append(f"- {SHORT[key]}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the gateway markers of ``path``; leave the rest as it is."""
    write_marked_section(path, GATEWAY_START, GATEWAY_END, section)


# -- main ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    say(f"got {signal.Signals(signum).name}")
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true",
                        help="about 10 s per rate instead of 60 s (for development)")
    parser.add_argument("--budget", type=float, default=28 * 60,
                        help="seconds; phases that would start after this are skipped "
                             "(default: 28 min)")
    parser.add_argument("--only", default=",".join(DEPLOYMENTS),
                        help=f"comma-separated subset of {', '.join(DEPLOYMENTS)}")
    args = parser.parse_args(argv)
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = set(only) - set(DEPLOYMENTS)
    if unknown:
        parser.error(f"unknown deployment(s): {', '.join(sorted(unknown))}")
    plan = Plan(quick=args.quick)
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    ensure_model_fresh()
    # One run at a time: two would share the cores (and this folder) and spoil each other.
    lock = (state_dir() / "bench-gateway.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another `python -m bot.bench_gateway` is running on this machine; "
              "wait for it to finish", file=sys.stderr)
        return 1
    work = state_dir() / "bench-gateway"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = dt.datetime.now(dt.timezone.utc)
    begun = time.monotonic()
    budget = Budget(args.budget)
    done: dict[str, Deployed] = {}
    say(f"gateway benchmark{' (quick)' if plan.quick else ''}: {', '.join(only)}; "
        f"logs in {work}")
    try:
        with contextlib.ExitStack() as stack:
            postgres: PostgresServer | None = None
            if {"servers", "workers", "gateway"} & set(only):
                postgres = PostgresServer()
                stack.callback(_quietly, postgres.cleanup)
                postgres.start()
            for key in only:
                note = done[key] = Deployed(key)
                try:
                    if key == "rasa":
                        bench_rasa(plan, work, note, budget)
                    else:
                        bench_garda(key, plan, work, postgres, note, budget)
                except Exception as error:  # recorded on the page; the others still run
                    first = (str(error).splitlines() or [""])[0][:300]
                    note.error = f"{type(error).__name__}: {first}"
                    say(f"{key}: FAILED: {error}")
                    if not isinstance(error, (RuntimeError, TimeoutError, OSError,
                                              ServerUnavailable)):
                        traceback.print_exc()
                for line in note.log_problems[:20]:
                    say(f"  log: {line}")
                if len(note.log_problems) > 20:
                    say(f"  log: ... {len(note.log_problems) - 20} more")
    except KeyboardInterrupt:
        say("interrupted: every process started here has been stopped; nothing written")
        return 130
    wall = time.monotonic() - begun
    write_section(Path(args.out), render(done, plan, started, wall))
    say(f"wrote the gateway section of {args.out} ({wall / 60:.1f} min)")
    return 0


def _quietly(stop: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        stop()


if __name__ == "__main__":
    sys.exit(main())
