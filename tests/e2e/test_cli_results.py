"""A run's answers as a table (`taskbot results --csv`), the recent runs (`taskbot status`), `taskbot --version`."""

import csv
import io
import json
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT, answer, people

TASK = {
    "id": "retro", "name": "Retro", "owner": "lee@example.com",
    "template": {
        "participants": ["alice@example.com", "bob@example.com", "carol@example.com"],
        "fields": [
            {"key": "went_well", "prompt": "What went well?"},
            {"key": "name", "prompt": "Name one thing to change", "required": False},
            {"key": "tags", "prompt": "Tags?", "type": "list"},
            {"key": "mood", "prompt": "Mood?", "type": "scale"},
        ],
    },
}


@pytest.fixture
def answered(engine, drain):
    people(engine, "alice@example.com", "bob@example.com", "carol@example.com")
    engine.import_contacts([{"email": "alice@example.com", "name": "Smith, Alice", "preferred_channel": "web"}])
    engine.apply_definition(TASK)
    rid = engine.runs.trigger("retro", kind="manual")
    drain()
    alice, bob, _carol = engine.run_view(rid)["subtasks"]
    for n, text in enumerate(['the "new" parser, finally', "skip", "ops; web, docs", "4"]):
        answer(engine, alice, text, f"a{n}")
        drain()
    for n, text in enumerate(["=HYPERLINK(\"http://evil.example\")", "fewer meetings", "-1, +2", "2"]):
        answer(engine, bob, text, f"b{n}")
        drain()
    return rid


def test_results_csv_has_one_row_per_participant_and_one_column_per_field(answered, env, engine):
    result = subprocess.run([sys.executable, "-m", "bot", "results", answered, "--csv"], cwd=ROOT, env=env,
                            capture_output=True, check=True, timeout=60)  # bytes: the line ends as written
    assert result.stdout.decode() == engine.results_csv(answered)  # what the API's results.csv serves too
    assert result.stdout.count(b"\r\n") == 4  # RFC 4180 line ends
    rows = list(csv.reader(io.StringIO(result.stdout.decode(), newline="")))
    assert rows[0] == ["id", "name", "status", "went_well", "name (answer)", "tags", "mood"]
    assert rows[1] == ["alice@example.com", "Smith, Alice", "completed", 'the "new" parser, finally', "",
                       "ops; web; docs", "4"]
    # A spreadsheet would run these as formulas: they stay text.
    assert rows[2] == ["bob@example.com", "bob", "completed", "'=HYPERLINK(\"http://evil.example\")",
                       "fewer meetings", "'-1; '+2", "2"]
    assert rows[3] == ["carol@example.com", "carol", "running", "", "", "", ""]
    assert len(rows) == 4


def test_results_csv_refuses_bad_words(answered, taskbot_cli):
    both = taskbot_cli("results", answered, "--csv", "--json")
    assert both.returncode == 2
    assert both.stderr.strip() == "taskbot: error: --csv: give --csv or --json, not both"
    missing = taskbot_cli("results", "nope", "--csv")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "taskbot: error: run 'nope' not found"


def test_status_without_an_id_lists_the_recent_runs_with_their_progress(answered, taskbot_cli, engine):
    engine.apply_definition({**TASK, "id": "other", "name": "Other"})
    later = engine.runs.trigger("other", kind="manual")
    table = taskbot_cli("status", check=True).stdout
    assert table.index(later) < table.index(answered)  # newest first
    [line] = [ln for ln in table.splitlines() if answered in ln]
    assert "retro" in line
    assert "running" in line
    assert "2/3" in line  # answered of participants
    listed = json.loads(taskbot_cli("status", "--json", "--limit", "1", check=True).stdout)
    assert [v["id"] for v in listed] == [later]
    assert taskbot_cli("status", "--limit", "0").returncode == 2


def test_status_without_runs_says_how_to_start_one(engine, taskbot_cli):
    assert "No runs yet" in taskbot_cli("status", check=True).stdout


def test_version_is_the_packages(taskbot_cli):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert taskbot_cli("--version", check=True).stdout == f"taskbot {version}\n"
