"""Every trained model version on disk, and which one Garda answers with.

    models/registry/                 (GARDA_REGISTRY_DIR overrides it)
        CURRENT                      the active id, replaced atomically
        history.jsonl                append-only: register, promote, rollback, refuse
        <id>/model.tar.gz            the Rasa archive
        <id>/safety.joblib           the fitted escalation classifier (bot/safety/triage.py)
        <id>/meta.json               who trained it, when, on which data, status and why
        <id>/metrics.json            figures on the locked test sets (bot/trainer/evaluate.py)
        <id>/report/                 report.html and its plots

Files, not SQL: the trainer's commands work whether the service runs or not, on a
machine without the database, and a version is one folder to copy or delete. An id is the
UTC time it was made plus the first characters of its data hash
(``20261126T122115Z-8fd78d71``), so ids sort by age and say which data made them.

The model that ``make setup`` trains (``models/garda.tar.gz``) is the *bootstrap*: Garda
answers with it while no CURRENT exists, and the first gate run registers it as an entry
to compare against. Workers watch CURRENT (:class:`ActiveWatch`) and swap models without
a restart (bot/gateway/runtime.py, bot/gateway/brain_process.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.paths import registry_dir

logger = logging.getLogger(__name__)

BOOTSTRAP = "bootstrap"
CURRENT = "CURRENT"
HISTORY = "history.jsonl"
LOCK = ".lock"
MODEL = "model.tar.gz"
SAFETY = "safety.joblib"
META = "meta.json"
METRICS = "metrics.json"
REPORT = "report"

# Statuses of an entry. Which entry is active is CURRENT's business, not a status.
TRAINING = "training"      # being trained or evaluated (or the run was killed)
FAILED = "failed"          # training failed; the folder holds no usable model
REGISTERED = "registered"  # usable, never gated (the bootstrap, a copy made by hand)
PASSED = "passed"          # passed the regression gate: may be promoted
REFUSED = "refused"        # refused by the gate; ``reason`` says why

PROMOTE, ROLLBACK, REFUSE, REGISTER = "promote", "rollback", "refuse", "register"
DEFAULT_POLL_SECONDS = 2.0
_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,80}$")


class RegistryError(Exception):
    """A registry action that cannot be done; the message says why."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def current_user() -> str:
    """Who is running the command: GARDA_USER, else the login name."""
    name = os.environ.get("GARDA_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def poll_seconds() -> float:
    """How often workers look at CURRENT (GARDA_MODEL_POLL_SECONDS, default 2 s)."""
    try:
        value = float(os.environ.get("GARDA_MODEL_POLL_SECONDS", DEFAULT_POLL_SECONDS))
    except ValueError:
        return DEFAULT_POLL_SECONDS
    return value if value > 0 else DEFAULT_POLL_SECONDS


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(partial, path)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (an archive is 100+ MB; ``garda train``
    replaces models/garda.tar.gz with a new file, so a link keeps the old bytes), else a
    copy."""
    partial = target.with_name(target.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        os.link(source, partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


@dataclass
class Entry:
    id: str
    folder: Path
    meta: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL

    @property
    def safety_path(self) -> Path:
        return self.folder / SAFETY

    @property
    def report_dir(self) -> Path:
        return self.folder / REPORT

    @property
    def status(self) -> str:
        return str(self.meta.get("status", REGISTERED))

    @property
    def usable(self) -> bool:
        return self.status not in (TRAINING, FAILED) and self.model_path.is_file() and \
            self.safety_path.is_file()

    def metrics(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.folder / METRICS).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


class Registry:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or registry_dir()

    # -- reading --------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for meta_file in self.root.glob(f"*/{META}"):
            try:
                meta = json.loads(meta_file.read_text("utf-8"))
            except (OSError, ValueError):
                logger.warning("unreadable registry entry: %s", meta_file.parent.name)
                continue
            found.append(Entry(meta_file.parent.name, meta_file.parent, meta))
        return sorted(found, key=lambda e: (str(e.meta.get("created_at", "")), e.id))

    def get(self, entry_id: str) -> Entry:
        if not _ID.match(entry_id):
            raise RegistryError(f"{entry_id!r} is not a registry id")
        folder = self.root / entry_id
        try:
            meta = json.loads((folder / META).read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise RegistryError(f"no model {entry_id} in {self.root}") from error
        return Entry(entry_id, folder, meta)

    def active_id(self) -> str:
        """The id CURRENT names, or :data:`BOOTSTRAP` when there is none."""
        try:
            value = (self.root / CURRENT).read_text("utf-8").strip()
        except FileNotFoundError:
            return BOOTSTRAP
        return value or BOOTSTRAP

    def active(self) -> Entry | None:
        active = self.active_id()
        return None if active == BOOTSTRAP else self.get(active)

    def history(self) -> list[dict[str, Any]]:
        try:
            lines = (self.root / HISTORY).read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def promotions(self) -> list[str]:
        """The promoted ids still in effect, oldest first: each promotion pushes its id,
        each rollback pops the top one. The last is the active one."""
        stack: list[str] = []
        for record in self.history():
            if record.get("action") == PROMOTE:
                stack.append(str(record["id"]))
            elif record.get("action") == ROLLBACK and stack:
                stack.pop()
        return stack

    def find(self, data_hash: str, safety_hash: str) -> Entry | None:
        """The newest usable entry trained on exactly these inputs."""
        for entry in reversed(self.entries()):
            if (entry.usable and entry.meta.get("data_hash") == data_hash
                    and entry.meta.get("safety_hash") == safety_hash):
                return entry
        return None

    def with_archive(self, data_hash: str) -> Entry | None:
        """The newest usable entry whose Rasa archive was trained on this data."""
        for entry in reversed(self.entries()):
            if entry.usable and entry.meta.get("data_hash") == data_hash:
                return entry
        return None

    # -- writing --------------------------------------------------------------------

    @contextlib.contextmanager
    def training_lock(self) -> Iterator[None]:
        """One training run at a time: two Rasa trainings at once would only slow each
        other down. A second run is refused at once rather than queued for minutes.
        Promotions and rollbacks do not wait for it (CURRENT is replaced atomically)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK).open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise RegistryError("another `garda trainer train` is running on this "
                                    "registry; try again when it has finished") from error
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def log(self, action: str, entry_id: str, by: str, reason: str = "",
            **extra: Any) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        record = {"at": now().isoformat(), "action": action, "id": entry_id, "by": by,
                  "reason": reason, **extra}
        with (self.root / HISTORY).open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def new_entry(self, data_hash: str, meta: dict[str, Any],
                  created: dt.datetime | None = None) -> Entry:
        created = created or now()
        base = f"{created:%Y%m%dT%H%M%SZ}-{data_hash[:8]}"
        self.root.mkdir(parents=True, exist_ok=True)
        for number in range(100):
            entry_id = base if number == 0 else f"{base}.{number}"
            try:
                (self.root / entry_id).mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise RegistryError(f"too many entries named {base}")
        entry = Entry(entry_id, self.root / entry_id, {
            "id": entry_id, "created_at": created.isoformat(), "data_hash": data_hash,
            "status": TRAINING, "reason": "", **meta})
        self.save_meta(entry)
        return entry

    def save_meta(self, entry: Entry) -> None:
        _write_json(entry.folder / META, entry.meta)

    def save_metrics(self, entry: Entry, metrics: dict[str, Any]) -> None:
        _write_json(entry.folder / METRICS, metrics)

    def set_status(self, entry: Entry, status: str, reason: str = "", **extra: Any) -> None:
        entry.meta.update(status=status, reason=reason, **extra)
        self.save_meta(entry)

    def _set_current(self, entry_id: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / CURRENT
        if entry_id is None:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            return
        partial = self.root / f"{CURRENT}.partial"
        with partial.open("w", encoding="utf-8") as handle:
            handle.write(entry_id + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)

    def promote(self, entry_id: str, by: str, reason: str = "", force: bool = False) -> Entry:
        """Make ``entry_id`` the active model. Only an entry that passed the gate, unless
        ``force`` (then ``reason`` is required and logged)."""
        entry = self.get(entry_id)
        if not entry.usable:
            raise RegistryError(f"{entry_id} has no usable model (status {entry.status})")
        if entry.status != PASSED and not force:
            why = f": {entry.meta.get('reason')}" if entry.meta.get("reason") else ""
            raise RegistryError(f"{entry_id} did not pass the gate (status {entry.status}{why});"
                                " promote it anyway with --force --reason TEXT")
        if force and entry.status != PASSED and not reason.strip():
            raise RegistryError("--force needs --reason: say why the gate is overridden")
        if self.active_id() == entry_id:
            raise RegistryError(f"{entry_id} is already the active model")
        self._set_current(entry_id)
        self.log(PROMOTE, entry_id, by, reason, forced=bool(force and entry.status != PASSED))
        return entry

    def rollback(self, by: str, reason: str = "") -> str:
        """Back to the model that was active before the last promotion (the bootstrap when
        that was the first); returns its id."""
        stack = self.promotions()
        active = self.active_id()
        if not stack or stack[-1] != active:
            raise RegistryError("nothing to roll back: the active model "
                                f"({active}) was not set by a promotion in the history")
        target = stack[-2] if len(stack) > 1 else BOOTSTRAP
        if target != BOOTSTRAP and not self.get(target).usable:
            raise RegistryError(f"cannot roll back to {target}: its model is missing")
        self._set_current(None if target == BOOTSTRAP else target)
        self.log(ROLLBACK, target, by, reason, **{"from": active})
        return target


def resolve(model_id: str | None = None) -> tuple[str, Path, Path | None]:
    """(id, Rasa archive, saved safety classifier or None) of ``model_id``, default the
    active model. The bootstrap has no saved classifier: it is fitted at start-up."""
    from bot.training import model_path

    registry = Registry()
    wanted = model_id or registry.active_id()
    if wanted == BOOTSTRAP:
        return BOOTSTRAP, model_path(), None
    entry = registry.get(wanted)
    if not entry.usable:
        raise RegistryError(f"{wanted} has no usable model (status {entry.status})")
    return wanted, entry.model_path, entry.safety_path


class ActiveWatch:
    """Notices CURRENT changing, cheaply: one ``stat`` per poll (inode, time, size; a
    promotion replaces the file, so its inode changes even within one clock tick)."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or Registry()
        self._stamp = self._read()

    def _read(self) -> tuple[int, int, int] | None:
        try:
            found = (self.registry.root / CURRENT).stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

    def poll(self) -> str | None:
        """The active id if CURRENT changed since the last poll, else None."""
        stamp = self._read()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        return self.registry.active_id()
