"""Plugins: Python modules named in ``TASKBOT_PLUGINS``, imported by every taskbot process before its
engine is built (web app, workers, CLI, demo), so that what they register is there everywhere a
definition is validated or a job runs.

A plugin registers at import: tools with :func:`engine.tools.register`, output types with
:func:`engine.outputs.register`, channels with :func:`channels.register` (and the routes that receive
their messages with :func:`bot.app.add_router`); docs/extending.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from types import ModuleType

#: A module name as ``import`` takes it: dotted identifiers.
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PluginError(Exception):
    """A plugin named in TASKBOT_PLUGINS could not be imported: the process does not start."""


def names(value: str) -> list[str]:
    """The module names of a ``TASKBOT_PLUGINS`` value (comma-separated; blanks ignored)."""
    return [n.strip() for n in value.split(",") if n.strip()]


def check(value: str) -> str:
    """Refuse, naming it, a name that is no module name or that is not on the Python path. The module itself is
    not run here (for a dotted name its parent packages are imported, to look inside them)."""
    for name in names(value):
        if not MODULE.match(name):
            raise ValueError(f"{name!r} is not a Python module name (e.g. mycompany.taskbot_tools)")
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise ValueError(f"no module {name!r} on the Python path (PYTHONPATH, or pip install the plugin)")
    return value


def load(value: str) -> list[ModuleType]:
    """Import each plugin once (a module imported before is not run again).

    Raises:
        PluginError: a plugin's import failed; its error is chained.
    """
    loaded = []
    for name in names(value):
        try:
            loaded.append(importlib.import_module(name))
        except Exception as exc:
            raise PluginError(f"TASKBOT_PLUGINS: importing {name} failed: {exc}") from exc
    return loaded
