"""Private PostgreSQL and Redis servers for the tests.

Each server runs from the system binaries (Debian packages `postgresql` and `redis-server`,
installed by scripts/setup.sh) on a free port of 127.0.0.1, with its data in a temporary
directory removed on stop. No system service is used or needed.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

START_TIMEOUT = 10.0


class ServerUnavailable(RuntimeError):
    """The server's binaries (or the user to run them as) are not installed here."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class RedisServer:
    """`redis-server` without persistence on a private port; `restart()` keeps the port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable(
                "redis-server not found on PATH (install the 'redis-server' package)"
            )
        self.binary = binary
        self.port = free_port()
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="garda-redis-"))
            atexit.register(self.cleanup)
        self._log = self.dir / "redis.log"
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1,
                             socket_connect_timeout=1)
        try:
            while True:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self._proc.returncode}:\n"
                        + (_tail(self._log) if self._log else "")
                    )
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"redis-server did not answer PING on port {self.port} within "
                        f"{START_TIMEOUT:.0f} s:\n" + (_tail(self._log) if self._log else "")
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> RedisServer:
        """Stop, then start again on the same port (the data is gone: no persistence)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _version_key(bindir: str) -> tuple[int, ...]:
    version = Path(bindir).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_postgres_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres: the highest Debian version under
    /usr/lib/postgresql, else the one on PATH."""
    tools = ("initdb", "pg_ctl", "postgres")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, tool), os.X_OK) for tool in tools):
            return Path(bindir)
    initdb = shutil.which("initdb")
    if initdb is not None:
        bindir = os.path.dirname(initdb)
        if all(os.access(os.path.join(bindir, tool), os.X_OK) for tool in tools):
            return Path(bindir)
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under "
        "/usr/lib/postgresql/*/bin or on PATH (install the 'postgresql' package)"
    )


class PostgresServer:
    """A throwaway PostgreSQL cluster (user `garda`, trust auth) on a private port.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
    system user (created by the Debian package) and its commands run through `runuser`.
    """

    USER = "garda"
    _DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

    def __init__(self) -> None:
        self.bindir = find_postgres_bindir()
        self._as_user: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root, but there is no 'postgres' system user to run "
                    "PostgreSQL as (install the 'postgresql' package)"
                ) from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ServerUnavailable("running as root, but 'runuser' (util-linux) is missing")
            self._as_user = [runuser, "-u", "postgres", "--"]
            self._owner = (entry.pw_uid, entry.pw_gid)
        self.port = free_port()
        self.dir: Path | None = None
        self._started = False

    @property
    def data(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def sockdir(self) -> Path:
        assert self.dir is not None
        return self.dir / "sock"

    @property
    def log(self) -> Path:
        assert self.dir is not None
        return self.dir / "postgres.log"

    @property
    def running(self) -> bool:
        return self._started

    def _run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert self.dir is not None
        return subprocess.run(
            [*self._as_user, str(self.bindir / tool), *args],
            cwd=self.dir, capture_output=True, text=True, timeout=timeout, check=False,
        )

    def _initdb(self) -> None:
        common = ["-D", str(self.data), "-A", "trust", "-U", self.USER, "--no-sync", "-E", "UTF8"]
        result = self._run("initdb", *common, "--locale=C.UTF-8")
        if result.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            first = result
            result = self._run("initdb", *common, "--locale=C")
            if result.returncode != 0:
                raise RuntimeError(
                    "initdb failed with --locale=C.UTF-8:\n" + first.stderr[-2000:]
                    + "\nand with --locale=C:\n" + result.stderr[-2000:]
                )

    def start(self) -> PostgresServer:
        if self._started:
            return self
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="garda-pg-"))
            atexit.register(self.cleanup)
            self.sockdir.mkdir()
            if self._owner is not None:
                for path in (self.dir, self.sockdir):
                    os.chown(path, *self._owner)
            self._initdb()
        options = (
            f"-p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(int(START_TIMEOUT) * 3), "start", timeout=START_TIMEOUT * 3 + 10,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}):\n{result.stdout}{result.stderr}\n"
                + _tail(self.log)
            )
        self._started = True
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        result = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")

    def cleanup(self) -> None:
        """Stop the server and remove its cluster."""
        try:
            self.stop()
        finally:
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.USER,
                                dbname="postgres", connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement)
        finally:
            conn.close()

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a unique name when none is given); return its SQLAlchemy URL."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        if not self._DB_NAME.match(name):
            raise ValueError(f"not a plain lower-case database name: {name!r}")
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection still open to it."""
        if not self._DB_NAME.match(name):
            raise ValueError(f"not a plain lower-case database name: {name!r}")
        with contextlib.suppress(Exception):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
