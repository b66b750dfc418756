#!/usr/bin/env bash
# Set up Garda: find a Python 3.10, make .venv, install the pinned dependencies, and train
# the model when it is missing or older than its data. Safe to run again: it only does
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests start their own private PostgreSQL and Redis servers (tests/servers.py), so the
# server binaries must be installed, and CI is a clean machine: install them when we can.
# Only the binaries are used. Where services may start, Debian's packages also create and
# start a "main" cluster on port 5432 and a redis service on 6379; the tests never use them
# (they pick free ports and their own data directories), so it does not matter if they run.
missing_server_packages() {
    local missing=""
    command -v redis-server >/dev/null 2>&1 || missing="redis-server"
    if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
        && ! command -v initdb >/dev/null 2>&1; then
        missing="${missing:+$missing }postgresql"
    fi
    echo "$missing"
}

MISSING_SERVERS=$(missing_server_packages)
if [ -n "$MISSING_SERVERS" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing $MISSING_SERVERS (the tests start private servers from them)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            redis-server postgresql >/dev/null
    else
        # Not fatal: the rest of Garda runs without them; only the server tests need them.
        echo "Missing system packages: $MISSING_SERVERS." >&2
        echo "The tests that need real PostgreSQL/Redis servers will be skipped unless they are" >&2
        echo "installed (Debian/Ubuntu: sudo apt-get install redis-server postgresql)." >&2
    fi
fi

# The admin console's browser test (tests/test_console_browser.py) drives a headless
# Chromium through chromedriver, both from Debian's packages at these fixed paths (Selenium
# is pointed at them, so it never downloads a browser or a driver).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing chromium chromium-driver (the admin console's browser test)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver >/dev/null
    else
        # Not fatal: only the browser test needs them.
        echo "Missing /usr/bin/chromium or /usr/bin/chromedriver: the admin console's browser" >&2
        echo "test will be skipped unless they are installed (Debian: sudo apt-get install" >&2
        echo "chromium chromium-driver)." >&2
    fi
fi

find_python() {
    local candidate
    for candidate in "${GARDA_PYTHON:-}" python3.10 \
        "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)/versions/3.10"*/bin/python3.10)" \
        "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
        [ -n "$candidate" ] || continue
        for exe in $candidate; do
            if command -v "$exe" >/dev/null 2>&1 && "$exe" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
                command -v "$exe"
                return 0
            fi
        done
    done
    return 1
}

stamp_of() { cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1; }

if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.garda-installed 2>/dev/null)" != "$(stamp_of)" ]; then
    PYTHON=$(find_python) || {
        echo "Garda needs Python 3.10 (Rasa 3.6 supports no newer Python)." >&2
        echo "Install it (for example 'pyenv install 3.10') or set GARDA_PYTHON=/path/to/python3.10." >&2
        exit 1
    }
    echo "Using $PYTHON ($("$PYTHON" --version))" >&2
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade 'pip<25' 'setuptools>=65,<70' wheel
    .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev]'
    stamp_of > .venv/.garda-installed
fi

.venv/bin/garda train
