"""Loading task definitions, contacts and datasets from files, refusing a wrong file whole."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent

from .bounds import MAX_DEPTH, check_value, printable
from .errors import InvalidInput
from .model import Contact, TaskDefinition


def _location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("conversation", "task", "compile") and out.endswith("]"):
            continue  # pydantic's discriminator tag is noise to a user
        else:
            name = printable(str(part)) or '""'  # an empty key is still a place to name
            out += f".{name}" if out else name
    return out


#: What a refusal of a whole object names, when no single field is at fault.
WHOLE = {"TaskDefinition": "definition", "Contact": "contact", "Assistant": "assistant"}


def first_error(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """Turn pydantic's report into one line naming the field, as a user reads it."""
    err = exc.errors()[0]
    field = _location(err["loc"])
    if prefix:
        field = f"{prefix}.{field}" if field and not field.startswith("[") else f"{prefix}{field}"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required field is missing"
    return InvalidInput(field, message)


def validate(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    """Validate ``data`` as ``model`` or raise :class:`InvalidInput` for the first bad field."""
    if not isinstance(data, Mapping):
        raise InvalidInput(prefix or WHOLE.get(model.__name__, model.__name__), "expected a mapping of fields")
    check_value(data, prefix)  # before pydantic, whose messages would quote a lone surrogate back
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        refusal = first_error(exc, prefix)
        if not refusal.field:  # a check of the whole object ("give template or workflow, not both")
            raise InvalidInput(prefix or WHOLE.get(model.__name__, model.__name__), refusal.reason) from None
        raise refusal from None


class _Refused(ComposerError):
    """YAML that parses but that taskbot will not take (an alias, nesting too deep)."""


class _PlainComposer(Composer):
    """Refuses anchors and aliases, and nesting deeper than MAX_DEPTH, where they occur.

    An alias repeats a node without copying it in the file: a few kilobytes of aliases to
    aliases expand into gigabytes once loaded. Task files need neither, so neither is allowed.
    """

    levels = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark)
        self.levels += 1
        try:
            if self.levels > MAX_DEPTH + 1:  # + 1: a scalar is a node too
                raise _Refused(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.levels -= 1


def parse_yaml(text: str, what: str = "file") -> Any:
    """Parse YAML 1.2 (so flow mappings like ``{prompt: Anything blocking you?}`` work), naming the line."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _PlainComposer
    try:
        return yaml.load(text)
    except _Refused as exc:
        mark = exc.problem_mark
        raise InvalidInput(f"line {mark.line + 1}", f"column {mark.column + 1}: {exc.problem}") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else what
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(where, f"YAML syntax error: {printable(problem)}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar ruamel recognised but cannot build
        raise InvalidInput(what, f"YAML value error: {printable(str(exc))}") from None


def read_text(path: Path | str, encoding: str = "utf-8") -> str:
    """A file's text; a file that cannot be read or is not UTF-8 is refused naming the file.

    Raises:
        InvalidInput: the field is ``FILE``; the message names the path and the first bad byte.
    """
    path = Path(path)
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise InvalidInput("FILE", f"{path} is not UTF-8 text (byte {exc.start + 1} is 0x{exc.object[exc.start]:02x})"
                           ) from None
    except OSError as exc:
        raise InvalidInput("FILE", f"cannot read {path}: {exc.strerror}") from None


def load_definition(data: Any) -> TaskDefinition:
    """Validate a task definition given as a mapping (from YAML or a JSON body)."""
    result: TaskDefinition = validate(TaskDefinition, data)
    return result


def load_definition_text(text: str) -> TaskDefinition:
    """Validate a task definition file's text (YAML, which includes JSON)."""
    return load_definition(parse_yaml(text))


def read_rows(path: Path | str, text: str | None = None) -> list[dict[str, Any]]:
    """Rows from a CSV (header row) or JSON (a list of objects, or ``{"rows": [...]}``) file."""
    path = Path(path)
    if text is None:
        text = read_text(path, encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput("FILE", f"JSON syntax error at line {exc.lineno}: {exc.msg}") from None
        except RecursionError:  # json's C scanner recurses per level; far past MAX_DEPTH in any case
            raise InvalidInput("FILE", f"nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise InvalidInput("FILE", f"JSON value error: {exc}") from None
        if isinstance(data, Mapping) and isinstance(data.get("rows"), list):
            data = data["rows"]
        if not isinstance(data, list):
            raise InvalidInput("FILE", "expected a JSON list of objects")
        for i, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise InvalidInput(f"[{i}]", "expected an object")
        check_value(data)
        return [dict(row) for row in data]
    if path.suffix.lower() in (".csv", ".txt", ""):
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        try:
            if not reader.fieldnames:
                raise InvalidInput("FILE", "CSV file has no header row")
            for i, row in enumerate(reader):
                if None in row:
                    raise InvalidInput(f"line {i + 2}", "more values than header columns")
                rows.append({k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
        except csv.Error as exc:  # e.g. a NUL byte, or a field over csv's size limit
            raise InvalidInput(f"line {reader.line_num}", f"CSV error: {exc}") from None
        return rows
    raise InvalidInput("FILE", f"unsupported file type {path.suffix!r} (use .csv or .json)")


def load_contacts(rows: list[dict[str, Any]]) -> list[Contact]:
    """Validate every contact row; the first bad one refuses the whole file."""
    contacts = [validate(Contact, row, prefix=f"[{i}]") for i, row in enumerate(rows)]
    seen: set[str] = set()
    for i, contact in enumerate(contacts):
        if contact.id in seen:
            raise InvalidInput(f"[{i}].id", f"duplicate contact {contact.id!r}")
        seen.add(contact.id)
    return contacts
