"""Settings: environment and secrets file, secrets never shown, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot import config
from bot.privacy import RedactingFilter, mask

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_the_environment_wins_over_the_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "garda.env"
    secrets.write_text(
        "# mounted from the secret store\n"
        f"GARDA_TELEGRAM_TOKEN={TOKEN}\n"
        "GARDA_WHATSAPP_VERIFY_TOKEN='from-file'\n"
        "GARDA_PORT=9000\n", "utf-8")
    settings = config.load({"GARDA_SECRETS_FILE": str(secrets), "GARDA_PORT": "8181",
                            "GARDA_TELEGRAM_API_URL": "http://127.0.0.1:9/"})
    assert str(settings.telegram_token) == TOKEN
    assert str(settings.whatsapp_verify_token) == "from-file"
    assert settings.port == 8181
    assert settings.telegram_api_url == "http://127.0.0.1:9"
    assert settings.database_url.startswith("sqlite:///") and settings.redis_url is None


def test_secrets_print_as_stars(tmp_path: Path) -> None:
    settings = config.load({"GARDA_TELEGRAM_TOKEN": TOKEN, "GARDA_WHATSAPP_APP_SECRET": "s3cr3t"})
    shown = repr(settings) + str(settings)
    assert TOKEN not in shown and "s3cr3t" not in shown
    assert "**********" in shown


@pytest.mark.parametrize("env, named", [
    ({"GARDA_PORT": "eighty"}, "GARDA_PORT"),
    ({"GARDA_RETENTION_DAYS": "0"}, "GARDA_RETENTION_DAYS"),
    ({"GARDA_WHATSAPP_TEMPLATE": "no-language"}, "GARDA_WHATSAPP_TEMPLATE"),
])
def test_malformed_settings_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(config.ConfigError, match=named):
        config.load(env)


def test_a_malformed_secrets_file_line_is_reported_without_its_value(tmp_path: Path) -> None:
    secrets = tmp_path / "garda.env"
    secrets.write_text(f"GARDA_PORT=1\n{TOKEN}\n", "utf-8")
    with pytest.raises(config.ConfigError) as raised:
        config.load({"GARDA_SECRETS_FILE": str(secrets)})
    assert ":2:" in str(raised.value) and TOKEN not in str(raised.value)


def test_unsafe_channel_settings_are_problems() -> None:
    webhook_without_secret = config.load({"GARDA_TELEGRAM_TOKEN": TOKEN,
                                          "GARDA_PUBLIC_URL": "https://garda.example.go.id"})
    assert any("GARDA_TELEGRAM_WEBHOOK_SECRET" in p for p in webhook_without_secret.problems())
    whatsapp = config.load({"GARDA_WHATSAPP_TOKEN": "x"})
    assert len(whatsapp.problems()) == 3
    polling = config.load({"GARDA_TELEGRAM_TOKEN": TOKEN})
    assert polling.problems() == [] and polling.any_channel


def test_personal_data_and_tokens_are_masked_in_any_log_line() -> None:
    line = (f"POST https://api.telegram.org/bot{TOKEN}/sendMessage to 6281234567890, "
            "NIK 3201 0123 4567 0001, HP 0812-3456-7890, mail budi.s@gmail.com, "
            "Authorization: Bearer EAAGm0PX4ZCpsBAKZA")
    masked = mask(line)
    for secret in (TOKEN, "6281234567890", "3201 0123 4567 0001", "0812-3456-7890",
                   "budi.s@gmail.com", "EAAGm0PX4ZCpsBAKZA"):
        assert secret not in masked
    assert "sendMessage" in masked and "[nik/kk]" in masked and "[telepon]" in masked

    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s",
                               ("POST", f"https://api.telegram.org/bot{TOKEN}/getMe"), None)
    assert RedactingFilter().filter(record)
    assert TOKEN not in record.getMessage() and "getMe" in record.getMessage()
