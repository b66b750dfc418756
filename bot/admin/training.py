"""The console's Training page and the ticket page's re-label form (docs/training.md).

    GET  /admin/training                    the review inbox's open groups, largest first:
                                            masked text, prediction, implicit labels, the
                                            closest training examples, and a form each
    POST /admin/training                    decide a group: accept (the proposal, or an
                                            intent chosen from the list), new topic, discard
    POST /admin/tickets/{id}/relabel        an agent's word on what a message of the
                                            ticket's conversation really asked

Labelling is the ``label`` permission (trainer, supervisor, admin: an agent answers
citizens, a trainer curates what the model learns); re-labelling a ticket's message is
``relabel`` (those who handle tickets). The handlers use the console's own session, CSRF
and page helpers, so every rule of bot/admin/console.py holds here too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.channels.base import TEXT
from bot.privacy import mask
from bot.store.db import ConversationEntry
from bot.trainer import inbox
from bot.trainer.nludata import Closest, LabelError, NluPaths, closest, intents

if TYPE_CHECKING:  # bot.admin.console imports this module
    from bot.admin.console import Console
    from bot.admin.users import Session

logger = logging.getLogger(__name__)

LABEL = "label"
RELABEL = "relabel"
PAGE_GROUPS = 30   # groups on the page; deciding one brings the next up
SNIPPET = 120      # characters of a message in the re-label list
_KEY = re.compile(r"^[0-9a-f]{8,64}$")

CHOSE_NOTHING = "Pilih intent dari daftar dulu."
UNKNOWN_INTENT = "Intent itu tidak ada di data/nlu."
UNKNOWN_OP = "Tindakan tidak dikenal."
TRAINING_NOTICES = {
    "accepted": ("Label tercatat dan contohnya ditulis ke data/nlu. Latih ulang model "
                 "(garda train) agar berlaku."),
    "new_topic": "Kelompok ditandai sebagai permintaan topik baru untuk tim konten.",
    "discarded": "Kelompok dibuang dari kotak tinjauan.",
}
OPS = {"accept": inbox.ACCEPT, "choose": inbox.ACCEPT, "new_topic": inbox.NEW_TOPIC,
       "discard": inbox.DISCARD}
CODES = {inbox.ACCEPT: "accepted", inbox.NEW_TOPIC: "new_topic", inbox.DISCARD: "discarded"}


@dataclasses.dataclass(frozen=True)
class Group:
    """One group as the page shows it."""

    cluster: inbox.Cluster
    sources: str
    confidence: str
    suggested: list[tuple[str, int]]
    near: list[Closest]


@dataclasses.dataclass(frozen=True)
class Choice:
    id: int
    text: str


@dataclasses.dataclass(frozen=True)
class RelabelForm:
    messages: list[Choice]
    selected: int | None
    intents: list[str]


def relabel_form(role: str, entries: Sequence[ConversationEntry],
                 opening: int | None = None) -> RelabelForm | None:
    """The ticket page's re-label form: the conversation's text messages (masked, newest
    first; ``opening``, the message that opened the ticket, chosen), or None when the role
    may not re-label or there is nothing to re-label."""
    from bot.admin.console import allowed

    if not allowed(role, RELABEL):
        return None
    choices = [Choice(e.id, _snippet(e.text)) for e in reversed(entries)
               if e.source == "citizen" and e.kind == TEXT and e.text
               and not e.text.strip().startswith("/")]
    if not choices:
        return None
    ids = {c.id for c in choices}
    return RelabelForm(choices, opening if opening in ids else choices[0].id, intents())


def _snippet(text: str | None) -> str:
    shown = " ".join(mask(text or "").split())
    return shown if len(shown) <= SNIPPET else shown[: SNIPPET - 1] + "…"


class Training:
    def __init__(self, console: Console, paths: NluPaths | None = None) -> None:
        self.console = console
        self._paths = paths

    @property
    def paths(self) -> NluPaths:
        """The data folders, read at each use (GARDA_HOME may name another project)."""
        return self._paths or NluPaths.default()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/training", self.page, methods=["GET"]),
            Route("/training", self.decide, methods=["POST"]),
            Route("/tickets/{ticket_id:int}/relabel", self.relabel, methods=["POST"]),
        ]

    # -- the Training page ------------------------------------------------------------

    def _groups(self) -> dict[str, Any]:
        """Everything the page shows (file and database reads: run in a thread)."""
        engine = self.console.db.engine
        found = inbox.clusters(engine)
        counts = inbox.counts(engine)
        paths = self.paths
        groups = []
        for cluster in found[:PAGE_GROUPS]:
            groups.append(Group(
                cluster=cluster,
                sources=", ".join(f"{name} {n}" for name, n in cluster.sources),
                confidence="-" if cluster.confidence is None else f"{cluster.confidence:.2f}",
                suggested=[("bukan keduanya" if name == inbox.NONE_CHOSEN else name, n)
                           for name, n in cluster.suggested],
                near=closest(cluster.text, paths=paths)))
        return {
            "groups": groups, "total_groups": len(found),
            "open_items": sum(n for (_, status), n in counts.items() if status == inbox.OPEN),
            "by_source": [(source, counts.get((source, inbox.OPEN), 0))
                          for source in (inbox.LOW_MARGIN, inbox.FALLBACK, inbox.CLARIFICATION,
                                         inbox.RELABEL, inbox.SPOT_CHECK)],
            "intents": intents(paths),
        }

    def _titles(self, names: Sequence[str]) -> dict[str, str]:
        """Each intent's answer title from the approved content, where it has one."""
        titles = {}
        for name in names:
            try:
                titles[name] = self.console.content.title(f"utter_{name}")
            except Exception:  # no such response: the intent's name alone
                titles[name] = ""
        return titles

    async def _page(self, session: Session, status: int = 200, *, notice: str | None = None,
                    error: str | None = None) -> Response:
        data = await asyncio.to_thread(self._groups)
        return self.console._page("training.html", session, status, notice=notice,
                                  error=error, titles=self._titles(data["intents"]), **data)

    async def page(self, request: Request) -> Response:
        got = await self.console._viewer(request, LABEL)
        if isinstance(got, Response):
            return got
        return await self._page(got, notice=TRAINING_NOTICES.get(
            request.query_params.get("m", "")))

    async def decide(self, request: Request) -> Response:
        from bot.admin.console import _redirect, allowed

        got = await self.console._poster(request)
        if isinstance(got, Response):
            return got
        session, form = got
        if not allowed(session.user.role, LABEL):
            return self.console._deny(session, LABEL)
        op = form.get("op", "")
        key = form.get("cluster", "")
        if op not in OPS or not _KEY.match(key):
            return await self._page(session, 400, error=UNKNOWN_OP)
        action = OPS[op]
        label = None
        if action == inbox.ACCEPT:
            label = (form.get("proposed") if op == "accept" else form.get("intent")) or ""
            if not label:
                return await self._page(session, 400, error=CHOSE_NOTHING)
            if label not in await asyncio.to_thread(intents, self.paths):
                return await self._page(session, 400, error=UNKNOWN_INTENT)
        try:
            await asyncio.to_thread(inbox.decide, self.console.db.engine, key, action,
                                    session.user.name, label, self.paths)
        except LabelError as error:
            status = 409 if str(error) == inbox.ALREADY_DECIDED else 422
            return await self._page(session, status, error=str(error))
        return _redirect(f"/training?m={CODES[action]}")

    # -- re-labelling a ticket's message ----------------------------------------------

    async def relabel(self, request: Request) -> Response:
        from bot.admin.console import _redirect

        got = await self.console._act(request, RELABEL)
        if isinstance(got, Response):
            return got
        session, form, ticket = got
        chosen = form.get("inbound", "")
        inbound_id = int(chosen) if chosen.isdigit() else ticket.inbound_id
        intent = form.get("intent", "")
        known = await asyncio.to_thread(intents, self.paths)
        if not intent:
            return await self.console._ticket_page(session, ticket, 400, error=CHOSE_NOTHING)
        if inbound_id is None:
            return await self.console._ticket_page(session, ticket, 400,
                                                   error=inbox.NOT_RELABELABLE)
        try:
            await asyncio.to_thread(
                inbox.relabel, self.console.db.engine, inbound_id, intent, known,
                by=session.user.name, ticket_id=ticket.id,
                conversation_id=ticket.conversation_id)
        except LabelError as error:
            return await self.console._ticket_page(session, ticket, 400, error=str(error))
        return _redirect(f"/tickets/{ticket.id}?m=relabelled")
