"""The console's users, their passwords and their server-side sessions (all in SQL).

Passwords are hashed with scrypt (a random 16-byte salt; n=2**14, r=8, p=1), stored with
their parameters so that stronger ones can be chosen later without breaking old hashes.
A session is a random token in the browser's cookie; the database keeps only its SHA-256,
so a copy of the database opens no session. Sessions end after 8 hours without a request
(and at the latest 24 hours after login), at logout, and when the user is disabled.

After 5 failed logins for one name within 15 minutes, logins for that name are refused
(with the same message as a wrong password) until the oldest of them is 15 minutes old.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.store.models import (
    ADMIN_ROLES,
    admin_login_failures,
    admin_sessions,
    admin_users,
    utcnow,
)

ROLES = ADMIN_ROLES  # trainer (read-only), agent, supervisor, admin
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32

SESSION_IDLE = dt.timedelta(hours=8)
SESSION_LONGEST = dt.timedelta(hours=24)
TOUCH_EVERY = dt.timedelta(seconds=60)  # a session's last use is written at most this often
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = dt.timedelta(minutes=15)


class UserError(ValueError):
    """A name, role or password the console cannot accept (the message says why)."""


class UserExists(UserError):
    pass


class NoSuchUser(UserError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    created_at: dt.datetime
    disabled: bool


@dataclass(frozen=True)
class Session:
    id: str          # the token's SHA-256; never the token itself
    user: User
    csrf: str
    created_at: dt.datetime
    expires_at: dt.datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * 1024 * 1024)


def hash_password(password: str) -> str:
    """``scrypt$n=16384,r=8,p=1$<salt>$<key>`` (salt and key in URL-safe base64)."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, params, salt_text, key_text = stored.split("$")
        values = dict(part.split("=", 1) for part in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt, key = _unb64(salt_text), _unb64(key_text)
    except (ValueError, KeyError):
        return False
    if scheme != "scrypt" or not key or n > 2**20:
        return False
    given = _scrypt(password, salt, n, r, p, len(key))
    return hmac.compare_digest(given, key)


@functools.lru_cache(maxsize=1)
def _decoy() -> str:
    """A hash to check against when the name is unknown, so both take the same time."""
    return hash_password(secrets.token_urlsafe(16))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normal_name(name: str) -> str:
    return name.strip().lower()


def name_problem(name: str) -> str | None:
    if not NAME.fullmatch(name):
        return ("a user name is 1 to 64 characters: lower-case letters, digits, '.', '_' "
                "and '-', starting with a letter or digit")
    return None


def role_problem(role: str) -> str | None:
    if role not in ROLES:
        return f"unknown role {role!r}; choose one of {', '.join(ROLES)}"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password may have at most {MAX_PASSWORD} characters"
    return None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _user(row: Any) -> User:
    return User(id=row.id, name=row.name, role=row.role, created_at=_aware(row.created_at),
                disabled=bool(row.disabled))


class Users:
    """Users, logins and sessions on an engine (each call one short transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- users ------------------------------------------------------------------------

    def add(self, name: str, password: str, role: str, now: dt.datetime | None = None) -> User:
        name = normal_name(name)
        problem = name_problem(name) or role_problem(role) or password_problem(password)
        if problem:
            raise UserError(problem)
        hashed = hash_password(password)
        try:
            with self.engine.begin() as conn:
                conn.execute(admin_users.insert().values(
                    name=name, password_hash=hashed, role=role, created_at=now or utcnow(),
                    disabled=False))
        except IntegrityError:
            raise UserExists(f"a user named {name!r} exists already") from None
        found = self.get(name)
        assert found is not None
        return found

    def get(self, name: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(admin_users).where(
                admin_users.c.name == normal_name(name))).first()
        return _user(row) if row is not None else None

    def all(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(admin_users).order_by(admin_users.c.name)).all()
        return [_user(row) for row in rows]

    def set_role(self, name: str, role: str) -> None:
        problem = role_problem(role)
        if problem:
            raise UserError(problem)
        with self.engine.begin() as conn:
            changed = conn.execute(update(admin_users).where(
                admin_users.c.name == normal_name(name)).values(role=role)).rowcount
        if changed != 1:
            raise NoSuchUser(f"no user named {normal_name(name)!r}")

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (and log out everywhere) or enable a user."""
        with self.engine.begin() as conn:
            user_id = conn.execute(select(admin_users.c.id).where(
                admin_users.c.name == normal_name(name))).scalar()
            if user_id is None:
                raise NoSuchUser(f"no user named {normal_name(name)!r}")
            conn.execute(update(admin_users).where(admin_users.c.id == user_id)
                         .values(disabled=disabled))
            if disabled:
                conn.execute(delete(admin_sessions).where(admin_sessions.c.user_id == user_id))

    # -- logging in -------------------------------------------------------------------

    def locked(self, name: str, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        with self.engine.connect() as conn:
            recent = conn.execute(
                select(func.count()).select_from(admin_login_failures).where(
                    admin_login_failures.c.name == normal_name(name)[:64],
                    admin_login_failures.c.at > now - LOCKOUT_WINDOW)
            ).scalar()
        return int(recent or 0) >= LOCKOUT_FAILURES

    def authenticate(self, name: str, password: str, now: dt.datetime | None = None
                     ) -> User | None:
        """The user, if the name and password match, the user is enabled and the name is
        not locked out; else None (the caller says the same thing in every case)."""
        now = now or utcnow()
        name = normal_name(name)[:64]
        if self.locked(name, now):
            verify_password(password[:MAX_PASSWORD], _decoy())  # takes as long as a check
            return None  # not counted: a lockout ends 15 minutes after it began
        user = self.get(name) if name else None
        with self.engine.connect() as conn:
            stored = conn.execute(select(admin_users.c.password_hash).where(
                admin_users.c.name == name)).scalar() if user is not None else None
        ok = verify_password(password[:MAX_PASSWORD], stored or _decoy())
        if ok and user is not None and stored is not None and not user.disabled:
            with self.engine.begin() as conn:
                conn.execute(delete(admin_login_failures).where(
                    admin_login_failures.c.name == name))
            return user
        with self.engine.begin() as conn:
            conn.execute(delete(admin_login_failures).where(
                admin_login_failures.c.at <= now - LOCKOUT_WINDOW))
            conn.execute(admin_login_failures.insert().values(name=name, at=now))
        return None

    # -- sessions ---------------------------------------------------------------------

    def start_session(self, user: User, now: dt.datetime | None = None) -> tuple[str, Session]:
        """A new session for ``user``: the token for the cookie, and the session."""
        now = now or utcnow()
        token = secrets.token_urlsafe(32)
        session = Session(id=token_hash(token), user=user, csrf=secrets.token_urlsafe(32),
                          created_at=now, expires_at=now + SESSION_IDLE)
        with self.engine.begin() as conn:
            conn.execute(delete(admin_sessions).where(admin_sessions.c.expires_at <= now))
            conn.execute(admin_sessions.insert().values(
                id=session.id, user_id=user.id, csrf=session.csrf, created_at=now,
                last_seen_at=now, expires_at=session.expires_at))
        return token, session

    def session(self, token: str, now: dt.datetime | None = None) -> Session | None:
        """The live session behind a cookie's token (its idle time restarts), or None."""
        now = now or utcnow()
        if not token or len(token) > 128:
            return None
        key = token_hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(admin_sessions.c.csrf,
                       admin_sessions.c.created_at.label("session_created_at"),
                       admin_sessions.c.last_seen_at, admin_sessions.c.expires_at,
                       admin_users)
                .join(admin_users, admin_users.c.id == admin_sessions.c.user_id)
                .where(admin_sessions.c.id == key)
            ).first()
        if row is None:
            return None
        created, expires = _aware(row.session_created_at), _aware(row.expires_at)
        if expires <= now or bool(row.disabled):
            self.end_session(token)
            return None
        if now - _aware(row.last_seen_at) >= TOUCH_EVERY:
            expires = min(now + SESSION_IDLE, created + SESSION_LONGEST)
            with self.engine.begin() as conn:
                conn.execute(update(admin_sessions).where(admin_sessions.c.id == key)
                             .values(last_seen_at=now, expires_at=expires))
        return Session(id=key, user=_user(row), csrf=row.csrf, created_at=created,
                       expires_at=expires)

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(admin_sessions).where(admin_sessions.c.id == token_hash(token)))
