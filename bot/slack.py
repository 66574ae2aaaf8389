"""Slack's entry points: the Bolt app at ``POST /slack/events`` (or over Socket Mode), `/task`, the new-task modal.

Bolt checks every request's signature and runs its listeners with ``process_before_response``,
so the answer Slack gets (its "ack") leaves only after the listener returned: a DM is stored
(``Inbox.receive``) before it is acknowledged, and a failure answers 500 so Slack delivers again.
The listeners only store and enqueue; `/task` commands run in an RQ job that answers on the
command's ``response_url``. Bolt's sync ``App`` runs in the threadpool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import redis
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt import App, BoltResponse
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request.internals import parse_body
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient
from starlette.concurrency import run_in_threadpool

from channels.slack import SlackChannel
from channels.slack_blocks import ACTION
from engine import keys
from engine.bounds import check_value
from engine.cron import check as check_cron
from engine.definitions import load_definition
from engine.engine import Engine
from engine.errors import InvalidInput, NotFound
from engine.model import Contact
from engine.ports import Address, DeliveryFailed, Outbound

from .commands import Actor, UsageError, execute, parse
from .reconnect import UNAVAILABLE
from .settings import Settings
from .slack_views import NEW_TASK, block_for, new_task_modal, questions, reply_message, slug, submitted

log = logging.getLogger("taskbot.slack")

COMMAND_FIELDS = ("text", "user_id", "user_name", "response_url", "channel_id", "team_id")
#: Slack's replay window: a signature older than this is refused.
SIGNATURE_MAX_AGE = 300
#: What Bolt (or an adapter) raises on a field of another type than Slack sends.
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)


def secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def slack_channel(engine: Engine) -> SlackChannel | None:
    channel = engine.channels.get("slack")
    return channel if isinstance(channel, SlackChannel) else None


# -- the Bolt app: translate, store or enqueue, acknowledge -----------------------------------------
class _SameClient(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when given a client: the client is built from that very token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


bolt_log = logging.getLogger("taskbot.slack.bolt")
bolt_log.addFilter(_SameClient())


def build_bolt_app(engine: Engine, channel: SlackChannel, signing_secret: str) -> App:
    bolt = App(client=channel.client, signing_secret=signing_secret, process_before_response=True,
               token_verification_enabled=False, name="taskbot", logger=bolt_log)

    @bolt.event("message")
    def on_message(body: dict[str, Any], ack: Any) -> None:
        message = SlackChannel.inbound(body)
        if message is not None:
            try:
                engine.inbox.receive(message)  # stored (once per event_id) and queued, before the ack
            except InvalidInput as exc:  # a 4xx would only make Slack deliver the same event again
                log.warning("Slack event %s not stored: %s", message.provider_id, exc)
        ack()

    @bolt.action(re.compile(f"^{ACTION}"))
    def on_click(body: dict[str, Any], ack: Any) -> None:
        message = SlackChannel.click(body)
        if message is not None:
            try:
                engine.inbox.receive(message)  # a click is an answer like a DM: stored, once, before the ack
            except InvalidInput as exc:  # a 4xx would only make Slack deliver the same click again
                log.warning("Slack click %s not stored: %s", message.provider_id, exc)
        ack()

    @bolt.command("/task")
    def on_task(command: dict[str, Any], ack: Any) -> None:
        fields = {k: v for k in COMMAND_FIELDS if isinstance(v := command.get(k), str)}
        if "user_id" not in fields:
            ack(response_type="ephemeral", text="This command came without a user id; nothing was done.")
            return
        try:
            name = parse(fields.get("text", "")).name
        except UsageError as exc:
            ack(response_type="ephemeral", text=str(exc))
            return
        if name == "new":  # a trigger_id lives 3 seconds: the form opens here, not in a job
            try:
                channel.client.views_open(trigger_id=str(command.get("trigger_id") or ""), view=new_task_modal())
            except (SlackClientError, OSError) as exc:
                ack(response_type="ephemeral", text=f"Sorry, the form did not open ({exc}); try /task new again.")
                return
            ack()
            return
        engine.jobs.enqueue("slack_command", json.dumps(fields))
        ack()

    @bolt.error
    def on_error(error: Exception) -> BoltResponse | None:
        """Redis away: 503, as every route of the app answers then (Slack delivers the event again later).
        A signed request Bolt cannot take apart (a field of another type than Slack sends) is a 400: no
        retry would change it. Anything else stays a 500, so Slack delivers the event again."""
        if isinstance(error, redis.RedisError):
            bolt_log.warning("Slack request not stored: Redis is not answering (%s)", error)
            return BoltResponse(status=503, body=json.dumps({"detail": UNAVAILABLE}),
                                headers={"Content-Type": "application/json", "Retry-After": "1"})
        if isinstance(error, SHAPE_ERRORS):
            log.warning("a Slack request of an unexpected shape was refused: %r", error)
            return BoltResponse(status=400, body=json.dumps({"detail": "not a Slack request taskbot can read"}),
                                headers={"Content-Type": "application/json"})
        log.error("a Slack request failed", exc_info=error)
        return None

    @bolt.view(NEW_TASK)
    def on_new_task(body: dict[str, Any], view: dict[str, Any], ack: Any) -> None:
        try:
            user, form = str(body["user"]["id"]), submitted(view["state"]["values"])
        except (KeyError, TypeError, AttributeError):
            log.warning("a new-task form came without its user or values; nothing saved")
            ack()
            return
        errors, saved = save_new_task(engine, user, form)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack()
        engine.jobs.enqueue("slack_task_saved", json.dumps(saved))

    return bolt


def mount_slack(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Add ``POST /slack/events``; with ``SLACK_APP_TOKEN``, also connect Socket Mode for the app's lifetime."""
    channel = slack_channel(engine)
    signing_secret = secret(settings.slack_signing_secret)
    bolt = build_bolt_app(engine, channel, signing_secret) if channel is not None else None

    async def slack_events(request: Request) -> Response:
        """Slack events, slash commands and interactivity, one URL; 401 unless signed with SLACK_SIGNING_SECRET."""
        if bolt is None:
            return JSONResponse({"detail": "Slack is off: SLACK_BOT_TOKEN is not set"}, status_code=404)
        if not signing_secret:  # an empty secret would let anyone sign
            return JSONResponse({"detail": "SLACK_SIGNING_SECRET is not set"}, status_code=401)
        body = await request.body()  # at most TASKBOT_MAX_BODY: the app answers 413 beyond it
        if not signed(signing_secret, request.headers.get("X-Slack-Request-Timestamp"),
                      request.headers.get("X-Slack-Signature"), body):
            return JSONResponse({"detail": "missing, stale or wrong Slack signature"}, status_code=401)
        problem = malformed(body, request.headers.get("Content-Type"))
        if problem is not None:
            return JSONResponse({"detail": problem}, status_code=400)
        try:
            bolt_request = to_bolt_request(request, body)  # Bolt reads the team, user and channel ids here
            answer = await run_in_threadpool(bolt.dispatch, bolt_request)
        except SHAPE_ERRORS:  # listeners' errors stay inside dispatch: this is Bolt failing on the body itself
            return JSONResponse({"detail": "not a Slack request taskbot can read"}, status_code=400)
        return to_starlette_response(answer)

    app.add_api_route("/slack/events", slack_events, methods=["POST"], tags=["slack"],
                      summary="Slack events, slash commands and interactivity",
                      responses={400: {"description": "not a Slack request taskbot can read"},
                                 401: {"description": "a bad or missing Slack signature"},
                                 404: {"description": "Slack is off (no SLACK_BOT_TOKEN)"},
                                 413: {"description": "a body over 1 MiB"}})
    app_token = secret(settings.slack_app_token)
    if bolt is not None and app_token:
        socket_mode(app, bolt, app_token)
    elif bolt is not None and not signing_secret:
        log.warning("SLACK_SIGNING_SECRET is not set (nor SLACK_APP_TOKEN): Slack cannot reach taskbot")


def signed(signing_secret: str, timestamp: str | None, signature: str | None, body: bytes) -> bool:
    """Slack's signature (``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``) made in the last five minutes.

    Checked over the body's bytes before anything reads them (slack_sdk's verifier decodes the
    body first, and raises on a timestamp that is no number, which would be a 500).
    """
    if not timestamp or not signature or not re.fullmatch(r"[0-9]{1,12}", timestamp):
        return False
    if abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE:
        return False
    expected = hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return hmac.compare_digest(f"v0={expected.hexdigest()}".encode(), signature.encode("latin-1"))


def malformed(body: bytes, content_type: str | None) -> str | None:
    """Why a signed body is no Slack request (not UTF-8, not an object, ``event`` not an object), or None.

    Bolt assumes Slack's shapes and fails with a 500 on others; these are answered 400 instead,
    as is text that cannot be stored (a lone surrogate) or nesting deeper than 32 levels.
    """
    try:
        payload = parse_body(body.decode("utf-8"), content_type)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "the body is not a Slack request (not UTF-8, or not JSON where JSON is due)"
    if not isinstance(payload, dict):
        return "the body is not a JSON object"
    event = payload.get("event")
    if "event" in payload and not (isinstance(event, dict) and isinstance(event.get("type"), str)):
        return "event: expected an object with a type"
    if not isinstance(payload.get("type", ""), str):
        return "type: expected a string"
    view = payload.get("view")
    if "view" in payload and not (isinstance(view, dict) and isinstance(view.get("type"), str)):
        return "view: expected an object with a type"
    try:
        check_value(payload)
    except InvalidInput as exc:
        return f"{exc.field}: {exc.reason}"
    return None


def socket_mode(app: FastAPI, bolt: App, app_token: str) -> None:
    """Receive over Slack's WebSocket instead of public HTTP (SLACK_APP_TOKEN); runs in Bolt's own threads."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(asgi_app: Any) -> AsyncIterator[Any]:
        handler = SocketModeHandler(bolt, app_token)
        await asyncio.to_thread(handler.connect)
        log.info("Slack Socket Mode connected")
        try:
            async with inner(asgi_app) as state:
                yield state
        finally:
            await asyncio.to_thread(handler.close)

    app.router.lifespan_context = lifespan


# -- `/task`, run in a job -----------------------------------------------------------------------
def actor_for(engine: Engine, channel: SlackChannel | None, user_id: str, admins: set[str]) -> Actor:
    """Everything the Slack user is known as: their id, their contact's id and email, Slack's email for them."""
    ids = {user_id}
    contact = engine.store.contact_by("slack_user_id", user_id)
    if contact is not None:
        ids |= {contact.id, *([contact.email] if contact.email else [])}
    email = ((channel.user_info(user_id) if channel is not None else {}).get("profile") or {}).get("email")
    if email:
        ids.add(str(email).lower())
    return Actor(frozenset(ids), admin=bool(ids & admins))


def run_command(engine: Engine, payload: str) -> None:
    """Run one `/task` for the Slack user who typed it and answer on the command's response_url."""
    command = json.loads(payload)
    channel = slack_channel(engine)
    actor = actor_for(engine, channel, command["user_id"], Settings().admin_ids)
    text = command.get("text") or ""
    reply = execute(engine, text, actor, kind="slash")
    name = (text.split() or ["help"])[0].lower().lstrip("/")
    respond(channel, command, reply_message(name, reply.text, reply.run))


def respond(channel: SlackChannel | None, command: dict[str, Any], message: dict[str, Any]) -> None:
    """Answer on the response_url; failing that, by DM. Never raise: the command already ran once."""
    url = command.get("response_url")
    if url:
        hook = WebhookClient(url, timeout=15, retry_handlers=[ConnectionErrorRetryHandler(),
                                                             RateLimitErrorRetryHandler(max_retry_count=2)])
        try:
            if hook.send_dict(message).status_code == 200:
                return
        except (SlackClientError, OSError) as exc:
            log.warning("response_url failed (%s); answering by DM", exc)
    if channel is not None:
        try:
            channel.client.chat_postMessage(channel=command["user_id"], text=message["text"],
                                            blocks=message.get("blocks"))
        except (SlackClientError, OSError) as exc:
            log.warning("could not answer /task for %s: %s", command["user_id"], exc)


# -- the new-task modal --------------------------------------------------------------------------
def save_new_task(engine: Engine, user_id: str, form: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Validate the modal's answers as a definition; store it only when all is well.

    Returns:
        (errors by block id, nothing stored) or ({}, what the follow-up job needs).
    """
    directory = {c.slack_user_id: c for c in engine.store.list_contacts() if c.slack_user_id}
    person = {u: (directory[u].id if u in directory else u) for u in [user_id, *form.get("participants", [])]}
    name, dataset, cron = form.get("name", ""), form.get("dataset", ""), form.get("schedule", "")
    template: dict[str, Any] = {
        "instructions": form.get("instructions", ""), "fields": questions(form.get("questions", "")),
        "chase": {"interval": form.get("chase_interval") or "24h", "max_chases": form.get("max_chases") or "2"}}
    if form.get("participants"):
        template["participants"] = [person[u] for u in form["participants"]]
    if dataset:
        template["dataset"] = dataset
    if form.get("filter"):
        template["filter"] = form["filter"]
    data = {"id": slug(name), "name": name, "output_type": form.get("output_type") or "report",
            "description": form.get("description", ""), "owner": person[user_id], "template": template}
    tz = form.get("timezone") or "UTC"
    try:
        if not name:
            raise InvalidInput("name", "give the task a name")
        if not data["id"]:
            raise InvalidInput("id", "the name needs some letters or digits")
        definition = load_definition(data)
        if engine.r.hexists(keys.DEFS, definition.id):
            raise InvalidInput("id", f"a task {definition.id!r} exists already; pick another name")
        if dataset:
            try:
                engine.store.get_dataset(dataset)
            except NotFound:
                raise InvalidInput("template.dataset", f"no dataset {dataset!r} (import it first)") from None
        if cron:
            check_cron(cron, tz)
    except InvalidInput as exc:
        return {block_for(exc.field): exc.reason[:150]}, {}
    linked = sorted({u for u in person if u not in directory})
    engine.store.put_contacts([Contact(id=u, slack_user_id=u) for u in linked])
    engine.runs.apply(definition)
    schedule = engine.schedules.create(definition.id, cron, tz)["id"] if cron else None
    return {}, {"user": user_id, "task_id": definition.id, "name": definition.name, "link": linked,
                "schedule": schedule, "cron": cron or None, "timezone": tz}


def after_new_task(engine: Engine, payload: str) -> None:
    """Give the Slack people a new task brought in their Slack names, and tell its author it is saved."""
    saved = json.loads(payload)
    channel = slack_channel(engine)
    if channel is None:
        return
    for uid in saved["link"]:
        contact = engine.store.find_contacts([uid]).get(uid)
        user = channel.user_info(uid)
        name = user.get("real_name") or (user.get("profile") or {}).get("real_name") or user.get("name")
        if contact is not None and name and contact.name == contact.id:
            engine.store.put_contacts([contact.model_copy(update={"name": name})])
    text = f"Saved task {saved['name']} ({saved['task_id']}). Start it with /task run {saved['task_id']}."
    if saved.get("schedule"):
        text += f" It also runs on \"{saved['cron']}\" ({saved['timezone']}), schedule {saved['schedule']}."
    try:
        channel.send(Outbound(Address("slack", saved["user"]), text, key=f"saved:{saved['task_id']}", kind="direct"))
    except DeliveryFailed as exc:
        log.warning("could not confirm task %s to %s: %s", saved["task_id"], saved["user"], exc.reason)
