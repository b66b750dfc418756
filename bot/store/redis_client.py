"""One way to open Redis: with retries, so a restarted server costs a reconnect, not an error.

After Redis restarts, every pooled connection is stale; without a retry policy the first
command on each raises ``ConnectionError`` although the server is back.
"""

from __future__ import annotations

from typing import Any


def connect(url: str) -> Any:
    import redis.asyncio as redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    )
