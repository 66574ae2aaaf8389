"""`python -m bench [--smoke]`: run every measurement, print tables, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from . import scenarios


def table(title: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = [f"\n{title}", " | ".join(c.ljust(widths[c]) for c in cols),
             "-|-".join("-" * widths[c] for c in cols)]
    lines += [" | ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmarks run (for CI)")
    parser.add_argument("--out", default="bench/results/latest.json")
    args = parser.parse_args()
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
    results["fanout"] = [scenarios.fanout(n, w) for n, w in fan]
    print(table("fan-out: trigger → last opening handed to the channel, vs the same number of raw RQ no-op jobs",
                results["fanout"]), flush=True)
    results["answers"] = [scenarios.answers(n, w) for n, w in ans]
    print(table("answers (3 rounds of N at once, scripted) and the cost of the whole run per sub-task",
                results["answers"]), flush=True)
    results["chase"] = [scenarios.chase_accuracy(n, w) for n, w in chase]
    print(table("chase accuracy: reminder sent − due time", results["chase"]), flush=True)
    from .tokens import tokens_per_subtask

    results["tokens"] = [tokens_per_subtask(bound, chatter) for chatter in ((1,) if args.smoke else (1, 3))
                         for bound in (6, 0)]
    print(table("tokens sent per completed sub-task (3 fields, a litellm model: the fake OpenAI server), "
                "history bound on (6 messages) and off", results["tokens"]), flush=True)
    from .inputs import definition_reads, refusals

    results["definition_reads"] = definition_reads(10 if args.smoke else 50)
    print(table("reading a stored definition whose filter is as large as allowed (engine work of GET /api/tasks/{id})",
                results["definition_reads"]), flush=True)
    results["refusals"] = refusals(3 if args.smoke else 20)
    print(table("the worst inputs of issue 10, refused (median)", results["refusals"]), flush=True)
    results["seconds"] = round(time.time() - started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\n{machine()}; {results['seconds']} s; written to {out}")


if __name__ == "__main__":
    main()
