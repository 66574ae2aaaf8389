"""The README's first command, `make demo`, on a fresh clone: it installs, starts and serves."""

import os
import re
import signal
import subprocess
import time

import httpx
import pytest

from bot.redis_server import answers, free_port
from tests.conftest import ROOT


@pytest.mark.timeout(300)
def test_make_demo_on_a_fresh_clone_serves_healthz_and_chat_links(tmp_path):
    clone = tmp_path / "taskbot"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers there: the demo starts its own
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKBOT_", "VIRTUAL_ENV", "PYTEST"))}
    env.update(TASKBOT_REDIS_URL=redis_url, TASKBOT_HTTP_PORT=str(port))
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(["make", "demo"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything" not in log.read_text():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        text = log.read_text()
        private = re.search(r"started a private redis-server \(AOF on\) at (\S+)", text)
        assert private, text
        assert (clone / ".demo" / "redis").is_dir()
        health = None
        while health is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            except httpx.ConnectError:  # the web app starts listening just after the banner
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json()["redis"] is True
        links = re.findall(r"(http://127\.0\.0\.1:\d+/chat/\S+)", text)
        assert len(links) == 3, text
        page = httpx.get(links[0], timeout=10)
        assert page.status_code == 200
        assert "What did you ship this week?" in page.text
        # The dashboard is closed like the API; the demo made a token and printed its sign-in link.
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
        sign_in = re.search(r"Dashboard \(this link signs you in once\): (http://\S+/\?token=\S+)", text)
        assert sign_in, text
        with httpx.Client(timeout=10) as browser:
            assert browser.get(sign_in.group(1)).status_code == 303
            dashboard = browser.get(f"http://127.0.0.1:{port}/")
            assert dashboard.status_code == 200
            assert "weekly-status" in dashboard.text
        assert "taskbot run weekly-status" in text
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    # Ctrl-C stopped everything it started: the web app and the private Redis are gone.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert not answers(private.group(1))
    assert "demo stopped" in log.read_text()
