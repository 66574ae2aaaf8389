"""Reads and simple writes of taskbot's records in Redis; racing transitions live in the services."""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import redis

from . import keys
from .errors import NotFound
from .model import STORED, Assistant, CompileState, Contact, ConversationState, FieldSpec, TaskDefinition, TaskState
from .ports import Usage


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def new_id(nbytes: int = 6) -> str:
    return secrets.token_hex(nbytes)


def message(role: str, text: str, at: float, **extra: Any) -> str:
    """One conversation entry as stored (milliseconds are all a reader needs of ``at``)."""
    return dumps({"role": role, "text": text, "at": round(at, 3), **extra})


@functools.lru_cache(maxsize=512)
def _snapshot(r: redis.Redis, rid: str) -> TaskDefinition:
    """A run's definition snapshot never changes, so each process reads and parses it once.

    It lives in its own key: a run's hash is read on every answer, and a definition with a
    thousand participants listed would make every such read tens of kilobytes.
    """
    raw = r.get(keys.run_definition(rid))
    if raw is None:
        raise NotFound("run", rid)
    return TaskDefinition.model_validate_json(raw)


def decode_hash(raw: dict[bytes, bytes] | dict[str, str]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


class Store:
    """Typed access to the records; every method is one or two round trips.

    Args:
        r: the Redis connection.
        default_model: the model of the built-in ``default`` assistant (TASKBOT_MODEL).
    """

    def __init__(self, r: redis.Redis, default_model: str = "scripted") -> None:
        self.r = r
        self.default_model = default_model

    # -- what a run follows ----------------------------------------------------------
    def definition_of(self, run: Mapping[str, str] | str) -> TaskDefinition:
        """The definition a run follows (its snapshot), given the run's fields or its id."""
        return _snapshot(self.r, run if isinstance(run, str) else run["id"])

    def state_of(self, run: Mapping[str, str] | str, step: int) -> ConversationState | TaskState | CompileState:
        return self.definition_of(run).states()[step]

    def fields_of(self, run: Mapping[str, str] | str, step: int) -> list[FieldSpec]:
        state = self.state_of(run, step)
        assert isinstance(state, ConversationState | TaskState)
        return list(state.fields)

    def assistant(self, assistant_id: str) -> Assistant:
        """An assistant by id (``default`` exists from the start).

        Raises:
            NotFound: no such assistant.
        """
        return self.get_assistant(assistant_id, self.default_model)

    def assistant_of(self, run: Mapping[str, str]) -> Assistant:
        return self.assistant(self.definition_of(run).assistant)

    # -- task definitions -------------------------------------------------
    def put_definition(self, definition: TaskDefinition) -> None:
        self.r.hset(keys.DEFS, definition.id, definition.model_dump_json(exclude_none=True))

    def get_definition(self, task_id: str) -> TaskDefinition:
        raw = self.r.hget(keys.DEFS, task_id)
        if raw is None:
            raise NotFound("task", task_id)
        return TaskDefinition.model_validate_json(raw)

    def list_definitions(self) -> list[TaskDefinition]:
        raw = self.r.hgetall(keys.DEFS)
        return sorted((TaskDefinition.model_validate_json(v) for v in raw.values()), key=lambda d: d.id)

    def delete_definition(self, task_id: str) -> None:
        if not self.r.hdel(keys.DEFS, task_id):
            raise NotFound("task", task_id)

    # -- assistants -------------------------------------------------------
    def put_assistant(self, assistant: Assistant) -> None:
        # what was given only: an assistant that names no channels keeps "every channel", a plugin's added later too
        self.r.hset(keys.ASSISTANTS, assistant.id, assistant.model_dump_json(exclude_unset=True))

    def get_assistant(self, assistant_id: str, default_model: str) -> Assistant:
        raw = self.r.hget(keys.ASSISTANTS, assistant_id)
        if raw is not None:
            return Assistant.model_validate_json(raw, context=STORED)
        if assistant_id == "default":
            return Assistant(id="default", model=default_model)
        raise NotFound("assistant", assistant_id)

    def list_assistants(self, default_model: str = "scripted") -> list[Assistant]:
        raw = self.r.hgetall(keys.ASSISTANTS)
        found = {a.id: a for a in (Assistant.model_validate_json(v, context=STORED) for v in raw.values())}
        found.setdefault("default", Assistant(id="default", model=default_model))
        return sorted(found.values(), key=lambda a: a.id)

    # -- contacts and datasets -------------------------------------------
    def put_contacts(self, contacts: list[Contact]) -> None:
        """Store contacts and their indexes; an index entry a contact no longer has is dropped."""
        before = self.r.hmget(keys.CONTACTS, [c.id for c in contacts]) if contacts else []
        with self.r.pipeline() as p:
            for c, raw in zip(contacts, before, strict=True):
                if raw is not None:
                    old = Contact.model_validate_json(raw, context=STORED)
                    for field, index in keys.CONTACT_INDEXES.items():
                        value = getattr(old, field)
                        if value and value != getattr(c, field):
                            p.hdel(index, str(value).lower() if field == "email" else str(value))
                p.hset(keys.CONTACTS, c.id, c.model_dump_json(exclude_none=True))
                for field, index in keys.CONTACT_INDEXES.items():
                    value = getattr(c, field)
                    if value:
                        p.hset(index, str(value).lower() if field == "email" else str(value), c.id)
            p.execute()

    def contact_by(self, field: str, value: str) -> Contact | None:
        """The contact whose ``email``, ``slack_user_id`` or ``telegram_chat_id`` is ``value``."""
        cid = self.r.hget(keys.CONTACT_INDEXES[field], value.lower() if field == "email" else value)
        raw = self.r.hget(keys.CONTACTS, cid) if cid is not None else None
        return Contact.model_validate_json(raw, context=STORED) if raw is not None else None

    def list_contacts(self) -> list[Contact]:
        raw = self.r.hgetall(keys.CONTACTS)
        return sorted((Contact.model_validate_json(v, context=STORED) for v in raw.values()), key=lambda c: c.id)

    def find_contacts(self, ids: list[str]) -> dict[str, Contact]:
        """Contacts for participant ids, by id or else by email, in two round trips."""
        if not ids:
            return {}
        found: dict[str, Contact] = {}
        for pid, raw in zip(ids, self.r.hmget(keys.CONTACTS, ids), strict=True):
            if raw is not None:
                found[pid] = Contact.model_validate_json(raw, context=STORED)
        missing = [pid for pid in ids if pid not in found and "@" in pid]
        if missing:
            alias = self.r.hmget(keys.CONTACTS_BY_EMAIL, [m.lower() for m in missing])
            pairs = [(pid, cid) for pid, cid in zip(missing, alias, strict=True) if cid is not None]
            if pairs:
                raws = self.r.hmget(keys.CONTACTS, [cid for _, cid in pairs])
                for (pid, _), raw in zip(pairs, raws, strict=True):
                    if raw is not None:
                        found[pid] = Contact.model_validate_json(raw, context=STORED)
        return found

    def put_dataset(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.r.set(keys.dataset(name), dumps(rows))

    def get_dataset(self, name: str) -> list[dict[str, Any]]:
        raw = self.r.get(keys.dataset(name))
        if raw is None:
            raise NotFound("dataset", name)
        rows: list[dict[str, Any]] = json.loads(raw)
        return rows

    # -- runs and sub-tasks ----------------------------------------------
    def run_fields(self, rid: str) -> dict[str, str]:
        raw = decode_hash(self.r.hgetall(keys.run(rid)))
        if not raw:
            raise NotFound("run", rid)
        return raw

    def sub_fields(self, sid: str) -> dict[str, str]:
        raw = decode_hash(self.r.hgetall(keys.sub(sid)))
        if not raw:
            raise NotFound("sub-task", sid)
        return raw

    def sub_ids(self, rid: str) -> list[str]:
        return [s.decode() for s in self.r.lrange(keys.run_subs(rid), 0, -1)]

    def subs_fields(self, sids: list[str]) -> list[dict[str, str]]:
        with self.r.pipeline(transaction=False) as p:
            for sid in sids:
                p.hgetall(keys.sub(sid))
            return [decode_hash(h) for h in p.execute()]

    def conversation(self, sid: str) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.r.lrange(keys.sub_conv(sid), 0, -1)]

    def run_ids(self, task_id: str | None = None, limit: int = 50) -> list[str]:
        key = keys.runs_of_task(task_id) if task_id else keys.RUNS
        return [i.decode() for i in self.r.zrevrange(key, 0, limit - 1)]

    def run_ids_where(self, keep: Callable[[str | None], bool], task_id: str | None = None,
                      limit: int = 50) -> list[str]:
        """Newest first, the runs whose ``owner`` passes ``keep``: read a page at a time until ``limit`` are found."""
        key = keys.runs_of_task(task_id) if task_id else keys.RUNS
        found: list[str] = []
        start, page = 0, max(limit, 200)
        while len(found) < limit:
            ids = [i.decode() for i in self.r.zrevrange(key, start, start + page - 1)]
            if not ids:
                break
            with self.r.pipeline(transaction=False) as p:
                for rid in ids:
                    p.hget(keys.run(rid), "owner")
                owners = p.execute()
            found += [rid for rid, owner in zip(ids, owners, strict=True) if keep(owner.decode() if owner else None)]
            start += page
        return found[:limit]

    def deliverables(self, rid: str) -> list[dict[str, str]]:
        ids = [d.decode() for d in self.r.lrange(keys.run_deliverables(rid), 0, -1)]
        with self.r.pipeline(transaction=False) as p:
            for did in ids:
                p.hgetall(keys.deliverable(did))
            return [decode_hash(h) for h in p.execute()]

    def notify(self, pipe: Any, now: float, owner: str, kind: str, run: Mapping[str, str], text: str) -> None:
        """Queue an in-app notification inside the caller's transaction, so it happens once."""
        note = {"id": new_id(), "kind": kind, "run_id": run["id"], "task_id": run["task_id"], "text": text, "at": now}
        pipe.rpush(keys.notifications(owner), json.dumps(note))

    def notifications(self, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(n) for n in self.r.lrange(keys.notifications(owner), -limit, -1)]

    # -- what assistants produced and used ---------------------------------------
    def saved(self, rid: str) -> list[dict[str, str]]:
        """Content an assistant saved with ``save_content`` during the run, oldest first."""
        return [json.loads(s) for s in self.r.lrange(keys.run_saved(rid), 0, -1)]

    def count_usage(self, pipe: Any, rid: str, usage: Usage, calls: int, sid: str | None = None) -> None:
        """Add a turn's or a compile's tokens to its sub-task, its run and the grand total (in ``pipe``)."""
        if not calls:
            return
        for key in ([keys.sub(sid)] if sid else []):
            pipe.hincrby(key, "tokens_prompt", usage.prompt_tokens)
            pipe.hincrby(key, "tokens_completion", usage.completion_tokens)
            if usage.cached_tokens:
                pipe.hincrby(key, "tokens_cached", usage.cached_tokens)
        for key in (keys.run_usage(rid), keys.USAGE):
            pipe.hincrby(key, "prompt", usage.prompt_tokens)
            pipe.hincrby(key, "completion", usage.completion_tokens)
            if usage.cached_tokens:
                pipe.hincrby(key, "cached", usage.cached_tokens)
            pipe.hincrby(key, "calls", calls)

    def count_usage_now(self, rid: str, usage: Usage, calls: int, sid: str | None = None) -> None:
        with self.r.pipeline() as p:
            self.count_usage(p, rid, usage, calls, sid)
            p.execute()

    def deliverable_file(self, did: str) -> tuple[str, str, bytes]:
        """An image or file deliverable: (file name, media type, bytes).

        Raises:
            NotFound: no such deliverable, or it is not a file.
        """
        with self.r.pipeline(transaction=False) as p:
            p.hmget(keys.deliverable(did), ["filename", "content_type"])
            p.get(keys.deliverable_file(did))
            (name, kind), data = p.execute()
        if data is None or name is None:
            raise NotFound("deliverable file", did)
        return name.decode(), (kind or b"application/octet-stream").decode(), bytes(data)

    def deliverable_text(self, did: str) -> tuple[str, str] | None:
        """A deliverable's (title, content), or None."""
        title, content = self.r.hmget(keys.deliverable(did), ["title", "content"])
        if content is None:
            return None
        return (title or b"").decode(), content.decode()

    def usage(self, rid: str | None = None) -> dict[str, int]:
        """Tokens used by a run's model calls (or by every run): prompt (of which ``cached_tokens`` came from the
        provider's prompt cache), completion, total, calls."""
        raw = decode_hash(self.r.hgetall(keys.run_usage(rid) if rid else keys.USAGE))
        prompt, completion = int(raw.get("prompt", 0)), int(raw.get("completion", 0))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "cached_tokens": int(raw.get("cached", 0)), "model_calls": int(raw.get("calls", 0))}
