"""The web app in process (no model: the gateway role): what it acknowledges and when.

End to end with the model and the platform stubs: test_gateway.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from servers import PostgresServer
from stubs import whatsapp as wa

from bot.channels.whatsapp import WhatsAppChannel
from bot.config import Settings
from bot.gateway.app import create_app
from bot.gateway.runtime import Runtime
from bot.store.db import Database
from bot.store.models import metadata
from bot.store.queue import InProcessQueue


def gateway_settings(database_url: str) -> Settings:
    return dataclasses.replace(
        wa.stub_settings("http://127.0.0.1:9"), database_url=database_url)


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    raw = wa.encode(body)
    return await client.post("/webhooks/whatsapp", content=raw, headers={
        "content-type": "application/json", "X-Hub-Signature-256": wa.sign(raw)})


@pytest.mark.servers
def test_database_down_answers_503_and_the_retry_is_kept_once(own_postgres: PostgresServer
                                                              ) -> None:
    url = own_postgres.create_database()
    settings = gateway_settings(url)
    db = Database(url)
    db.upgrade()
    runtime = Runtime(settings, db, InProcessQueue(), {"whatsapp": WhatsAppChannel(settings)},
                      role="gateway")
    app = create_app(settings, runtime)
    first = wa.text_message("6281200000701", "jam buka dukcapil")
    second = wa.text_message("6281200000701", "syarat akta lahir")

    async def scenario() -> list[int]:
        codes = []
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://garda") as client:
            codes.append((await post(client, first)).status_code)
            own_postgres.stop()
            try:
                codes.append((await post(client, second)).status_code)
                ready = await client.get("/readyz")
                codes.append(ready.status_code)
                assert ready.json()["database"].startswith("down")
            finally:
                own_postgres.start()
            # The platform delivers the refused webhook again, and a replay of the first.
            codes.append((await post(client, second)).status_code)
            codes.append((await post(client, first)).status_code)
            codes.append((await client.get("/readyz")).status_code)
        return codes

    assert asyncio.run(scenario()) == [200, 503, 503, 200, 200, 200]
    assert db.counts()["inbound"] == 2
    db.dispose()


def test_a_worker_process_does_not_take_webhooks(tmp_path) -> None:
    settings = gateway_settings(f"sqlite:///{tmp_path / 'g.db'}")
    db = Database(settings.database_url)
    db.upgrade()

    runtime = Runtime(settings, db, InProcessQueue(), {"whatsapp": WhatsAppChannel(settings)},
                      role="gateway")
    runtime.roles = {"worker"}  # as `garda run --role worker`, without loading a model
    app = create_app(settings, runtime)

    async def scenario() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://garda") as client:
            hook = await post(client, wa.text_message("6281200000702", "halo"))
            health = await client.get("/healthz")
        return hook.status_code, health.status_code

    assert asyncio.run(scenario()) == (404, 200)
    assert db.counts()["inbound"] == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.servers)])
def test_migrations_build_exactly_the_tables_the_code_uses(backend: str, tmp_path,
                                                           request: pytest.FixtureRequest
                                                           ) -> None:
    url = (f"sqlite:///{tmp_path / 'm.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    db = Database(url)
    db.upgrade()
    db.upgrade()  # a second start finds nothing to do
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert diff == []


@pytest.mark.servers
def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    import concurrent.futures

    def start() -> int:
        db = Database(postgres_url)
        try:
            db.upgrade()
            return 1
        finally:
            db.dispose()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(lambda _: start(), range(4))) == 4
