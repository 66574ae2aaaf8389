"""Reporting (SPEC §11 ``report_to``): a completed run's deliverable posted to each target, once per version.

When a run completes, and again for each new version a late answer makes, every target of
its task's ``report_to`` (``slack:#team``, ``slack:C0123``, ``telegram:<chat id>``,
``email:<address>``) gets one ``post_report`` job, leased in the transaction that completes
the run (or stores the version), with a record in ``run:<rid>:reports`` that the run object
shows. The message is an ``Outbound`` of kind ``report`` to an ``Address`` that is no person;
each channel adapter renders the Markdown its own way (Slack as Block Kit with a table).
A target that fails is retried with backoff and, when it fails for good, marked ``failed``
on the run and the owner told; the run itself never fails for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from . import keys
from .events import Events
from .leases import Leases
from .outbox import Outbox
from .ports import Address, Clock, DeliveryFailed, Jobs, Outbound
from .store import Store, dumps

log = logging.getLogger("taskbot.reporting")

#: Seconds before each retry of a target that failed; after the last one it is marked failed.
BACKOFF = (2.0, 10.0, 60.0, 300.0, 1800.0)


def version_of(deliverables: list[dict[str, str]], index: int) -> int:
    """A deliverable's version (those stored before versions existed count by position)."""
    return int(deliverables[index].get("version") or index + 1)


def report_records(store: Store, rid: str) -> list[dict[str, Any]]:
    """The run's posts, newest version first, in ``report_to`` order (what the run object shows)."""
    raw = store.r.hgetall(keys.run_reports(rid))
    items = sorted(((tuple(int(x) for x in k.decode().split(":")), json.loads(v)) for k, v in raw.items()),
                   key=lambda kv: (-kv[0][0], kv[0][1]))
    return [v for _, v in items]


class Reporting:
    """Post deliverables to ``report_to`` targets.

    Args:
        store: the records.
        clock: the time source.
        jobs: the job queue (one ``post_report`` per target and version).
        leases: each post's lease (a retry is a deferred lease, so restarts lose none).
        events: records ``report.posted`` and ``report.failed``.
        outbox: the channels.
    """

    def __init__(self, store: Store, clock: Clock, jobs: Jobs, leases: Leases, events: Events,
                 outbox: Outbox) -> None:
        self.store = store
        self.r = store.r
        self.clock = clock
        self.jobs = jobs
        self.leases = leases
        self.events = events
        self.outbox = outbox

    def plan(self, pipe: Any, run: Mapping[str, str], version: int) -> list[tuple[str, tuple[Any, ...]]]:
        """Lease the posts of ``version`` inside the caller's transaction; returns the jobs to queue after it."""
        rid = run["id"]
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for index, target in enumerate(self.store.definition_of(run).report_to):
            pipe.hsetnx(keys.run_reports(rid), f"{version}:{index}", dumps(
                {"target": target, "version": version, "status": "pending", "attempts": 0, "error": None,
                 "at": None}))
            self.leases.lease(pipe, f"report:{rid}:{version}:{index}")
            calls.append(("post_report", (rid, str(version), str(index))))
        return calls

    def post(self, rid: str, version: int, index: int) -> None:
        """Post one version to one target (the ``post_report`` job); idempotent once it is posted."""
        member, field = f"report:{rid}:{version}:{index}", f"{version}:{index}"
        raw = self.r.hget(keys.run_reports(rid), field)
        record = json.loads(raw) if raw else None
        if record is None or record["status"] in ("posted", "failed"):
            self.leases.release(member)
            return
        claim = keys.claim(rid, f"report:{field}")
        if not self.r.set(claim, "1", nx=True, px=int(self.leases.lease_seconds * 1000)):
            return  # another worker is posting it; its lease brings it back here if that one dies
        try:
            deliverables = self.store.deliverables(rid)
            found = [d for i, d in enumerate(deliverables) if version_of(deliverables, i) == version]
            if not found:
                self._failed(rid, member, field, record, f"no deliverable version {version}", final=True)
                return
            d = found[0]
            channel, _, where = record["target"].partition(":")
            text = d["content"] if not d.get("change") else f"**Version {version}**: {d['change']}\n\n{d['content']}"
            out = Outbound(Address(channel, where), text, key=f"report:{rid}:{field}", kind="report",
                           subject=d.get("title") or None)
            try:
                delivery = self.outbox.send(out)
            except DeliveryFailed as exc:
                record["attempts"] += 1
                final = exc.permanent or record["attempts"] > len(BACKOFF)
                self._failed(rid, member, field, record, exc.reason, final=final,
                             retry=exc.retry_after or BACKOFF[min(record["attempts"], len(BACKOFF)) - 1])
                return
            record.update(status="posted", attempts=record["attempts"] + 1, error=None, at=self.clock.now(),
                          ref=delivery.ref)
            with self.r.pipeline() as p:
                p.hset(keys.run_reports(rid), field, dumps(record))
                self.events.emit(p, "report.posted", run_id=rid, target=record["target"], version=version,
                                 deliverable_id=d["id"])
                self.leases.release(member, p)
                p.execute()
        finally:
            self.r.delete(claim)

    def _failed(self, rid: str, member: str, field: str, record: dict[str, Any], reason: str, *, final: bool,
                retry: float = 0.0) -> None:
        record.update(status="failed" if final else "retrying", error=reason, at=self.clock.now())
        log.warning("posting run %s to %s %s: %s", rid, record["target"],
                    "failed for good" if final else "failed; it is tried again", reason)
        with self.r.pipeline() as p:
            p.hset(keys.run_reports(rid), field, dumps(record))
            if final:
                run = self.store.run_fields(rid)
                self.store.notify(p, self.clock.now(), run["owner"], "report_failed", run,
                                  f"Posting version {record['version']} of run {rid} of {run['task_id']} to "
                                  f"{record['target']} failed: {reason}")
                self.events.emit(p, "report.failed", run_id=rid, target=record["target"], version=record["version"],
                                 error=reason)
                self.leases.release(member, p)
            p.execute()
        if not final:
            self.leases.defer(member, self.clock.now() + retry)
