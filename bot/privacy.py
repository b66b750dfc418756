"""Masking personal data and secrets wherever Garda writes text it did not author (logs).

NIK and KK numbers (16 digits), phone numbers, e-mail addresses and platform tokens are
replaced by labels. Used by the logging filter installed in :mod:`bot.logs`, so that no
library's log line (httpx prints request URLs, which carry the Telegram token) leaks them.
"""

from __future__ import annotations

import logging
import re

from bot.nlu.normalizer import _EMAIL, _NIK, _PHONE

# Telegram bot tokens ("123456:AA..."), also inside Bot API URLs (".../bot123456:AA.../").
_TELEGRAM_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}")
# Bearer tokens and other long secrets after a key word.
_BEARER = re.compile(r"(?i)(bearer\s+|access_token=|token=|secret=)[A-Za-z0-9._~+/=-]{8,}")
# WhatsApp ids are phone numbers without "+" (6281234567890).
_WA_ID = re.compile(r"(?<!\d)62\d{8,13}(?!\d)")


def mask(text: str) -> str:
    text = _TELEGRAM_TOKEN.sub("[token]", text)
    text = _BEARER.sub(r"\1[secret]", text)
    text = _EMAIL.sub("[email]", text)
    text = _NIK.sub("[nik/kk]", text)
    text = _WA_ID.sub("[telepon]", text)
    return _PHONE.sub("[telepon]", text)


class RedactingFilter(logging.Filter):
    """Rewrites every record's message (arguments filled in) with :func:`mask`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break logging
            message = str(record.msg)
        masked = mask(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True
