"""Conversations (SPEC §5): the scripted one, and the agent behind any other model.

A :class:`Conversation` says how a sub-task opens and whether its turns are *live* (call a
model). Scripted turns are pure and cheap, so the inbox computes them inside its transaction.
Live turns go through :meth:`Conversations.take_turn`: take a concurrency slot, compute the
turn outside any transaction (model calls, tools staging their effects), then apply it in one
``WATCH``/``MULTI`` transaction that re-checks the inbound and the sub-task. A turn applied by
another job meanwhile is dropped whole, so tool effects happen once. The participant's
message is stored before any of this (``Inbox.receive``) and kept whatever the model does.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

from . import keys
from .agent import AgentConfig, AgentTurn, history, run_turn, system_prompt
from .budget import Budgets
from .errors import NotFound
from .inbox import Inbox
from .lateness import takes_answer
from .limits import Slots
from .model import Assistant, ConversationState, FieldSpec, TaskDefinition, TaskState
from .outbox import REF_TTL
from .ports import Clock, Completion, Inbound, Model, ModelError, Usage
from .questions import merge
from .scripted import opening
from .store import Store, decode_hash, dumps, message
from .tools import ToolContext, offered

log = logging.getLogger("taskbot.conversation")

FAULT_TEXT = ("Sorry, I cannot answer right now (the assistant's service is failing). Your message is kept; "
              "write again in a while and I will pick up from here.")
ASSISTANT_TTL = 2.0
#: Longer messages are cut, with a note in the conversation (SPEC §10).
MAX_TEXT = 20_000
CLOSED_TEXT = "Thanks! This task has already closed, so your message was kept but not recorded as an answer."
NOT_OPEN_TEXT = "This task has not started for you yet; your message was kept."
KICKOFF_TEXT = "Start the task now. Do what it asks; ask the owner only for what you need."


class Conversation(Protocol):
    """How a sub-task's conversation runs."""

    live: bool  # turns call a model: computed outside the transaction, holding a slot

    def opening(self, definition: TaskDefinition, instructions: str, fields: list[FieldSpec]) -> str: ...


class Scripted:
    """The offline conversation: one field per turn (see :mod:`.scripted`)."""

    live = False

    def opening(self, definition: TaskDefinition, instructions: str, fields: list[FieldSpec]) -> str:
        return opening(instructions, fields)


class Agent:
    """A litellm model with tools. The opening is written without the model: fanning out to a
    thousand people costs no tokens and cannot fail on the provider; a conversation with no
    fields (a direct task) starts with the assistant's own turn instead."""

    live = True

    def opening(self, definition: TaskDefinition, instructions: str, fields: list[FieldSpec]) -> str:
        if not fields:
            return f"On it: {definition.name}. I will write here if I need anything from you."
        return opening(instructions, fields)


SCRIPTED, AGENT = Scripted(), Agent()


class NoModel:
    """Stands in when no model adapter is wired: every live turn fails clearly."""

    def complete(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 **opts: Any) -> Completion:
        raise ModelError("no model adapter is configured", retryable=False)

    def image(self, model: str, prompt: str, **opts: Any) -> bytes:
        raise ModelError("no model adapter is configured", retryable=False)


def plan(definition: TaskDefinition, assistant: Assistant, kind: str) -> TaskDefinition:
    """A direct task run by a model is a conversation with the owner, then the compile step
    (a delegated one skips the conversation: another assistant asked, not a person)."""
    if definition.template is not None or definition.workflow is not None or kind == "delegation":
        return definition
    if assistant.scripted:
        return definition
    return TaskDefinition.model_validate({
        **definition.model_dump(exclude_none=True),
        "workflow": [{"type": "conversation", "instructions": definition.description},
                     {"type": "compile", "instructions": definition.description}]})


class Conversations:
    """How conversations open and how a model's turns are taken.

    Args:
        store: the records.
        clock: the time source.
        inbox: where notes from taskbot are posted (they run a turn like a message would).
        slots: the concurrency limits a model's turn holds a slot of.
        model: the LLM port (None: every model turn fails clearly).
        config: the agent loop's bounds and retries.
        budgets: whether a run's token budget allows the next model call (else the scripted questions go on).
    """

    def __init__(self, store: Store, clock: Clock, inbox: Inbox, slots: Slots, model: Model | None,
                 config: AgentConfig, budgets: Budgets) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.budgets = budgets
        self.inbox = inbox
        self.slots = slots
        self.model: Model = model or NoModel()
        self.config = config
        self._assistants: dict[str, tuple[float, Assistant]] = {}

    def assistant_for(self, rid: str) -> Assistant:
        """The run's assistant, read at most every few seconds per process: every answer asks
        whether its conversation is live, and the scripted path must stay one round trip lean."""
        aid = self.store.definition_of(rid).assistant
        now = time.monotonic()
        cached = self._assistants.get(aid)
        if cached is None or cached[0] < now:
            cached = (now + ASSISTANT_TTL, self.store.assistant(aid))
            self._assistants[aid] = cached
        return cached[1]

    def forget(self, assistant_id: str) -> None:
        self._assistants.pop(assistant_id, None)

    @staticmethod
    def of(assistant: Assistant) -> Conversation:
        return SCRIPTED if assistant.scripted else AGENT

    def opening(self, run: dict[str, str], state: ConversationState | Any) -> str:
        definition = self.store.definition_of(run)
        return self.of(self.assistant_for(run["id"])).opening(definition, state.instructions, list(state.fields))

    # -- synthetic messages: the kick-off of a free conversation, a delegated result -----------------
    def post_note(self, sid: str, text: str, note: str, provider_id: str, **meta: Any) -> None:
        """Put a note from taskbot into a live conversation; it runs a turn like a message would."""
        sub = self.store.sub_fields(sid)
        self.inbox.receive(Inbound(sub.get("channel") or "web", sub.get("address") or sub["participant_id"],
                                     text, provider_id, reply_to=sub["token"], meta={"note": note, **meta}))

    def kickoff(self, run: dict[str, str], sid: str, state: Any) -> None:
        """A conversation with no fields starts with the assistant's turn, not the owner's."""
        if not state.fields and self.of(self.assistant_for(run["id"])).live:
            self.post_note(sid, KICKOFF_TEXT, "kickoff", f"kickoff:{sid}")

    def deliver_result(self, rid: str) -> None:
        """A delegated run ended: its result goes back into the conversation that asked."""
        run = self.store.run_fields(rid)
        parent = run.get("parent_sub")
        if not parent:
            return
        assistant = self.store.definition_of(run).assistant
        if run["status"] in ("completed", "awaiting_review"):
            body = "\n\n".join(d["content"] for d in self.store.deliverables(rid)) or "(no content)"
        else:
            body = f"It {run['status']}: {run.get('error_message') or 'no reason given'}"
        text = f"Result of the work delegated to {assistant} (run {rid}):\n\n{body[:8000]}"
        try:
            self.post_note(parent, text, "delegation", f"delegation:{rid}", run_id=rid)
        except NotFound:
            log.warning("delegated run %s ended but its conversation %s is gone", rid, parent)

    # -- a live turn --------------------------------------------------------------------------------
    def take_turn(self, iid: str, sid: str, msg: dict[str, str], member: str) -> str | None:
        """Run the turn for stored message ``iid`` if its assistant is live.

        ``member`` is the lease of the inbox being drained: the turn's slot is held (and waited
        for, and woken) under it, and its heartbeat keeps that lease alive while the model works.

        Returns:
            None for a scripted assistant (the inbox applies it); ``"wait"`` when the turn is
            queued for a slot (the inbound and its lease stay); ``"applied"`` otherwise.
        """
        rid = self.r.hget(keys.sub(sid), "run_id")
        if rid is None or self.assistant_for(rid.decode()).scripted:
            return None
        sub = self.store.sub_fields(sid)
        run = self.store.run_fields(sub["run_id"])
        assistant = self.assistant_for(run["id"])
        if self.budgets.spent(run, assistant):
            return None  # the scripted questions go on instead of the model (the inbox applies it)
        meta = json.loads(msg.get("meta") or "{}")
        if not takes_answer(self.store, sub) or meta.get("auto_reply"):
            self._apply(iid, sid, msg, run, None)
            return "applied"
        with self.slots.hold(member, assistant.id, assistant.max_concurrent_tasks, f"sub:{sid}") as got:
            if got != 1:
                return "wait"
            if self.r.hget(keys.inbound(iid), "state") != b"stored":
                return "applied"  # another job applied it while this one waited
            sub = self.store.sub_fields(sid)  # it may have waited: closed since, it gets no turn
            turn = self._compute(iid, sub, run, assistant, msg, meta) if takes_answer(self.store, sub) else None
            self._apply(iid, sid, msg, run, turn)
        return "applied"

    def _compute(self, iid: str, sub: dict[str, str], run: dict[str, str], assistant: Assistant,
                 msg: dict[str, str], meta: dict[str, Any]) -> AgentTurn:
        definition = self.store.definition_of(run)
        state = self.store.state_of(run, int(sub["step"]))
        assert isinstance(state, ConversationState | TaskState)
        fields: list[FieldSpec] = list(state.fields)
        data = json.loads(sub["data"])
        bound = self.config.history
        stored = self.r.lrange(keys.sub_conv(sub["id"]), -max(4 * bound, 40) if bound else 0, -1)
        conversation = [json.loads(m) for m in stored]
        conversation.append({"role": "system" if meta.get("note") else "user", "text": msg["text"][:MAX_TEXT]})
        tools = offered(assistant, definition)
        ctx = ToolContext(self.store, self.clock.now(), sub["id"], run, definition, fields, dict(data), turn_key=iid,
                          tz=sub.get("tz") or "UTC")
        system = system_prompt(assistant, definition, state.instructions, fields, data,
                               sub.get("name") or sub["participant_id"], tools)
        return run_turn(self.model, self.config, assistant, system, history(conversation, bound), tools, ctx)

    def _apply(self, iid: str, sid: str, msg: dict[str, str], run: dict[str, str], turn: AgentTurn | None) -> None:
        """Record the message and the turn's effects at once; nothing if another job did already."""
        text, at = msg["text"], float(msg["at"])
        cut = len(text) > MAX_TEXT
        meta = json.loads(msg.get("meta") or "{}")
        note = meta.get("note")
        extra = {k: meta[k] for k in ("attachments",) if meta.get(k)}
        usage = turn.usage if turn else Usage()

        def apply(p: Any) -> bool:
            if p.hget(keys.inbound(iid), "state") != b"stored":
                return False
            sub = decode_hash(p.hgetall(keys.sub(sid)))
            now = self.clock.now()
            late = sub["status"] != "running"
            closed = late and not takes_answer(self.store, sub)  # a late answer its task still takes is recorded
            first = (message("system", text[:MAX_TEXT], at, kind=note, **({"late": True} if late else {}))
                     if note else message("user", text[:MAX_TEXT], at, **extra, **(
                         {"auto_reply": True} if meta.get("auto_reply") else {"late": True} if late else {})))
            entries = [first]
            if cut:
                entries.append(message("system", f"The message was cut to {MAX_TEXT:,} characters.", now))
            update: dict[str, Any] = {"state": "applied", "sid": sid, "done": "0", "reply": ""}
            sub_update: dict[str, Any] = {}
            refs: list[str] = []
            notify = ""
            if meta.get("auto_reply") or (late and note):
                update["state"] = "replied"
            elif closed or (late and turn is None):
                update["reply"] = NOT_OPEN_TEXT if sub["status"] == "pending" else CLOSED_TEXT
            elif turn is None or turn.failed:
                reason = (turn.failed if turn else None) or "no turn"
                entries.append(message("system", f"The assistant could not answer ({reason}); the message is kept "
                                                 "and the next one tries again.", now, kind="fault"))
                update["reply"] = "" if note else FAULT_TEXT
                if not note:
                    entries.append(message("assistant", FAULT_TEXT, now, kind="fault"))
                sub_update["fault"] = reason
                notify = "" if sub.get("fault") else reason
            else:
                data = json.loads(sub["data"])
                history = json.loads(sub.get("data_history") or "{}")
                if merge(data, history, turn.record, now):  # record_data again: the old value is kept
                    sub_update["data_history"] = dumps(history)
                if len(turn.record) == 1 and meta.get("ref") and not note:  # an edit of it changes this answer
                    entries[0] = message("user", text[:MAX_TEXT], at, **extra, ref=meta["ref"],
                                         field=next(iter(turn.record)))
                    refs.append(meta["ref"])
                for t in turn.log:
                    entries.append(message("tool", f"{t['tool']}({t['arguments']}) → {t['result']}", now,
                                           kind="refused" if t.get("refused") else "tool", tool=t["tool"]))
                entries.append(message("assistant", turn.reply, now, kind="reply", usage={
                    "prompt": turn.usage.prompt_tokens, "completion": turn.usage.completion_tokens}))
                sub_update.update(data=dumps(data), fault="")
                update.update(reply=turn.reply, done="1" if turn.done else "0")
                if turn.effects:
                    update["effects"] = dumps(turn.effects)
            if update["state"] == "applied" and not update["reply"]:
                update["state"] = "replied"
            if not note and not late:
                sub_update["last_activity_at"] = now
            p.multi()
            p.rpush(keys.sub_conv(sid), *entries)
            if sub_update:
                p.hset(keys.sub(sid), mapping=sub_update)
            if "last_activity_at" in sub_update and sub.get("channel"):
                p.zadd(keys.active(sub["channel"], sub["address"]), {sid: now}, xx=True)
            for ref in refs:  # an edit of the message routes back here
                p.set(keys.thread(msg["channel"], ref), sid, ex=REF_TTL)
            for item in (turn.saved if turn and not turn.failed and not late else []):
                p.rpush(keys.run_saved(run["id"]), dumps(item))
            if notify:
                self.store.notify(p, now, run["owner"], "assistant_error", run,
                              f"The assistant could not answer {sub.get('name') or sub['participant_id']} in run "
                              f"{run['id']} of {run['task_id']}: {notify}. Their message is kept; their next "
                              "message tries again.")
            self.store.count_usage(p, run["id"], usage, turn.calls if turn else 0, sid)
            p.hset(keys.inbound(iid), mapping=update)
            return True

        if not self.r.transaction(apply, keys.sub(sid), keys.inbound(iid), value_from_callable=True) and turn:
            self.store.count_usage_now(run["id"], usage, turn.calls, sid)  # spent, though another job's turn won
