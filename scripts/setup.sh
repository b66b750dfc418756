#!/usr/bin/env bash
# Set up Garda: find a Python 3.10, make .venv, install the pinned dependencies, and train
# the model when it is missing or older than its data. Safe to run again: it only does
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

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
