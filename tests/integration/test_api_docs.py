"""The API describes itself: /docs and /redoc offline, every body and error typed in /openapi.json, 405s with Allow."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from tests.conftest import ROOT


def referenced(page: str) -> list[str]:
    """Every URL a page loads: src and href attributes, and the schema URL its script fetches."""
    return re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page) + \
        re.findall(r'spec-url="([^"]+)"', page)


def test_docs_and_redoc_load_only_files_the_app_serves(web):
    for page in ("/docs", "/redoc"):
        res = web.get(page)
        assert res.status_code == 200
        assert "://" not in res.text, f"{page} loads something from another host"
        urls = referenced(res.text)
        assert any(u.endswith(".js") for u in urls), urls  # the UI's script ...
        assert "/openapi.json" in urls  # ... and the schema it renders
        for url in urls:
            assert url.startswith("/"), url
            asset = web.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
    assert web.get("/docs-static/swagger-ui-bundle.js").headers["content-type"].startswith(
        ("text/javascript", "application/javascript"))
    assert b"SwaggerUIBundle" in web.get("/docs-static/swagger-ui-bundle.js").content


def test_the_docs_work_from_an_installed_wheel_without_the_source_tree(tmp_path):
    """The Swagger UI files come from an installed package, not from files beside the code."""
    script = ("import importlib.resources as r; s = r.files('fastapi_offline') / 'static'; "
              "print(sorted(p.name for p in s.iterdir()))")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "swagger-ui-bundle.js" in out.stdout
    assert "redoc.standalone.js" in out.stdout
    assert not (ROOT / "bot" / "static" / "swagger-ui-bundle.js").exists()


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_api_body_and_answer_is_typed_and_its_errors_documented(web):
    spec = web.get("/openapi.json").json()
    operations = [(path, method, op) for path, item in spec["paths"].items() if path.startswith("/api/")
                  for method, op in item.items()]
    assert len(operations) >= 23
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert "401" in op["responses"], where
        if "requestBody" in op:
            assert {"413", "422"} <= op["responses"].keys(), where
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert resolve(spec, body).get("properties") or "anyOf" in body, f"{where}: untyped body"
        if "{" in path and not path.startswith("/api/datasets") and method != "put":
            assert "404" in op["responses"], where
        ok = next(code for code in op["responses"] if code.startswith("2"))
        content = op["responses"][ok].get("content", {})
        if "application/json" in content:
            schema = content["application/json"]["schema"]
            item = resolve(spec, schema.get("items", schema))
            assert item.get("properties"), f"{where}: a bare object in the answer"
        for code, answer in op["responses"].items():
            if code[0] in "45":
                error = resolve(spec, answer["content"]["application/json"]["schema"])
                assert "detail" in error["properties"], f"{where} {code}"
    run = spec["components"]["schemas"]["Run"]
    assert {"subtasks", "deliverables", "status", "owner"} <= run["properties"].keys()
    assert "run_id" in resolve(spec, spec["components"]["schemas"]["Notification"])["properties"]
    assert "next_run_at" in spec["components"]["schemas"]["Schedule"]["properties"]


def test_a_wrong_method_is_405_naming_every_method_the_path_serves(api):
    res = api.post("/api/tasks/some-task")
    assert res.status_code == 405
    assert set(res.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    res = api.put("/api/schedules")
    assert set(res.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert api.get("/api/contacts/nobody").status_code == 404  # a GET route now, not a 405


def test_results_csv_is_the_file_the_cli_prints(api, engine, env, drain):
    engine.import_contacts([{"email": "ann@example.com", "name": "Ann", "preferred_channel": "web"}])
    api.post("/api/tasks", json={"id": "t", "name": "T", "template": {
        "participants": ["ann@example.com"], "fields": [{"key": "today", "prompt": "Today?"}]}})
    rid = api.post("/api/trigger", json={"task_definition_id": "t"}).json()["run_id"]
    drain()  # Ann's sub-task opens: her row
    res = api.get(f"/api/runs/{rid}/results.csv")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/csv")
    assert f'filename="{rid}-results.csv"' in res.headers["content-disposition"]
    cli = subprocess.run([sys.executable, "-m", "bot", "results", rid, "--csv"], cwd=ROOT, env=env,
                         capture_output=True, timeout=60, check=True)
    assert res.content == cli.stdout
    assert res.text.splitlines() == ["id,name,status,today", "ann@example.com,Ann,running,"]
    assert api.get("/api/runs/nope/results.csv").status_code == 404
    with httpx.Client(base_url=str(api.base_url), timeout=10) as anonymous:
        assert anonymous.get(f"/api/runs/{rid}/results.csv").status_code == 401
