"""The README's first command, `make demo`, on a fresh clone: it installs, starts and serves, on a Redis of
its own even when the machine already runs one on 6379, and it leaves that Redis untouched.

The machine's Redis is played by a redis-server on 6379 inside a network namespace of the test's own
(`unshare --net`), where the demo runs too: the test never goes near the real machine's 6379.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bot.redis_server import answers, find_binary, free_port
from tests.conftest import ROOT

BANNER = "Ctrl-C stops everything"


def can_make_namespaces() -> bool:
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


class Namespace:
    """A network namespace held open by a sleeping process; ``run``/``popen`` start commands inside it."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "900"])
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare did not make a namespace"
            time.sleep(0.01)
        self.prefix = ["nsenter", f"--target={self.holder.pid}", "--net"]
        subprocess.run([*self.prefix, "ip", "link", "set", "lo", "up"], check=True)

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=60, **kwargs)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([*self.prefix, *args], **kwargs)

    def python(self, code: str, *args: str) -> str:
        done = self.run(sys.executable, "-c", code, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def keys(self, url: str) -> list[str]:
        return json.loads(self.python("import json, sys, redis; r = redis.Redis.from_url(sys.argv[1]); "
                                      "print(json.dumps(sorted(k.decode() for k in r.keys('*'))))", url))

    def get(self, url: str, token: str | None = None) -> tuple[int, str]:
        out = self.python("import sys, httpx; h = {'Authorization': 'Bearer ' + sys.argv[2]} if sys.argv[2] else {}; "
                          "r = httpx.get(sys.argv[1], headers=h, timeout=10); print(r.status_code); print(r.text)",
                          url, token or "")
        status, _, body = out.partition("\n")
        return int(status), body

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def wait_for_banner(demo: subprocess.Popen, log, after: int = 0) -> str:
    deadline = time.monotonic() + 240
    while BANNER not in log.read_text()[after:]:
        assert demo.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.5)
    return log.read_text()[after:]


def stop(demo: subprocess.Popen) -> None:
    os.killpg(demo.pid, signal.SIGINT)
    try:
        demo.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGKILL)
        raise


def printed(text: str, words: str) -> str:
    """The command line the banner printed that contains ``words``, without its trailing comment."""
    [line] = [ln for ln in text.splitlines() if words in ln]
    return line.split("#")[0].strip()


@pytest.mark.timeout(600)
@pytest.mark.skipif(not can_make_namespaces(), reason="needs unshare --net (root, or user namespaces) and nsenter")
def test_make_demo_on_a_fresh_clone_keeps_off_the_machines_redis_and_leaves_nothing_running(tmp_path):
    clone = tmp_path / "taskbot"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKBOT_", "VIRTUAL_ENV", "PYTEST"))}
    # Installing needs the package index, which the namespace cannot reach: install first, as `make demo` would.
    subprocess.run(["make", ".venv/bin/.installed"], cwd=clone, env=env, check=True, capture_output=True, timeout=500)
    ns = Namespace()
    machine = ns.popen(find_binary(), "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--dir", str(tmp_path), stdout=subprocess.DEVNULL)
    machine_url = "redis://127.0.0.1:6379/0"
    try:
        deadline = time.monotonic() + 10
        while ns.run(sys.executable, "-c", f"import redis; redis.Redis.from_url('{machine_url}').set('mine', 1)"
                     ).returncode:
            assert time.monotonic() < deadline, "the machine's redis-server did not start"
            time.sleep(0.1)
        log = tmp_path / "demo.log"
        port = 18000 + os.getpid() % 1000  # inside the namespace every port is free
        env["TASKBOT_HTTP_PORT"] = str(port)
        with log.open("w") as out:
            demo = ns.popen("make", "demo", cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
        try:
            text = wait_for_banner(demo, log)
            private = re.search(r"started a private redis-server \(AOF on\) at (redis://[^\s,]+)", text)
            assert private, text
            assert private.group(1) != machine_url
            assert (clone / ".demo" / "redis" / "appendonlydir").is_dir()
            health, deadline = None, time.monotonic() + 30
            while health is None or health[0] != 200:
                assert time.monotonic() < deadline, health
                try:
                    health = ns.get(f"http://127.0.0.1:{port}/healthz")
                except AssertionError:  # the web app starts listening just after the banner
                    time.sleep(0.2)
            assert json.loads(health[1])["redis"] is True
            links = re.findall(r"(http://127\.0\.0\.1:\d+/chat/\S+)", text)
            assert len(links) == 3, text
            status, page = ns.get(links[0])
            assert status == 200
            assert "What did you ship this week?" in page
            first_run = re.search(r"Example run (\w+) of task weekly-status", text).group(1)
            token = re.search(r"Dashboard \(this link signs you in once\): \S+/\?token=(\S+)", text).group(1)
            assert (clone / ".demo" / "api-token").read_text().strip() == token
            # The dashboard is closed like the API; the printed link signs in (and drops the token from the URL).
            assert ns.get(f"http://127.0.0.1:{port}/")[0] == 401
            assert ns.get(f"http://127.0.0.1:{port}/?token={token}")[0] == 303
            assert oct((clone / ".demo" / "api-token").stat().st_mode & 0o777) == "0o600"

            # The commands it prints work as printed, from the clone, in a plain shell.
            command = printed(text, " status ")
            assert command.startswith(f"TASKBOT_REDIS_URL={private.group(1)} .venv/bin/taskbot ")
            shown = ns.run("sh", "-c", command, cwd=clone, env=env)
            assert shown.returncode == 0, shown.stderr
            assert first_run in shown.stdout
            assert "running" in shown.stdout
            csv = ns.run("sh", "-c", printed(text, "--csv"), cwd=clone, env=env)
            assert csv.returncode == 0, csv.stderr
            assert csv.stdout.splitlines()[0] == "id,name,status,shipped,blockers"
            assert ns.keys(machine_url) == ["mine"]
        finally:
            stop(demo)
        text = log.read_text()
        assert "cancelled 1 run(s) still open" in text
        assert "demo stopped" in text
        assert ns.run(sys.executable, "-c", f"import httpx; httpx.get('http://127.0.0.1:{port}/healthz')"
                      ).returncode != 0  # the web app is gone
        assert ns.run(sys.executable, "-c", f"import redis; redis.Redis.from_url('{private.group(1)}').ping()"
                      ).returncode != 0  # its Redis is gone too

        # Started again: the same sign-in token, the same Redis data, and the first run ended, not resuming.
        size = len(log.read_text())
        with log.open("a") as out:
            demo = ns.popen("make", "demo", cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
        try:
            again = wait_for_banner(demo, log, after=size)
            assert f"?token={token}" in again
            assert f"at {private.group(1)}," in again  # the port it had, so printed commands keep working
            status, body = 0, ""
            while status != 200:
                try:
                    status, body = ns.get(f"http://127.0.0.1:{port}/api/runs/{first_run}", token)
                except AssertionError:
                    time.sleep(0.2)
            assert json.loads(body)["status"] == "cancelled"
        finally:
            stop(demo)
        assert ns.keys(machine_url) == ["mine"]  # nothing written into the machine's Redis, ever
    finally:
        machine.kill()
        machine.wait()
        ns.close()


def test_a_given_redis_that_does_not_answer_is_refused_and_nothing_starts(tmp_path, env):
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    done = subprocess.run([sys.executable, "-m", "bot", "demo", "--data-dir", str(tmp_path / "demo")], cwd=ROOT,
                          env={**env, "TASKBOT_REDIS_URL": url}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "TASKBOT_REDIS_URL (redis://:***@127.0.0.1:" in done.stderr
    assert "does not answer" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "demo").exists()


@pytest.mark.timeout(120)
def test_on_a_given_redis_the_demo_ends_only_the_runs_it_started(r, env, engine, tmp_path):
    engine.import_contacts([{"email": "dan@example.com", "preferred_channel": "web"}])
    engine.apply_definition({"id": "other", "name": "Other", "owner": "dan@example.com",
                             "template": {"participants": ["dan@example.com"],
                                          "fields": [{"key": "x", "prompt": "X?"}]}})
    theirs = engine.runs.trigger("other", kind="manual")
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen([sys.executable, "-m", "bot", "demo", "--data-dir", str(tmp_path / "demo"),
                                 "--port", str(free_port())], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        text = wait_for_banner(demo, log)
        assert "using the Redis of TASKBOT_REDIS_URL" in text
        assert "TASKBOT_REDIS_URL=" not in text.split("In a second terminal")[1]  # the user's shell has it
        mine = re.search(r"Example run (\w+) of task weekly-status", text).group(1)
    finally:
        stop(demo)
    assert engine.store.run_fields(mine)["status"] == "cancelled"
    assert engine.store.run_fields(theirs)["status"] in ("pending", "running")  # not the demo's to end
    assert not (tmp_path / "demo" / "redis").exists()
    assert answers(env["TASKBOT_REDIS_URL"])
