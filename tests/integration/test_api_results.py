"""``GET /api/runs/{id}/results.csv``: the CLI's file, byte for byte, formula guard included, scoped like the run."""

import csv
import io
import subprocess
import sys

import httpx

from tests.conftest import ROOT, answer
from tests.e2e.test_cli_results import answered  # noqa: F401 - the fixture: a run three people answered (or not)
from tests.integration.conftest import TOKEN


def test_the_api_serves_what_taskbot_results_csv_prints(answered, api, env):  # noqa: F811
    cli = subprocess.run([sys.executable, "-m", "bot", "results", answered, "--csv"], cwd=ROOT, env=env,
                         capture_output=True, check=True, timeout=60)
    res = api.get(f"/api/runs/{answered}/results.csv")
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/csv; charset=utf-8"
    assert res.headers["content-disposition"] == f'attachment; filename="retro-{answered}.csv"'
    assert res.content == cli.stdout
    rows = list(csv.reader(io.StringIO(res.text, newline="")))
    assert rows[2][3] == "'=HYPERLINK(\"http://evil.example\")"  # a spreadsheet shows it, never runs it


def test_a_person_gets_the_csv_of_their_own_runs_only(answered, engine, base):  # noqa: F811
    engine.import_contacts([{"id": "lee", "email": "lee@example.com"}, {"id": "eve", "email": "eve@example.com"}])
    lee, eve = engine.tokens.create("lee")[0], engine.tokens.create("eve")[0]
    for token, status in ((lee, 200), (eve, 404), (TOKEN, 200)):
        res = httpx.get(f"{base}/api/runs/{answered}/results.csv", headers={"Authorization": f"Bearer {token}"})
        assert res.status_code == status
        assert ("went_well" in res.text) == (status == 200)
    assert httpx.get(f"{base}/api/runs/nope/results.csv",
                     headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_a_finished_run_over_the_api_is_the_run_object_exactly(engine, drain, api):
    """The typed answer adds nothing (no null for a key the engine left out) and loses nothing."""
    engine.import_contacts([{"email": "alice@example.com", "name": "Alice", "preferred_channel": "web"},
                            {"email": "bob@example.com", "name": "Bob", "preferred_channel": "email"}])
    engine.apply_definition({"id": "weekly", "name": "Weekly", "owner": "lee@example.com", "template": {
        "participants": ["alice@example.com", "bob@example.com"], "close": {"quorum": 0.5},
        "fields": [{"key": "shipped", "prompt": "Shipped?"}]}})
    rid = api.post("/api/tasks/weekly/runs", json={"data": {"week": "23"}}).json()["run_id"]
    drain()
    alice = next(s for s in engine.run_view(rid)["subtasks"] if s["participant_id"] == "alice@example.com")
    answer(engine, alice, "the new parser", "m1")
    drain()
    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert view["deliverables"]  # a report, with its content
    assert api.get(f"/api/runs/{rid}").json() == view
    assert api.get("/api/runs").json() == engine.list_runs()
    assert "file" not in view["deliverables"][0]
    assert [n["kind"] for n in api.get("/api/notifications", params={"owner": "lee@example.com"}).json()] == [
        "task_completed"]
