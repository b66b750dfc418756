"""A stub of the WhatsApp Cloud API (Graph API ``/messages``) and builders for its webhooks.

Sending side::

    stub = GraphStub()                      # token TOKEN, phone number id PHONE_NUMBER_ID
    with serve(stub.app) as url:
        channel = WhatsAppChannel(stub_settings(url))
        ...
    stub.requests          # [Received(path, headers, json)], in arrival order
    stub.messages()        # just the JSON bodies of POST .../messages
    stub.fail_next(status=429, headers={"Retry-After": "1"})   # the next request fails so

The stub answers ``POST /<anything>/{phone_number_id}/messages`` like the real API: 401
with a Graph ``OAuthException`` (code 190) for a wrong bearer token, 400 with code 100 for
a body the real API rejects (the parts Garda uses: ``messaging_product``, ``to``, the type,
text and interactive limits), otherwise ``{"messaging_product": "whatsapp", "contacts":
[...], "messages": [{"id": "wamid.<unique>"}]}``.

Receiving side: :func:`text_message`, :func:`button_reply`, :func:`list_reply`,
:func:`template_button`, :func:`media_message`, :func:`reaction_message` and
:func:`status_update` return whole webhook bodies as Meta POSTs them; :func:`combine`
merges several into one body (one change carrying all their messages and statuses);
:func:`sign` gives the ``X-Hub-Signature-256`` header for a raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.config import Settings

TOKEN = "test-whatsapp-token"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE_NUMBER = "15550783881"
APP_SECRET = "test-whatsapp-app-secret"
VERIFY_TOKEN = "test-whatsapp-verify-token"
WABA_ID = "102290129340398"
API_VERSION = "v21.0"


def stub_settings(url: str, **overrides: Any) -> Settings:
    """Settings for a WhatsApp channel talking to a stub served at ``url``."""
    values: dict[str, Any] = {
        "whatsapp_token": Secret(TOKEN),
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_app_secret": Secret(APP_SECRET),
        "whatsapp_verify_token": Secret(VERIFY_TOKEN),
        "whatsapp_api_url": f"{url.rstrip('/')}/{API_VERSION}",
    }
    values.update(overrides)
    return Settings(**values)


# --- the Graph API stub ------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any                # parsed body, or None when it was not JSON


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def graph_error(message: str, code: int, type_: str = "OAuthException") -> dict[str, Any]:
    """A Graph API error body."""
    return {"error": {"message": message, "type": type_, "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": message},
                      "fbtrace_id": "AbCdEfGhIjKlMnOp"}}


def _invalid(message: str) -> JSONResponse:
    return JSONResponse(graph_error(f"(#100) {message}", 100), status_code=400)


def _too_long(value: Any, limit: int) -> bool:
    return not isinstance(value, str) or not value or len(value) > limit


def validate(body: Any) -> str | None:
    """Why the real API would reject this ``/messages`` body (for the parts Garda uses)."""
    if not isinstance(body, dict):
        return "The parameter body is not a JSON object"
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required"
    if not isinstance(body.get("to"), str) or not body["to"]:
        return "The parameter to is required"
    kind = body.get("type", "text")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or _too_long(text.get("body"), 4096):
            return "Param text['body'] must be at most 4096 characters long"
        return None
    if kind == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not template.get("name"):
            return "The parameter template['name'] is required"
        language = template.get("language")
        if not isinstance(language, dict) or not language.get("code"):
            return "The parameter template['language']['code'] is required"
        return None
    if kind == "interactive":
        return _validate_interactive(body.get("interactive"))
    return f"Unsupported message type {kind}"


def _validate_interactive(interactive: Any) -> str | None:
    if not isinstance(interactive, dict):
        return "The parameter interactive is required"
    body = interactive.get("body")
    action = interactive.get("action")
    if not isinstance(body, dict) or not isinstance(action, dict):
        return "The parameters interactive['body'] and interactive['action'] are required"
    if interactive.get("type") == "button":
        if _too_long(body.get("text"), 1024):
            return "Param interactive['body']['text'] must be at most 1024 characters long"
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return "Param interactive['action']['buttons'] must have 1 to 3 buttons"
        ids = set()
        for button in buttons:
            if not isinstance(button, dict) or not isinstance(button.get("reply"), dict):
                return "Param interactive['action']['buttons'][]['reply'] is required"
            reply = button["reply"]
            if button.get("type") != "reply":
                return "Param interactive['action']['buttons'][]['type'] must be reply"
            if _too_long(reply.get("title"), 20):
                return "Button title length invalid. Min length: 1, Max length: 20"
            if _too_long(reply.get("id"), 256) or reply["id"] in ids:
                return "Button id invalid or not unique"
            ids.add(reply["id"])
        return None
    if interactive.get("type") == "list":
        if _too_long(body.get("text"), 4096):
            return "Param interactive['body']['text'] must be at most 4096 characters long"
        if _too_long(action.get("button"), 20):
            return "Param interactive['action']['button'] must be 1 to 20 characters long"
        sections = action.get("sections")
        if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
            return "Param interactive['action']['sections'] must have 1 to 10 sections"
        ids = set()
        for section in sections:
            rows = section.get("rows") if isinstance(section, dict) else None
            if not isinstance(rows, list) or not rows:
                return "Param interactive['action']['sections'][]['rows'] is required"
            if "title" in section and _too_long(section["title"], 24):
                return "Section title must be at most 24 characters long"
            for row in rows:
                if not isinstance(row, dict) or _too_long(row.get("title"), 24):
                    return "Row title must be 1 to 24 characters long"
                if "description" in row and _too_long(row["description"], 72):
                    return "Row description must be at most 72 characters long"
                if _too_long(row.get("id"), 200) or row["id"] in ids:
                    return "Row id invalid or not unique"
                ids.add(row["id"])
        if len(ids) > 10:
            return "Total row count exceed max allowed count: 10"
        return None
    return "Unsupported interactive type"


class GraphStub:
    """The Cloud API's ``/messages`` endpoint; thread-safe (uvicorn runs it in a thread)."""

    def __init__(self, token: str = TOKEN, phone_number_id: str = PHONE_NUMBER_ID) -> None:
        self.token = token
        self.phone_number_id = phone_number_id
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    # -- scripting and inspection

    def fail_next(self, status: int, headers: dict[str, str] | None = None,
                  error: dict[str, Any] | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (after recording them).

        ``error`` is the JSON body; by default a Graph error fitting the status (429: code
        130429 rate limit hit, 5xx: code 131000 something went wrong, other: code 100).
        """
        if error is None:
            if status == 429:
                error = graph_error("(#130429) Rate limit hit", 130429)
            elif status >= 500:
                error = graph_error("(#131000) Something went wrong", 131000)
            else:
                error = graph_error("(#100) Invalid parameter", 100)
        with self._lock:
            for _ in range(times):
                self._failures.append(_Failure(status, dict(headers or {}), error))

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._requests)

    def messages(self) -> list[Any]:
        """The JSON bodies of the ``/messages`` requests received so far."""
        return [r.json for r in self.requests if r.path.endswith("/messages")]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._failures.clear()

    # -- the endpoint

    async def _handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        path = request.url.path
        with self._lock:
            self._requests.append(Received(request.method, path,
                                           {k.lower(): v for k, v in request.headers.items()},
                                           data))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return JSONResponse(failure.body, status_code=failure.status,
                                headers=failure.headers)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": {"message": "Invalid OAuth access token - Cannot parse access token",
                           "type": "OAuthException", "code": 190,
                           "fbtrace_id": "AbCdEfGhIjKlMnOp"}},
                status_code=401,
            )
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[-1] != "messages":
            return _invalid("Unsupported post request")
        if parts[-2] != self.phone_number_id:
            return _invalid(f"Unsupported post request. Object with ID '{parts[-2]}' does not "
                            "exist, cannot be loaded due to missing permissions, or does not "
                            "support this operation")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _invalid("The request body must be JSON")
        problem = validate(data)
        if problem is not None:
            return _invalid(problem)
        to = data["to"]
        wamid = f"wamid.{uuid.uuid4().hex.upper()}{next(self._ids)}"
        return JSONResponse({"messaging_product": "whatsapp",
                             "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": wamid}]})


# --- webhooks ----------------------------------------------------------------------------


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """The ``X-Hub-Signature-256`` header value Meta sends with ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode(body: dict[str, Any]) -> bytes:
    """A webhook body as bytes, the way Meta sends it (compact JSON, UTF-8)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def new_wamid() -> str:
    return "wamid." + uuid.uuid4().hex.upper()


def envelope(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    """A whole webhook body with one ``messages`` change carrying these objects."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_PHONE_NUMBER,
                     "phone_number_id": phone_number_id},
    }
    if contacts:
        value["contacts"] = contacts
    if messages:
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}]}


def _ts(ts: int | None) -> str:
    return str(int(time.time()) if ts is None else ts)


def _incoming(wa_id: str, kind: str, content: dict[str, Any], msg_id: str | None,
              phone_number_id: str, ts: int | None, name: str = "Warga") -> dict[str, Any]:
    message = {"from": wa_id, "id": msg_id or new_wamid(), "timestamp": _ts(ts), "type": kind}
    message.update(content)
    return envelope(messages=[message], contacts=[{"profile": {"name": name}, "wa_id": wa_id}],
                    phone_number_id=phone_number_id)


def text_message(wa_id: str, text: str, msg_id: str | None = None,
                 phone_number_id: str = PHONE_NUMBER_ID, ts: int | None = None) -> dict[str, Any]:
    """A citizen's text message (``ts``: unix seconds, default now)."""
    return _incoming(wa_id, "text", {"text": {"body": text}}, msg_id, phone_number_id, ts)


def button_reply(wa_id: str, payload: str, title: str = "Pilihan", msg_id: str | None = None,
                 phone_number_id: str = PHONE_NUMBER_ID, ts: int | None = None,
                 context_id: str | None = None) -> dict[str, Any]:
    """A press on a reply button Garda sent (``payload`` is the button's id)."""
    content: dict[str, Any] = {
        "context": {"from": DISPLAY_PHONE_NUMBER, "id": context_id or new_wamid()},
        "interactive": {"type": "button_reply", "button_reply": {"id": payload, "title": title}},
    }
    return _incoming(wa_id, "interactive", content, msg_id, phone_number_id, ts)


def list_reply(wa_id: str, payload: str, title: str = "Pilihan",
               description: str | None = None, msg_id: str | None = None,
               phone_number_id: str = PHONE_NUMBER_ID, ts: int | None = None,
               context_id: str | None = None) -> dict[str, Any]:
    """A choice from a list message Garda sent (``payload`` is the row's id)."""
    row: dict[str, Any] = {"id": payload, "title": title}
    if description is not None:
        row["description"] = description
    content: dict[str, Any] = {
        "context": {"from": DISPLAY_PHONE_NUMBER, "id": context_id or new_wamid()},
        "interactive": {"type": "list_reply", "list_reply": row},
    }
    return _incoming(wa_id, "interactive", content, msg_id, phone_number_id, ts)


def template_button(wa_id: str, payload: str | None, text: str = "Ya",
                    msg_id: str | None = None, phone_number_id: str = PHONE_NUMBER_ID,
                    ts: int | None = None) -> dict[str, Any]:
    """A press on a template's quick-reply button (``type: button``)."""
    button: dict[str, Any] = {"text": text}
    if payload is not None:
        button["payload"] = payload
    content = {"context": {"from": DISPLAY_PHONE_NUMBER, "id": new_wamid()}, "button": button}
    return _incoming(wa_id, "button", content, msg_id, phone_number_id, ts)


_MEDIA_CONTENT: dict[str, dict[str, Any]] = {
    "image": {"mime_type": "image/jpeg", "sha256": "c2hhMjU2", "id": "1479537139650973"},
    "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "c2hhMjU2",
              "id": "1479537139650974", "voice": True},
    "video": {"mime_type": "video/mp4", "sha256": "c2hhMjU2", "id": "1479537139650975"},
    "document": {"filename": "surat.pdf", "mime_type": "application/pdf",
                 "sha256": "c2hhMjU2", "id": "1479537139650976"},
    "sticker": {"mime_type": "image/webp", "sha256": "c2hhMjU2", "id": "1479537139650977",
                "animated": False},
    "location": {"latitude": -6.2, "longitude": 106.8166, "name": "Monas",
                 "address": "Gambir, Jakarta Pusat"},
}


def media_message(wa_id: str, kind: str, msg_id: str | None = None,
                  phone_number_id: str = PHONE_NUMBER_ID, ts: int | None = None) -> dict[str, Any]:
    """A media message of ``kind`` (image, audio, video, document, sticker, location,
    contacts, unsupported), shaped as the Cloud API sends it."""
    if kind == "contacts":
        content: dict[str, Any] = {"contacts": [{"name": {"formatted_name": "Budi",
                                                          "first_name": "Budi"},
                                                 "phones": [{"phone": "+62 811 0000 000",
                                                             "type": "CELL"}]}]}
    elif kind == "unsupported":
        content = {"errors": [{"code": 131051, "title": "Message type unknown",
                               "message": "Message type unknown",
                               "error_data": {"details": "Message type is currently not "
                                                         "supported."}}]}
    else:
        content = {kind: dict(_MEDIA_CONTENT.get(kind, {"id": "1479537139650978"}))}
    return _incoming(wa_id, kind, content, msg_id, phone_number_id, ts)


def reaction_message(wa_id: str, emoji: str = "\U0001f44d", message_id: str | None = None,
                     msg_id: str | None = None,
                     phone_number_id: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    """A reaction to one of Garda's messages (not a question: the channel skips it)."""
    content = {"reaction": {"message_id": message_id or new_wamid(), "emoji": emoji}}
    return _incoming(wa_id, "reaction", content, msg_id, phone_number_id, None)


def status_update(wamid: str, status: str, wa_id: str,
                  errors: list[dict[str, Any]] | None = None,
                  phone_number_id: str = PHONE_NUMBER_ID, ts: int | None = None) -> dict[str, Any]:
    """A delivery report (sent, delivered, read, failed) for a message Garda sent.

    ``errors`` as the Cloud API reports them, e.g.
    ``[{"code": 131047, "title": "Re-engagement message", ...}]``.
    """
    report: dict[str, Any] = {"id": wamid, "status": status, "timestamp": _ts(ts),
                              "recipient_id": wa_id}
    if errors:
        report["errors"] = errors
    else:
        report["conversation"] = {"id": uuid.uuid4().hex,
                                  "origin": {"type": "service"}}
        report["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    return envelope(statuses=[report], phone_number_id=phone_number_id)


REENGAGEMENT_ERROR: dict[str, Any] = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {"details": "Message failed to send because more than 24 hours have passed "
                              "since the customer last replied to this number."},
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}


def combine(*bodies: dict[str, Any]) -> dict[str, Any]:
    """One webhook body whose single change carries every message, contact and status of
    ``bodies`` (as Meta batches them); the first body's metadata is kept."""
    first = json.loads(json.dumps(bodies[0]))
    value = first["entry"][0]["changes"][0]["value"]
    for body in bodies[1:]:
        for entry in body["entry"]:
            for change in entry["changes"]:
                other = change["value"]
                for key in ("contacts", "messages", "statuses"):
                    if other.get(key):
                        value.setdefault(key, []).extend(other[key])
    return first


@dataclass
class Conversation:
    """Convenience for end-to-end tests: a citizen's wa_id and their message ids."""

    wa_id: str = "6281234567890"
    sent: list[str] = field(default_factory=list)

    def text(self, text: str, **kwargs: Any) -> dict[str, Any]:
        body = text_message(self.wa_id, text, **kwargs)
        self.sent.append(body["entry"][0]["changes"][0]["value"]["messages"][0]["id"])
        return body
