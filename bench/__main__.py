"""`python -m bench [--smoke]`: run every measurement, print tables, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from . import channels, scenarios

AREAS = ("fanout", "answers", "answerpath", "chase", "tokens", "telegram", "slack", "email", "corpus", "inputs")


def table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(c for r in rows for c in r))  # a column some rows lack shows "-" there
    rows = [{c: r.get(c, "-") for c in cols} for r in rows]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = [f"\n{title}", " | ".join(c.ljust(widths[c]) for c in cols),
             "-|-".join("-" * widths[c] for c in cols)]
    lines += [" | ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def channel_benches(results: dict[str, Any], only: set[str], *, smoke: bool) -> None:
    """The channels against their providers' allowances (Telegram, Slack) or the way mail went before (email)."""
    if "telegram" in only:
        results["telegram"] = [channels.telegram(n, w) for n, w in ([(60, 2)] if smoke else [(600, 2)])]
        print(table("Telegram: N openings, one per private chat, vs the bot's 30 messages/s (429s: the fake Bot "
                    "API's refusals past 30/s or 1/s per chat)", results["telegram"]), flush=True)
    if "slack" in only:
        runs = [(40, 2, 20.0)] if smoke else [(1_000, 2, 5.0), (1_000, 2, 20.0)]
        results["slack"] = [channels.slack(n, w, rate) for n, w, rate in runs]
        print(table("Slack: N people found by email, opened by DM, vs the time chat.postMessage's workspace rate "
                    "allows (ratio: allowance / taken; 429s: the fake Web API's refusals past any limit)",
                    results["slack"]), flush=True)
    if "email" in only:
        import shutil

        secure = (False,) if smoke or shutil.which("openssl") is None else (False, True)
        rows = []
        for starttls in secure:
            before, after = (channels.email(30 if smoke else 500, 2, idle, starttls=starttls) for idle in (0, 10))
            after["ratio"] = round(after["messages_per_s"] / before["messages_per_s"], 2)
            before["ratio"] = 1.0
            rows += [before, after]
        results["email"] = rows
        print(table("email: N openings to a real SMTP server (aiosmtpd), kept sessions vs one per message (ratio)",
                    rows), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmarks run (for CI)")
    parser.add_argument("--out", default="bench/results/latest.json")
    parser.add_argument("--only", nargs="+", choices=AREAS, default=list(AREAS), metavar="AREA",
                        help=f"measure only these ({', '.join(AREAS)}); default: all")
    args = parser.parse_args()
    only = set(args.only)
    if args.smoke:
        fan = [(50, 1), (50, 2)]
        ans = [(30, 1)]
        chase = [(30, 1)]
    else:
        fan = [(n, w) for n in (100, 1_000, 10_000) for w in (1, 2, 4)]
        ans = [(100, 2), (1_000, 2), (10_000, 2)]
        chase = [(100, 2), (1_000, 2), (10_000, 2)]
    started = time.time()
    results: dict[str, Any] = {"machine": machine(), "smoke": args.smoke}
    if "fanout" in only:
        # the Celery peer in every row (in the smoke run only beside 2 workers: its worker takes seconds to start)
        results["fanout"] = [scenarios.fanout(n, w, celery=not args.smoke or w == 2) for n, w in fan]
        print(table("fan-out: trigger → last opening handed to the channel, vs the same number of raw RQ no-op jobs, "
                    "one process pipelining the same writes (floor) and a Celery group + chord of minimal openings "
                    "(to the fan-in), same Redis, same number of worker processes (vs_*: taskbot's time / theirs)",
                    results["fanout"]), flush=True)
    if "answers" in only:
        results["answers"] = [scenarios.answers(n, w) for n, w in ans]
        print(table("answers (3 rounds of N at once, scripted) and the cost of the whole run per sub-task",
                    results["answers"]), flush=True)
    if "answerpath" in only:
        from .answer_path import answer_path

        results["answerpath"] = [answer_path(30 if args.smoke else 300, 1 if args.smoke else 3)]
        print(table("the answer path alone: one in-process worker applying 3 rounds of N answers (CPU and Redis "
                    "commands per answer, RQ's bookkeeping included; the least disturbed of the repeats)",
                    results["answerpath"]), flush=True)
    if "chase" in only:
        results["chase"] = [scenarios.chase_accuracy(n, w) for n, w in chase]
        print(table("chase accuracy: reminder sent − due time", results["chase"]), flush=True)
    if "tokens" in only:
        from .tokens import tokens_per_subtask

        results["tokens"] = [tokens_per_subtask(bound, chatter) for chatter in ((1,) if args.smoke else (1, 3))
                             for bound in (6, 0)]
        print(table("tokens sent per completed sub-task (3 fields, a litellm model: the fake OpenAI server), "
                    "history bound on (6 messages) and off", results["tokens"]), flush=True)
    channel_benches(results, only, smoke=args.smoke)
    if "corpus" in only:
        from .corpus import run as corpus

        results["email_corpus"] = corpus(smoke=args.smoke)  # None where ../shared/corpora is absent
        from .slack_corpus import run as slack_corpus

        results["slack_corpus"] = slack_corpus()  # likewise
    if "inputs" in only:
        from .inputs import definition_reads, refusals

        results["definition_reads"] = definition_reads(10 if args.smoke else 50)
        print(table("reading a stored definition whose filter is as large as allowed (engine work of GET "
                    "/api/tasks/{id})", results["definition_reads"]), flush=True)
        results["refusals"] = refusals(3 if args.smoke else 20)
        print(table("the worst inputs of issue 10, refused (median)", results["refusals"]), flush=True)
    results["seconds"] = round(time.time() - started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\n{machine()}; {results['seconds']} s; written to {out}")


if __name__ == "__main__":
    main()
