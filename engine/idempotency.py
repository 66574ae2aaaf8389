"""Retrying a trigger safely: one run per client key, however often the request is sent (SPEC §10).

A client that got no answer (a timeout, a 503 while Redis went away after the run was stored)
cannot know whether its run started. Sending the same key again is the safe retry: the key is
reserved with the run id before the run is created, so the retry finds the run (or, when the
first attempt died before storing it, creates it under the reserved id).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from . import keys
from .errors import Conflict, InvalidInput, NotFound, TaskbotError
from .runs import Runs
from .store import new_id

#: How long a key names its run; a retry comes within minutes, a day is generous.
TTL = 86400
KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as HTTP header values travel safely

#: Drop the reservation only if it is still ours (a refused trigger must not free someone else's key).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def trigger_once(runs: Runs, key: str, task_id: str, data: dict[str, Any] | None = None, *, kind: str,
                 by: str | None = None, callback_url: str | None = None,
                 field: str = "Idempotency-Key") -> tuple[str, bool]:
    """Start a run of ``task_id`` once per ``key`` (through ``runs``, as :meth:`Runs.trigger`).

    Returns:
        (run id, True when this call started it; False when an earlier call with the key did).

    Raises:
        InvalidInput: the key is not 1-255 visible ASCII characters (``field`` names it).
        Conflict: the key already started a run of another task.
        NotFound, InvalidInput, Conflict: as :meth:`Runs.trigger`; the key is then free again.
    """
    if not KEY.match(key):
        raise InvalidInput(field, "must be 1 to 255 visible ASCII characters")
    r = runs.r
    name = keys.idempotency(hashlib.sha256(key.encode()).hexdigest())
    rid = new_id()
    fresh = bool(r.set(name, rid, nx=True, ex=TTL))
    if not fresh:
        held = r.get(name)
        rid = held.decode() if held is not None else rid
        try:
            previous = runs.store.run_fields(rid)["task_id"]
        except NotFound:
            previous = None  # the first attempt reserved the key and died before storing its run
        if previous is not None:
            if previous != task_id:
                raise Conflict(f"{field} {key!r} already started run {rid} of task {previous!r}")
            return rid, False
    try:
        runs.trigger(task_id, data, kind=kind, by=by, callback_url=callback_url, rid=rid)
    except TaskbotError:
        r.eval(RELEASE, 1, name, rid)
        raise
    return rid, True
