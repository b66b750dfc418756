"""Logging set-up shared by every entry point (CLI, benchmarks, tests).

Rasa emits a structlog event for every parsed message, with the message text, and by
default writes it to stdout. Garda routes those events through the standard logging
module at WARNING (INFO with --verbose) on stderr, so message text is not logged and
stdout stays clean for `garda triage`'s JSON. Every handler masks NIK/KK numbers, phone
numbers, e-mail addresses and tokens (bot.privacy), whoever logs them.
"""

from __future__ import annotations

import logging
import os
import sys

NOISY = ("rasa", "tensorflow", "absl", "matplotlib", "h5py", "asyncio")
# They log every request URL at INFO; a Telegram Bot API URL carries the bot token.
QUIET_HTTP = ("httpx", "httpcore", "telegram", "urllib3", "uvicorn.access")


def configure(verbose: bool = False) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Rasa reports usage and crashes to its vendor unless told not to: never from Garda.
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    for name in QUIET_HTTP:
        logging.getLogger(name).setLevel(logging.WARNING)
    from bot.privacy import RedactingFilter

    # On the handlers, so records from every logger (libraries included) are masked.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(level)
