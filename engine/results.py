"""A run's answers as a table (SPEC §12): one row per participant, one column per field, as CSV.

`taskbot results RUN_ID --csv` and the API's ``results.csv`` both come from here, so a script
and a person downloading from the dashboard get the same file.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .model import TaskState
from .store import Store

FIXED = ("id", "name", "status")
#: Text a spreadsheet would run as a formula (=, +, -, @, tab, carriage return first): a participant's
#: answer must stay text when the owner opens the file, so such cells get a leading apostrophe (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One answer as text: lists joined with "; ", numbers as written, nothing as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list):
        return _safe("; ".join(cell(v) for v in value))
    if isinstance(value, dict):
        return _safe(json.dumps(value, ensure_ascii=False))
    return _safe(str(value))


def _safe(text: str) -> str:
    return f"'{text}" if text.startswith(FORMULA_START) else text


def results_table(store: Store, rid: str) -> tuple[list[str], list[list[str]]]:
    """The header and one row per participant sub-task, in fan-out order.

    Columns: ``id`` (the participant), ``name``, ``status``, then each field of the run's task
    states in the definition's order. A field whose key is one of the first three is headed
    ``<key> (answer)``. A workflow with two task states lists a person once per state they were
    asked in. The owner's conversation (a ``conversation`` state) is not a participant's row.

    Raises:
        NotFound: no such run.
    """
    store.run_fields(rid)
    fields: list[str] = []
    for state in store.definition_of(rid).states():
        if isinstance(state, TaskState):
            fields += [f.key for f in state.fields if f.key not in fields]
    header = [*FIXED, *(f"{key} (answer)" if key in FIXED else key for key in fields)]
    rows = []
    for sub in store.subs_fields(store.sub_ids(rid)):
        if not sub or sub.get("kind") == "conversation":
            continue
        data = json.loads(sub.get("data", "{}"))
        rows.append([_safe(sub["participant_id"]), _safe(sub.get("name") or sub["participant_id"]), sub["status"],
                     *(cell(data.get(key)) for key in fields)])
    return header, rows


def results_csv(store: Store, rid: str) -> str:
    """The table as CSV text (RFC 4180: comma-separated, quoted where needed, CRLF line ends)."""
    header, rows = results_table(store, rid)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
