"""Where the project's files are: the repository root holds config.yml and domain.yml."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def project_root() -> Path:
    """The Garda project folder: ``GARDA_HOME`` if set, else the checkout this code is in."""
    home = os.environ.get("GARDA_HOME")
    if home:
        return Path(home).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "domain.yml").is_file():
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "domain.yml").is_file() and (candidate / "config.yml").is_file():
            return candidate
    return here


def state_dir() -> Path:
    """Local runtime state (built spaCy pipeline, SQLite file); never committed."""
    path = project_root() / ".garda"
    path.mkdir(exist_ok=True)
    return path


def models_dir() -> Path:
    return project_root() / "models"


def registry_dir() -> Path:
    """Trained model versions and which one is active (bot/trainer/registry.py):
    ``GARDA_REGISTRY_DIR`` if set (tests, a shared volume), else ``models/registry``."""
    folder = os.environ.get("GARDA_REGISTRY_DIR")
    return Path(folder).resolve() if folder else models_dir() / "registry"


@contextlib.contextmanager
def in_project_root() -> Iterator[Path]:
    """Run a block from the project root.

    config.yml names the spaCy pipeline by a path relative to the root (Rasa's SpacyNLP
    loads it with ``spacy.load(path)``), so Rasa is trained and loaded from there.
    """
    previous = Path.cwd()
    root = project_root()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(previous)
