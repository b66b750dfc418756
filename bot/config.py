"""One configuration module: every setting Garda reads, from the environment or a secrets file.

Secrets (tokens, app secrets, verify tokens, webhook secrets) are held in
:class:`starlette.datastructures.Secret`, which prints as ``Secret('**********')``, so a
settings object can be logged or shown in a traceback without leaking them.

A secrets file (``GARDA_SECRETS_FILE``, lines ``NAME=value``, ``#`` comments) supplies any
``GARDA_*`` value that the environment does not; the environment wins. Mount it read-only
from the platform's secret store rather than putting tokens on a command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import Secret

from bot.paths import state_dir

DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
DEFAULT_WHATSAPP_API_URL = "https://graph.facebook.com/v21.0"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it (never its value)."""


def read_secrets_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = ""
    redis_url: str | None = None
    telegram_token: Secret | None = None
    telegram_webhook_secret: Secret | None = None
    telegram_api_url: str = DEFAULT_TELEGRAM_API_URL
    public_url: str | None = None
    whatsapp_token: Secret | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_app_secret: Secret | None = None
    whatsapp_verify_token: Secret | None = None
    whatsapp_api_url: str = DEFAULT_WHATSAPP_API_URL
    # The message template (approved by Meta and by the institution) that may be sent when a
    # reply falls outside WhatsApp's 24-hour window: (name, language code). None: such a
    # reply is not sent, and its outbox row says why.
    whatsapp_template: tuple[str, str] | None = None
    # Conversation content (message text, replies) is deleted after this many days; the
    # platform message ids that guard against replays are kept at least 8 days.
    retention_days: int = 30
    # Concurrent conversations one worker process handles (the brain itself runs one
    # message at a time per process; the rest is waiting on the platforms).
    worker_concurrency: int = 16
    # Telegram's published limits: ~30 messages/s overall, 1/s per chat, 20/min per group.
    telegram_global_rate: float = 30.0
    telegram_chat_rate: float = 1.0
    telegram_chat_burst: int = 3
    telegram_group_per_minute: int = 20
    max_body_bytes: int = 256 * 1024
    # The admins' Telegram group (bot/admin/telegram_group.py): its chat id (usually
    # negative; None: no group), and the ticket priorities posted there (1 is most urgent:
    # tickets whose priority is at most this one).
    telegram_admin_chat_id: int | None = None
    telegram_admin_max_priority: int = 2
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_token is not None

    @property
    def whatsapp_enabled(self) -> bool:
        return self.whatsapp_token is not None

    @property
    def any_channel(self) -> bool:
        return self.telegram_enabled or self.whatsapp_enabled

    def problems(self) -> list[str]:
        """What keeps the configured channels from running safely (names, never values)."""
        found: list[str] = []
        if self.telegram_enabled and self.public_url and not self.telegram_webhook_secret:
            found.append(
                "GARDA_PUBLIC_URL is set (Telegram webhook mode) but "
                "GARDA_TELEGRAM_WEBHOOK_SECRET is not: Telegram's webhook would be unauthenticated"
            )
        if self.whatsapp_enabled:
            for name, value in (
                ("GARDA_WHATSAPP_PHONE_NUMBER_ID", self.whatsapp_phone_number_id),
                ("GARDA_WHATSAPP_APP_SECRET", self.whatsapp_app_secret),
                ("GARDA_WHATSAPP_VERIFY_TOKEN", self.whatsapp_verify_token),
            ):
                if not value:
                    found.append(f"GARDA_WHATSAPP_TOKEN is set but {name} is not")
        return found


def _int(values: Mapping[str, str], name: str, default: int) -> int:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None


def _float(values: Mapping[str, str], name: str, default: float) -> float:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(str(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None


def default_database_url() -> str:
    return f"sqlite:///{state_dir() / 'garda.db'}"


def load(environ: Mapping[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    secrets_file = env.get("GARDA_SECRETS_FILE")
    values: dict[str, str] = {}
    if secrets_file:
        values.update(read_secrets_file(Path(secrets_file)))
    values.update({k: v for k, v in env.items() if k.startswith("GARDA_")})

    def text(name: str) -> str | None:
        value = values.get(name, "").strip()
        return value or None

    template = None
    raw_template = text("GARDA_WHATSAPP_TEMPLATE")
    if raw_template:
        name, _, language = raw_template.partition(":")
        if not name.strip() or not language.strip():
            raise ConfigError(
                "GARDA_WHATSAPP_TEMPLATE must be NAME:LANGUAGE (e.g. garda_followup:id)")
        template = (name.strip(), language.strip())
    retention = _int(values, "GARDA_RETENTION_DAYS", 30)
    if retention < 1:
        raise ConfigError("GARDA_RETENTION_DAYS must be at least 1")
    return Settings(
        host=text("GARDA_HOST") or "127.0.0.1",
        port=_int(values, "GARDA_PORT", 8080),
        database_url=text("GARDA_DATABASE_URL") or default_database_url(),
        redis_url=text("GARDA_REDIS_URL"),
        telegram_token=_secret(text("GARDA_TELEGRAM_TOKEN")),
        telegram_webhook_secret=_secret(text("GARDA_TELEGRAM_WEBHOOK_SECRET")),
        telegram_api_url=(text("GARDA_TELEGRAM_API_URL") or DEFAULT_TELEGRAM_API_URL).rstrip("/"),
        public_url=(text("GARDA_PUBLIC_URL") or "").rstrip("/") or None,
        whatsapp_token=_secret(text("GARDA_WHATSAPP_TOKEN")),
        whatsapp_phone_number_id=text("GARDA_WHATSAPP_PHONE_NUMBER_ID"),
        whatsapp_app_secret=_secret(text("GARDA_WHATSAPP_APP_SECRET")),
        whatsapp_verify_token=_secret(text("GARDA_WHATSAPP_VERIFY_TOKEN")),
        whatsapp_api_url=(text("GARDA_WHATSAPP_API_URL") or DEFAULT_WHATSAPP_API_URL).rstrip("/"),
        whatsapp_template=template,
        retention_days=retention,
        worker_concurrency=max(1, _int(values, "GARDA_WORKER_CONCURRENCY", 16)),
        telegram_global_rate=_float(values, "GARDA_TELEGRAM_GLOBAL_RATE", 30.0),
        telegram_chat_rate=_float(values, "GARDA_TELEGRAM_CHAT_RATE", 1.0),
        telegram_chat_burst=max(1, _int(values, "GARDA_TELEGRAM_CHAT_BURST", 3)),
        telegram_group_per_minute=max(1, _int(values, "GARDA_TELEGRAM_GROUP_PER_MINUTE", 20)),
        max_body_bytes=_int(values, "GARDA_MAX_BODY_BYTES", 256 * 1024),
        telegram_admin_chat_id=_int(values, "GARDA_TELEGRAM_ADMIN_CHAT_ID", 0) or None,
        telegram_admin_max_priority=_int(values, "GARDA_TELEGRAM_ADMIN_MAX_PRIORITY", 2),
    )
