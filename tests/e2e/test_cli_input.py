"""Files and arguments that cannot hurt (SPEC §10), through the real `taskbot` command: exit 2 with one
line naming the file, line or field, never a traceback; nothing stored; the reads afterwards work."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, contents

GOOD = """\
id: weekly-status
name: Weekly status
owner: lead@example.com
template:
  fields: [{key: shipped, prompt: What did you ship?}]
  participants: [alice@example.com]
"""
FILTERED = """\
id: engineers
name: Engineers
template:
  fields: [{key: shipped, prompt: What did you ship?}]
  dataset: team
  filter: FILTER
"""


def snapshot(r) -> dict[bytes, object]:
    return contents(r)


def refused(result: subprocess.CompletedProcess[str], *says: str) -> str:
    """Exit 2 with one ``taskbot: error:`` line that says all of ``says``, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("taskbot: error: ")
    for words in says:
        assert words in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def applied(engine):
    """A task and a dataset already there (set up in-process: the commands under test run as processes)."""
    engine.apply_definition(GOOD)
    engine.import_dataset("team", [{"email": "ann@example.com", "role": "eng"}])


def write(path, content: str | bytes):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def reads_still_work(taskbot_cli) -> None:
    """What an operator reads next (one command: each costs a Python start-up on this shared machine)."""
    listed = taskbot_cli("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    from bot.bootstrap import build_engine

    engine = build_engine()
    try:
        assert [d.id for d in engine.store.list_definitions()] == ["weekly-status"]
        engine.store.list_contacts()
        engine.store.list_assistants()
        engine.store.get_dataset("team")
    finally:
        engine.r.close()


@pytest.mark.parametrize(("command", "name", "content"), [
    (("tasks", "apply"), "task.yaml", GOOD.encode().replace(b"What did you ship?", b"What did you \xff ship?")),
    (("assistants", "apply"), "helper.yaml", b"id: helper\nsystem_prompt: caf\xe9\n"),  # Latin-1, not UTF-8
    (("contacts", "import"), "people.csv", b"email,name\nann@example.com,Ann \xc3\x28\n"),
    (("contacts", "import"), "people.json", b'[{"email": "ann@example.com", "name": "\xed\xa0\x80"}]'),
    (("datasets", "import", "team"), "team.csv", b"email,role\n\xfe\xffann@example.com,eng\n"),
    (("datasets", "import", "team"), "team.json", b'[{"role": "\x80"}]'),
])
def test_a_file_that_is_not_utf8_is_refused_naming_the_file(r, applied, taskbot_cli, tmp_path, command, name,
                                                            content):
    before = snapshot(r)
    path = write(tmp_path / name, content)
    line = refused(taskbot_cli(*command, str(path)), "FILE", str(path), "is not UTF-8 text (byte")
    assert "0x" in line
    assert snapshot(r) == before
    reads_still_work(taskbot_cli)


def alias_bomb() -> str:
    """The "billion laughs": nine levels of nine aliases each, a few hundred bytes that load as 387 million."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "says"), [
    (alias_bomb(), ("line 1", "column 5", "anchors and aliases (&name, *name) are not allowed")),
    (GOOD.replace("owner: lead@example.com", "owner: &lead lead@example.com\ndescription: *lead"),
     ("line 3", "anchors and aliases")),
    (GOOD + "chase: {<<: *x}\n", ("anchors and aliases",)),
    ("description: " + "[" * 1000 + "]" * 1000 + "\n" + GOOD, ("line 1", "nested deeper than 32 levels")),
    (GOOD.replace("name: Weekly status", "name: 2001-13-45"), ("YAML value error: month must be in 1..12",)),
    (GOOD.replace("name: Weekly status", 'name: "Weekly \\ud800 status"'), ("name: contains a lone surrogate",)),
])
def test_yaml_aliases_deep_nesting_and_values_yaml_cannot_build_are_refused_where_they_are(r, applied, taskbot_cli,
                                                                                         tmp_path, text, says):
    before = snapshot(r)
    refused(taskbot_cli("tasks", "apply", str(write(tmp_path / "bad.yaml", text))), *says)
    assert snapshot(r) == before
    reads_still_work(taskbot_cli)


def test_the_alias_bomb_is_small_and_would_be_huge(tmp_path):
    bomb = alias_bomb()
    assert len(bomb) < 1000
    assert 9 ** 9 * 3 > 1_000_000_000  # what it would expand to, in characters of "lol"


@pytest.mark.parametrize(("flt", "says"), [
    ("(" * 1000 + "role = 'eng'" + ")" * 1000, "template.filter: filter: parentheses nested deeper than 32 levels"),
    (" and ".join(f"f{i} = {i}" for i in range(100_000)), "template.filter: filter: 1,877,775 characters"),
    (" or ".join("role = 'eng'" for _ in range(700)), "characters, more than 10,000"),
])
def test_filters_too_deep_or_too_large_are_refused(r, applied, taskbot_cli, tmp_path, flt, says):
    before = snapshot(r)
    spec = write(tmp_path / "filtered.yaml", FILTERED.replace("FILTER", json.dumps(flt)))
    refused(taskbot_cli("tasks", "apply", str(spec)), says)
    assert snapshot(r) == before
    ok = write(tmp_path / "ok.yaml", FILTERED.replace("FILTER", json.dumps("(role = 'eng' or role = 'lead')")))
    taskbot_cli("tasks", "apply", str(ok), check=True)


@pytest.mark.parametrize(("cron", "says"), [
    ("* * * * * * *", "cron: '* * * * * * *' has 7 fields; a cron has exactly five"),
    ("0 0 31 2 *", "cron: '0 0 31 2 *' never fires"),
    ("0 0 31 4,6,9,11 *", "cron: '0 0 31 4,6,9,11 *' never fires"),
])
def test_a_cron_that_is_not_five_fields_or_never_fires_exits_2(r, applied, taskbot_cli, cron, says):
    before = snapshot(r)
    result = taskbot_cli("task", "schedule", "weekly-status", cron)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"taskbot: error: {says}")
    assert snapshot(r) == before
    assert "0 9 * * MON" in taskbot_cli("task", "schedule", "weekly-status", "0 9 * * MON", check=True).stdout


@pytest.mark.parametrize(("name", "content", "says"), [
    ("people.json", '[{"email": "ann@example.com", "name": "Ann \\ud800"}]', "[0].name: contains a lone surrogate"),
    ("people.json", '[{"email": "ann@example.com", "name": ' + "[" * 40 + "]" * 40 + "}]",
     "[0]: nested deeper than 32 levels"),
    ("people.json", "[" * 100_000 + "]" * 100_000, "FILE: nested deeper than 32 levels"),
    ("people.csv", 'email,name\nann@example.com,"' + "A" * 200_000 + '"\n', "CSV error: field larger than field limit"),
])
def test_contact_files_that_cannot_be_stored_are_refused_naming_the_row(r, applied, taskbot_cli, tmp_path, name,
                                                                       content, says):
    before = snapshot(r)
    refused(taskbot_cli("contacts", "import", str(write(tmp_path / name, content))), says)
    assert snapshot(r) == before
    reads_still_work(taskbot_cli)


def test_an_argument_that_is_not_utf8_exits_2(r, applied, env):
    """A shell hands bytes that are not UTF-8 to Python as lone surrogates; Redis could not store them."""
    before = snapshot(r)
    for args in ([b"run", b"weekly-status", b"--data", b"note=\xed\xa0\x80"], [b"tasks", b"show", b"\xff"],
                 [b"task", b"run", b"weekly-status", b"k=\xc3"]):
        result = subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True,
                                timeout=60)
        assert result.returncode == 2, result.stderr
        err = result.stderr.decode()
        assert "is not valid UTF-8" in err
        assert "Traceback" not in err
    assert snapshot(r) == before
