"""The review inbox: the decided messages most worth a trainer's look, near-duplicates
grouped, and what a trainer's decision on a group does.

Which messages enter (every rule is here; :func:`fill` runs inside the transaction that
records the decision, so an item exists exactly when its decision does):

- ``low_margin``: answered, with a confidence under the answer threshold + :data:`MARGIN`;
- ``fallback``: not understood, or out of scope;
- ``clarification``: Garda offered two topics. The button the citizen then taps (the
  conversation's next message, ``/faq/<topic>`` or ``/none``) becomes the item's
  ``suggested_intent``: a label the citizen gave without being asked;
- ``relabel``: an admin handling a ticket said what a message really asked (:func:`relabel`);
- ``spot_check``: a fixed share of confident answers (:data:`SPOT_CHECK_PER_MILLE`), so that
  confident mistakes are found too.

Never: escalations and hoaxes (people or the registry handle them), commands and button
taps, media, and texts with no words left once normalised. The text is masked
(bot/privacy.py) before it is stored, and emptied by retention like every message.

Grouping: items whose masked, normalised text has the same set of stemmed words (minus
forms of address and particles, :data:`FILLERS`) share a ``cluster_key``. It is computed
from the text alone, so it needs no look at other items, costs the same however full the
inbox is, and gives the same key on every worker. It groups re-orderings, slang, affixes,
elongations and different phone numbers; it does not group paraphrases (the closest
training examples shown beside each group do that work for the trainer).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from bot.brain import ranking
from bot.channels.base import BUTTON, TEXT
from bot.paths import project_root
from bot.privacy import mask
from bot.store.models import DONE, inbound, review_items, utcnow
from bot.store.tickets import log_event
from bot.trainer.nludata import LabelError, NluPaths, Written, add_example, normal, warm

logger = logging.getLogger(__name__)

LOW_MARGIN = "low_margin"
FALLBACK = "fallback"
CLARIFICATION = "clarification"
RELABEL = "relabel"
SPOT_CHECK = "spot_check"

OPEN = "open"
ACCEPTED = "accepted"      # labelled with the intent Garda predicted
RELABELLED = "relabelled"  # labelled with another intent
NEW_TOPIC = "new_topic"    # asks for something no intent covers: for the content team
DISCARDED = "discarded"    # nothing to learn (noise, a test, personal data left...)

# What a trainer can do with a group, and the status it gives. ``accept`` takes an intent
# (the predicted, the suggested or another); each item's status then says whether it was
# the prediction (accepted) or not (relabelled).
ACCEPT = "accept"
DISCARD = "discard"
ACTIONS = {ACCEPT: ACCEPTED, NEW_TOPIC: NEW_TOPIC, DISCARD: DISCARDED}

# An answer this close above the answer threshold was nearly a clarification: a small
# change of wording would have flipped it, so its label is the one most worth checking.
MARGIN = 0.03
# Confident answers are wrong sometimes too, and nothing else would show it: 2% of them
# (20 in 1,000), chosen by a hash of the inbound id: the same choice on every worker and
# on a re-run, with no state to keep.
SPOT_CHECK_PER_MILLE = 20
# config.yml's TopicRouter answer_threshold when this was written; used only if config.yml
# cannot be read, so that recording a decision never fails on it.
DEFAULT_ANSWER_THRESHOLD = 0.95
# The brain reads no more of a message (bot.brain.pipeline.MAX_NLU_CHARS).
MAX_TEXT = 2000
NONE_CHOSEN = "/none"  # suggested_intent when the citizen tapped "Bukan keduanya"
# Forms of address, particles and politeness (as the normaliser writes them): they do not
# change what a message asks, so they do not split a group.
FILLERS = frozenset({
    "admin", "kakak", "kak", "ya", "yah", "dong", "sih", "deh", "nih", "lah", "kah", "pak",
    "bapak", "bu", "ibu", "mas", "mbak", "gan", "sis", "tolong", "mohon",
})
_TAP = re.compile(r"^/(faq/[a-z0-9_]{1,59})$")
ALREADY_DECIDED = "Kelompok ini sudah diputuskan (mungkin oleh trainer lain)."
NO_TEXT = ("Teks kelompok ini sudah dihapus oleh retensi: kelompok ini hanya bisa ditandai "
           "topik baru atau dibuang.")
UNKNOWN_ACTION = "Tindakan tidak dikenal."
NO_LABEL = "Pilih intent untuk kelompok ini."
NOT_RELABELABLE = "Pesan itu tidak ada di percakapan ini, bukan teks, atau isinya sudah dihapus."


@functools.lru_cache(maxsize=4)
def answer_threshold(config: Path | None = None) -> float:
    """The TopicRouter's answer threshold in config.yml (read once per process)."""
    path = config or project_root() / "config.yml"
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        for component in data.get("pipeline") or []:
            if str(component.get("name", "")).endswith("TopicRouter"):
                return float(component["answer_threshold"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
        pass
    logger.warning("review inbox: no answer_threshold in %s; using %s", path,
                   DEFAULT_ANSWER_THRESHOLD)
    return DEFAULT_ANSWER_THRESHOLD


def spot_checked(inbound_id: int) -> bool:
    digest = hashlib.sha256(f"spot-check:{inbound_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < SPOT_CHECK_PER_MILLE


def tap(text: str) -> str | None:
    """The topic of a clarification button's payload (``faq/<topic>``), :data:`NONE_CHOSEN`
    for "neither", None for anything else."""
    words = text.strip().split(maxsplit=1)
    command = words[0].split("@", 1)[0].lower() if words else ""
    if command == NONE_CHOSEN:
        return NONE_CHOSEN
    found = _TAP.match(command)
    return found.group(1) if found else None


def masked(text: str) -> str:
    return mask(text[:MAX_TEXT]).strip()


def source_for(kind: str, text: str, route: str, confidence: float, inbound_id: int,
               threshold: float | None = None) -> str | None:
    """The inbox source of a decided message, or None when it stays out (module docstring)."""
    if kind != TEXT or text.strip().startswith("/") or not normal(text[:MAX_TEXT]):
        return None
    if route == ranking.FALLBACK:
        return FALLBACK
    if route == ranking.CLARIFY:
        return CLARIFICATION
    if route != ranking.ANSWER:
        return None  # escalations, hoaxes: people and the registry handle them
    limit = (answer_threshold() if threshold is None else threshold) + MARGIN
    if confidence < limit:
        return LOW_MARGIN
    return SPOT_CHECK if spot_checked(inbound_id) else None


@functools.lru_cache(maxsize=1)
def _stemmer() -> Any:
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return StemmerFactory().create_stemmer()


@functools.lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    """bot.brain.features.stem's rule, without bringing scikit-learn (about 55 MB) into the
    worker's main process, which records decisions but never classifies."""
    if not word.isalpha() or len(word) <= 3:
        return word
    return str(_stemmer().stem(word) or word)


def cluster_key(text: str) -> str:
    """The group of a masked text: its set of stemmed words, fillers left out."""
    words = normal(text).split()
    kept = sorted({stem(w) for w in words if w not in FILLERS}) or sorted(set(words))
    return hashlib.sha256(" ".join(kept).encode("utf-8")).hexdigest()[:40]


def fill(conn: Connection, message: Any, decision: Any, now: dt.datetime) -> None:
    """Add ``message`` to the inbox if a rule says so, and give a clarification the label of
    the button the citizen tapped; inside the decision's transaction (``conn``)."""
    text = message.text or ""
    chosen = tap(text) if message.kind in (TEXT, BUTTON) else None
    if chosen is not None:
        _record_tap(conn, message, chosen)
        return
    source = source_for(message.kind, text, decision.route, float(decision.confidence),
                        message.id)
    if source is None:
        return
    already = conn.execute(select(review_items.c.id).where(
        review_items.c.inbound_id == message.id, review_items.c.source == source)).first()
    if already is not None:
        return  # a recovered claim decided the message again
    _add(conn, source, message.id, text, decision.intent, float(decision.confidence), None, now)


def _add(conn: Connection, source: str, inbound_id: int | None, text: str,
         intent: str | None, confidence: float | None, suggested: str | None,
         now: dt.datetime) -> int:
    shown = masked(text)
    return int(conn.execute(insert(review_items).values(
        created_at=now, source=source, inbound_id=inbound_id, text=shown,
        predicted_intent=intent[:64] if intent else None, confidence=confidence,
        suggested_intent=suggested, cluster_key=cluster_key(shown), status=OPEN,
    )).inserted_primary_key[0])


def _record_tap(conn: Connection, message: Any, chosen: str) -> None:
    previous = conn.execute(
        select(inbound.c.id, inbound.c.route)
        .where(inbound.c.conversation_id == message.conversation_id,
               inbound.c.id < message.id, inbound.c.status == DONE)
        .order_by(inbound.c.id.desc()).limit(1)).first()
    if previous is None or previous.route != ranking.CLARIFY:
        return
    conn.execute(update(review_items).where(
        review_items.c.inbound_id == previous.id, review_items.c.source == CLARIFICATION,
        review_items.c.status == OPEN).values(suggested_intent=chosen))


def relabel(engine: Engine, inbound_id: int, intent: str, intents: Collection[str], *,
            by: str, ticket_id: int | None = None, conversation_id: int | None = None,
            now: dt.datetime | None = None) -> int:
    """An admin's word that message ``inbound_id`` asked for ``intent``: an open ``relabel``
    item (a second re-label of the message replaces the first's intent), logged on the
    ticket ``ticket_id`` if given. The item's id.

    ``conversation_id``: the conversation the message must belong to (the ticket's)."""
    if intent not in intents:
        raise LabelError(f"Intent {intent!r} tidak ada di data/nlu.")
    now = now or utcnow()
    with engine.begin() as conn:
        row = conn.execute(select(inbound.c.conversation_id, inbound.c.kind, inbound.c.text,
                                  inbound.c.intent, inbound.c.confidence)
                           .where(inbound.c.id == inbound_id)).first()
        if (row is None or row.kind != TEXT or not row.text
                or row.text.strip().startswith("/") or not normal(row.text[:MAX_TEXT])
                or (conversation_id is not None and row.conversation_id != conversation_id)):
            raise LabelError(NOT_RELABELABLE)
        found = conn.execute(select(review_items.c.id).where(
            review_items.c.inbound_id == inbound_id, review_items.c.source == RELABEL,
            review_items.c.status == OPEN)).scalar()
        if found is not None:
            conn.execute(update(review_items).where(review_items.c.id == found)
                         .values(suggested_intent=intent))
            item = int(found)
        else:
            item = _add(conn, RELABEL, inbound_id, row.text, row.intent, row.confidence,
                        intent, now)
        if ticket_id is not None:
            log_event(conn, ticket_id, by, "relabelled", f"pesan {inbound_id}: {intent}", now)
    logger.info("admin relabel: user=%s inbound=%s intent=%s", by, inbound_id, intent)
    return item


# -- reading and deciding groups ---------------------------------------------------------

# The newest open items read to build the groups: bounds a page's work however long the
# inbox has been left alone.
SCAN_LIMIT = 5000


@dataclass(frozen=True)
class Cluster:
    key: str
    count: int
    text: str                       # the most frequent text (the newest among equals)
    sources: tuple[tuple[str, int], ...]
    predicted: str | None           # the most frequent predicted intent
    confidence: float | None        # mean confidence of the items that have one
    suggested: tuple[tuple[str, int], ...]  # implicit labels, most frequent first
    newest: dt.datetime

    @property
    def proposal(self) -> str | None:
        """What "accept" labels the group with: the citizens' or admins' label, else the
        prediction."""
        for intent, _ in self.suggested:
            if intent != NONE_CHOSEN:
                return intent
        return self.predicted


def _most(counter: Counter[Any]) -> Any:
    return counter.most_common(1)[0][0] if counter else None


def clusters(engine: Engine, limit: int | None = None) -> list[Cluster]:
    """Open groups with text, the largest first (then the most recent)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(review_items).where(review_items.c.status == OPEN,
                                       review_items.c.text.is_not(None))
            .order_by(review_items.c.id.desc()).limit(SCAN_LIMIT)).all()
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row.cluster_key, []).append(row)
    found = []
    for key, items in grouped.items():
        texts = Counter(r.text for r in items)
        confidences = [float(r.confidence) for r in items if r.confidence is not None]
        newest = max(_aware(r.created_at) for r in items)
        found.append(Cluster(
            key=key, count=len(items),
            text=max(texts, key=lambda t: texts[t]),  # first max: the newest such text
            sources=tuple(Counter(r.source for r in items).most_common()),
            predicted=_most(Counter(r.predicted_intent for r in items if r.predicted_intent)),
            confidence=sum(confidences) / len(confidences) if confidences else None,
            suggested=tuple(Counter(r.suggested_intent for r in items
                                    if r.suggested_intent).most_common()),
            newest=newest))
    found.sort(key=lambda c: (-c.count, -c.newest.timestamp(), c.key))
    return found[:limit] if limit is not None else found


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def counts(engine: Engine) -> dict[tuple[str, str], int]:
    """Items per (source, status)."""
    with engine.connect() as conn:
        rows = conn.execute(select(review_items.c.source, review_items.c.status, func.count())
                            .group_by(review_items.c.source, review_items.c.status)).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}


@dataclass(frozen=True)
class Outcome:
    action: str
    label: str | None
    items: int                 # open items decided
    written: Written | None    # the example and the data file it went into (accept)


def decide(engine: Engine, key: str, action: str, by: str, label: str | None = None,
           paths: NluPaths | None = None, now: dt.datetime | None = None) -> Outcome:
    """Decide every open item of group ``key``: ``accept`` (as ``label``: the group's text
    is written into data/nlu, or nothing happens), ``new_topic`` or ``discarded``.

    Raises LabelError when nothing was decided: the group is already decided, or the
    example was refused (bot.trainer.nludata says why).
    """
    if action not in ACTIONS:
        raise LabelError(UNKNOWN_ACTION)
    if action == ACCEPT and not label:
        raise LabelError(NO_LABEL)
    now = now or utcnow()
    if action == ACCEPT:
        warm(paths or NluPaths.default())  # not while holding the database's write lock
    with engine.begin() as conn:
        query = (select(review_items.c.id, review_items.c.text)
                 .where(review_items.c.cluster_key == key, review_items.c.status == OPEN)
                 .order_by(review_items.c.id.desc()))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # a second trainer waits, then finds it decided
        rows = conn.execute(query).all()
        if not rows:
            raise LabelError(ALREADY_DECIDED)
        ids = [r.id for r in rows]
        mine = and_(review_items.c.id.in_(ids), review_items.c.status == OPEN)
        stamp = dict(decided_by=by[:64], decided_at=now)
        written = None
        if action == ACCEPT:
            texts = Counter(r.text for r in rows if r.text)
            if not texts:
                raise LabelError(NO_TEXT)
            # The group's most frequent text (the newest among equals: rows come newest first).
            example = max(texts, key=lambda t: texts[t])
            written = add_example(str(label), example, paths)  # raises LabelError: rollback
            conn.execute(update(review_items).where(
                mine, review_items.c.predicted_intent == label).values(
                status=ACCEPTED, label=label, **stamp))
            conn.execute(update(review_items).where(mine).values(
                status=RELABELLED, label=label, **stamp))
        else:
            conn.execute(update(review_items).where(mine).values(status=ACTIONS[action],
                                                                 label=None, **stamp))
    logger.info("trainer decided: user=%s cluster=%s action=%s label=%s items=%d", by,
                key[:12], action, label, len(ids))
    return Outcome(action, label if action == ACCEPT else None, len(ids), written)
