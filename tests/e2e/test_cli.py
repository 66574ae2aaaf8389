"""The `taskbot` command as an operator uses it: bad input is refused with exit 2 and changes nothing."""

import json

import pytest

GOOD = """
id: weekly-status
name: Weekly status
owner: lead@example.com
template:
  fields: [{key: shipped, prompt: What did you ship?}]
  participants: [alice@example.com]
  chase: {interval: 24h, max_chases: 2}
"""


def snapshot(r):
    return {k: r.dump(k) for k in sorted(r.keys("taskbot:*"))}


@pytest.fixture
def applied(engine, taskbot_cli, tmp_path):
    spec = tmp_path / "good.yaml"
    spec.write_text(GOOD)
    assert taskbot_cli("tasks", "apply", str(spec)).stdout.strip() == "applied task weekly-status (Weekly status)"
    return spec


@pytest.mark.parametrize(("name", "text", "args", "says"), [
    ("broken YAML", GOOD.replace("fields: [{key", "fields: [{key: ["), None, "line"),
    ("unknown field", GOOD.replace("owner:", "colour: blue\nowner:"), None, "colour: unknown field"),
    ("bad duration", GOOD.replace("24h", "24x"), None, "template.chase.interval: '24x' is not a duration"),
    ("unknown output type", GOOD.replace("owner:", "output_type: poem\nowner:"), None,
     "output_type: unknown output type"),
    ("bad field key", GOOD.replace("key: shipped", "key: 2shipped"), None, "template.fields[0].key"),
    ("unknown task id", None, ["run", "no-such-task"], "task 'no-such-task' not found"),
    ("unknown run id", None, ["status", "nope"], "run 'nope' not found"),
    ("bad --data", None, ["run", "weekly-status", "--data", "novalue"], "--data: expected key=value"),
    ("unknown /task words", None, ["task", "frobnicate", "x"], "unknown command 'frobnicate'"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(r, applied, taskbot_cli, tmp_path, name, text, args,
                                                              says):
    before = snapshot(r)
    if text is not None:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        args = ["tasks", "apply", str(bad)]
    result = taskbot_cli(*args)
    assert result.returncode == 2, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("taskbot: error: ")
    assert says in first
    if args[0] != "task":
        assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(r) == before


def test_a_missing_file_is_bad_input(taskbot_cli, r):
    result = taskbot_cli("tasks", "apply", "/no/such/file.yaml")
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert r.keys("taskbot:*") == []


def test_contacts_file_with_a_bad_row_is_refused_whole(taskbot_cli, r, tmp_path):
    contacts = tmp_path / "people.csv"
    contacts.write_text("email,name,preferred_channel\nann@example.com,Ann,web\nnot-an-email,Bob,web\n")
    result = taskbot_cli("contacts", "import", str(contacts))
    assert result.returncode == 2
    assert "[1].email" in result.stderr
    assert r.keys("taskbot:*") == []
    contacts.write_text("email,name,preferred_channel\nann@example.com,Ann,web\nbob@example.com,Bob,pigeon\n")
    result = taskbot_cli("contacts", "import", str(contacts))
    assert result.returncode == 2
    assert "[1].preferred_channel" in result.stderr


def test_contacts_files_carry_time_zones_working_hours_and_away(engine, taskbot_cli, r, tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,timezone,working_hours,away_until\n"
                   "ann@example.com,Ann,Asia/Kolkata,Mon-Thu 08:00-16:00; Fri 08:00-12:00,\n"
                   "bob@example.com,Bob,America/New_York,,2027-01-10\n")
    assert taskbot_cli("contacts", "import", str(csv), check=True).stdout.strip() == "imported 2 contacts"
    people = {c.id: c for c in engine.store.list_contacts()}
    assert (people["ann@example.com"].timezone, people["ann@example.com"].working_hours) == (
        "Asia/Kolkata", "Mon-Thu 08:00-16:00; Fri 08:00-12:00")
    assert (people["bob@example.com"].away_until, people["bob@example.com"].working_hours) == ("2027-01-10", None)
    listed = taskbot_cli("contacts", "list", check=True).stdout
    assert "Asia/Kolkata" in listed
    assert "2027-01-10" in listed
    json_file = tmp_path / "people.json"
    json_file.write_text('[{"email": "cy@example.com", "working_hours": ["Mon-Fri 09:00-17:00", "Sat 10:00-12:00"]}]')
    assert taskbot_cli("contacts", "import", str(json_file)).returncode == 0
    assert engine.store.find_contacts(["cy@example.com"])["cy@example.com"].working_hours == [
        "Mon-Fri 09:00-17:00", "Sat 10:00-12:00"]
    before = sorted(r.keys("taskbot:*"))
    for header, row, field, reason in (
            ("timezone", "Mars/Olympus", "[0].timezone", "unknown time zone 'Mars/Olympus'"),
            ("working_hours", "9 to 5", "[0].working_hours", "'9 to 5' is not a working-hours window"),
            ("away_until", "next week", "[0].away_until", "'next week' is not an ISO date")):
        csv.write_text(f"email,{header}\ndan@example.com,{row}\n")
        result = taskbot_cli("contacts", "import", str(csv))
        assert result.returncode == 2
        assert f"{field}: {reason}" in " ".join(result.stderr.split())
    assert sorted(r.keys("taskbot:*")) == before  # nothing stored


def test_runs_status_and_results_show_what_happened(engine, applied, taskbot_cli, drain):
    engine.import_contacts([{"email": "alice@example.com", "preferred_channel": "web"}])
    first = taskbot_cli("run", "weekly-status", check=True).stdout.strip().splitlines()[-1]
    second = taskbot_cli("task", "run", "weekly-status", "week=47", check=True).stdout
    assert second.startswith("Started run ")
    drain()
    listed = json.loads(taskbot_cli("runs", "--json", check=True).stdout)
    assert [v["id"] for v in listed][1] == first  # newest first
    assert listed[0]["gathered"] == {"week": "47"}
    table = taskbot_cli("status", first, check=True).stdout
    assert "alice" in table
    assert "running" in table
    assert "http://testserver/chat/" in table
    assert "no deliverable yet" in taskbot_cli("results", first, check=True).stdout
    assert taskbot_cli("runs", "--task", "nope").returncode == 2


def test_run_wait_shows_progress_until_the_run_ends(engine, workers, taskbot_cli, tmp_path):
    engine.import_contacts([{"email": "alice@example.com", "preferred_channel": "web"}])
    spec = tmp_path / "quick.yaml"
    spec.write_text(GOOD.replace("24h", "1s").replace("max_chases: 2", "max_chases: 1"))
    taskbot_cli("tasks", "apply", str(spec), check=True)
    workers(1)
    result = taskbot_cli("run", "weekly-status", "--wait")
    assert result.returncode == 0, result.stderr
    rid = result.stdout.strip().splitlines()[-1]
    assert "completed: 0/1 answered · 0 open · 1 chased · 1 timed out · 0 failed" in result.stderr
    assert engine.store.run_fields(rid)["status"] == "completed"
