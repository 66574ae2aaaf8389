"""``GET /api/runs/{id}/results.csv``: the CLI's file, byte for byte, formula guard included, scoped like the run."""

import csv
import io
import subprocess
import sys

import httpx

from tests.conftest import ROOT
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
