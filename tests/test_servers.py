"""The private PostgreSQL and Redis servers of tests/servers.py work."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa
from servers import PostgresServer, RedisServer  # tests/servers.py

pytestmark = pytest.mark.servers


def test_redis_set_get_and_restart_on_same_port(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.set("greeting", "halo")
        assert client.get("greeting") == b"halo"
        port = redis_server.port

        redis_server.stop()
        assert not redis_server.running
        with pytest.raises(redis.exceptions.ConnectionError):
            client.ping()

        redis_server.restart()
        assert redis_server.running
        assert redis_server.port == port
        assert redis_server.url == redis_url
        assert client.ping()
        assert client.get("greeting") is None  # no persistence: the data went with the server
    finally:
        client.close()


def test_postgres_database_select_and_insert(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            conn.execute(sa.text("CREATE TABLE notes (id serial PRIMARY KEY, body text)"))
            conn.execute(sa.text("INSERT INTO notes (body) VALUES (:body)"), {"body": "halo"})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT body FROM notes")).scalars().all() == ["halo"]
    finally:
        engine.dispose()


def test_postgres_databases_are_independent(postgres_server: PostgresServer) -> None:
    first = sa.create_engine(postgres_server.create_database())
    second = sa.create_engine(postgres_server.create_database())
    try:
        with first.begin() as conn:
            conn.execute(sa.text("CREATE TABLE only_here (x int)"))
            conn.execute(sa.text("INSERT INTO only_here VALUES (1)"))
        with second.connect() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass('only_here')")).scalar()
            assert exists is None
        assert first.url.database != second.url.database
    finally:
        first.dispose()
        second.dispose()
