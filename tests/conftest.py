"""Shared fixtures. The Rasa model is trained at most once per test run (and not at all when
`make setup` already trained it for the current data): see bot.training."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from servers import PostgresServer, RedisServer, ServerUnavailable  # tests/servers.py

from bot import logs

Server = TypeVar("Server", RedisServer, PostgresServer)

logs.configure()

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def trained_model() -> Path:
    from bot import training

    training.train(quiet=True)
    return training.model_path()


@pytest.fixture(scope="session")
def brain(trained_model: Path):
    from bot.brain.pipeline import Brain

    return Brain.load(trained_model)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"external data not present at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


def _server_unavailable(reason: str) -> None:
    """Skip, or fail when GARDA_REQUIRE_SERVERS=1 (CI: server tests must never skip there)."""
    if os.environ.get("GARDA_REQUIRE_SERVERS") == "1":
        pytest.fail(f"GARDA_REQUIRE_SERVERS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _running(kind: Callable[[], Server]) -> Iterator[Server]:
    """Start a private server for a fixture (skip or fail where it is not installed)."""
    try:
        server = kind()
    except ServerUnavailable as exc:
        _server_unavailable(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server (no persistence) for the whole run; see tests/servers.py."""
    yield from _running(RedisServer)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the whole run; see tests/servers.py."""
    yield from _running(PostgresServer)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database of its own for each test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis server's URL, emptied (FLUSHALL) first, and started again if a test
    stopped it."""
    import redis

    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, for tests that stop and start the server."""
    yield from _running(PostgresServer)
