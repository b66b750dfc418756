"""Train the Rasa model when it is missing or older than its inputs.

"Older" is decided by content, not by file times: a SHA-256 over the config, the domain,
the training data, the NLU code and lexicons, and the versions of the libraries that shape
the model. The hash is stored beside the model in ``models/garda.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.paths import models_dir, project_root, state_dir

logger = logging.getLogger(__name__)

MODEL_NAME = "garda"
SPACY_DIR = ".garda/spacy-id"  # named by config.yml; relative to the project root
# Inputs of the model, relative to the project root.
# Rasa's training data. data/hoaxes/ is not: the hoax registry is read by the matcher at
# start-up, so adding or approving a hoax never retrains the model.
RASA_DATA = ("data/nlu", "data/rules")
HASHED_GLOBS = ("config.yml", "domain.yml", "data/nlu/**/*.yml", "data/rules/**/*.yml",
                "bot/nlu/*.py", "bot/nlu/lexicon/*")
HASHED_PACKAGES = ("rasa", "spacy", "spacy-lookups-data", "tensorflow", "numpy")
# Seeds and determinism for a reproducible training run.
TRAIN_ENV = {
    "PYTHONHASHSEED": "0",
    # No telemetry or crash reports leave a government machine.
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # Rasa's training cache keys on component config, not on our lexicon files: off.
    "RASA_MAX_CACHE_SIZE": "0",
}


def model_path() -> Path:
    return models_dir() / f"{MODEL_NAME}.tar.gz"


def meta_path() -> Path:
    return models_dir() / f"{MODEL_NAME}.json"


def input_files(root: Path | None = None) -> list[Path]:
    root = root or project_root()
    files = {p for pattern in HASHED_GLOBS for p in root.glob(pattern) if p.is_file()}
    return sorted(files)


def _named_inputs(root: Path, data_dir: Path | None) -> list[tuple[str, Path]]:
    """(name, file) of every input; with ``data_dir`` (laid out like ``data/``) its nlu/
    and rules/ stand in for the project's, under the same names, so that a copy of
    ``data/`` hashes like ``data/`` itself."""
    named = [(p.relative_to(root).as_posix(), p) for p in input_files(root)]
    if data_dir is None:
        return named
    named = [(n, p) for n, p in named if not n.startswith(tuple(f"{d}/" for d in RASA_DATA))]
    for folder in RASA_DATA:
        inner = data_dir / Path(folder).name
        named += [(f"{folder}/{p.relative_to(inner).as_posix()}", p)
                  for p in inner.glob("**/*.yml") if p.is_file()]
    return sorted(named)


def data_hash(root: Path | None = None, data_dir: Path | None = None) -> str:
    """``data_dir``: hash the training data in that folder (``nlu/``, ``rules/``) instead
    of the project's ``data/`` (the trainer's candidates, bot/trainer/)."""
    from importlib.metadata import version

    root = root or project_root()
    digest = hashlib.sha256()
    for name, path in _named_inputs(root, data_dir):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    for package in HASHED_PACKAGES:
        digest.update(f"{package}=={version(package)}\n".encode())
    return digest.hexdigest()


def stored_meta() -> dict[str, Any]:
    try:
        return json.loads(meta_path().read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def is_stale() -> bool:
    return not model_path().is_file() or stored_meta().get("data_hash") != data_hash()


def build_spacy_pipeline(target: Path | None = None) -> Path:
    """A blank Indonesian spaCy pipeline with the lookup lemmatizer, saved to disk.

    No model download: the tokenizer and its exceptions come with spaCy, the lemma table
    with spacy-lookups-data. Rasa's SpacyNLP loads it through ``model:`` in config.yml.
    """
    target = target or project_root() / SPACY_DIR
    if (target / "config.cfg").is_file():
        return target
    import spacy

    nlp = spacy.blank("id")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    nlp.meta["name"] = "garda_blank"
    target.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(target)
    return target


def rasa_train(config: Path | str, data: Path | str | Sequence[Path | str], out_dir: Path,
               name: str, quiet: bool = True) -> Path:
    """Run `rasa train` from the project root with Garda's seeds and settings.

    Returns the model archive; raises SystemExit when Rasa fails.
    """
    state_dir()
    build_spacy_pipeline()
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "rasa", "train", "--config", str(config), "--domain", "domain.yml",
        "--data", *(map(str, [data] if isinstance(data, (str, Path)) else data)),
        "--out", str(out_dir), "--fixed-model-name", name,
    ]
    result = subprocess.run(command, cwd=project_root(), env={**os.environ, **TRAIN_ENV},
                            check=False, stdout=subprocess.DEVNULL if quiet else None)
    if result.returncode != 0:
        raise SystemExit(f"rasa train failed with exit code {result.returncode}")
    return out_dir / f"{name}.tar.gz"


def train(force: bool = False, quiet: bool = False) -> bool:
    """Train if stale (or forced). Returns True when a new model was trained."""
    current = data_hash()
    if not force and model_path().is_file() and stored_meta().get("data_hash") == current:
        if not quiet:
            print(f"Model is up to date ({model_path()}).", file=sys.stderr)
        return False
    print(f"Training the Rasa model (data hash {current[:12]})...", file=sys.stderr)
    started = time.monotonic()
    trained = rasa_train("config.yml", RASA_DATA, models_dir(), f"{MODEL_NAME}-training", quiet)
    seconds = time.monotonic() - started
    os.replace(trained, model_path())
    meta = {
        "data_hash": current,
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(seconds, 1),
        "python": sys.version.split()[0],
    }
    meta_path().write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
    print(f"Trained in {seconds:.0f} s: {model_path()}", file=sys.stderr)
    return True
