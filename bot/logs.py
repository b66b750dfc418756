"""Logging set-up shared by every entry point (CLI, benchmarks, tests).

Rasa emits a structlog event for every parsed message, with the message text, and by
default writes it to stdout. Garda routes those events through the standard logging
module at WARNING (INFO with --verbose) on stderr, so message text is not logged and
stdout stays clean for `garda triage`'s JSON.
"""

from __future__ import annotations

import logging
import os
import sys

NOISY = ("rasa", "tensorflow", "absl", "matplotlib", "h5py", "asyncio")


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
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(level)
