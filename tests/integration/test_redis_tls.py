"""A managed Redis over TLS with a password (`rediss://`), as docs/deployment.md configures it: the CLI, a worker
process and the engine run a whole story over it, and a wrong password or CA is a clear error naming no secret.

The Redis is a private `redis-server --port 0 --tls-port ...` with a certificate signed by a CA made here.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.redis_server import find_binary, free_port
from tests.conftest import ROOT

PASSWORD = "s3cr@t/pass"  # needs percent-encoding in a URL: the docs say so, this proves it


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for localhost and 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(cert("taskbot test CA", ca_key, "taskbot test CA", ca_key, True).public_bytes(
        serialization.Encoding.PEM))
    paths[1].write_bytes(cert("localhost", server_key, "taskbot test CA", ca_key, False).public_bytes(
        serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """(the rediss:// URL a user would write, the folder with ca.pem, the port)."""
    folder = tmp_path_factory.mktemp("redis-tls")
    ca, cert, key = make_ca_and_server_cert(folder)
    port = free_port()
    binary = find_binary()
    process = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                                "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
                                "--requirepass", PASSWORD, "--appendonly", "yes", "--save", "",
                                "--dir", str(folder), "--logfile", str(folder / "redis.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://:{quote(PASSWORD, safe='')}@localhost:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            log = (folder / "redis.log").read_text() if (folder / "redis.log").exists() else ""
            pytest.skip(f"{binary} does not run with TLS (built without it?): {log[-300:]}")
        try:
            with redis.Redis.from_url(url) as client:
                client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server with TLS did not answer"
            time.sleep(0.05)
    yield url, folder, port
    process.terminate()
    process.wait(10)


@pytest.fixture
def tls_env(tls_redis, env):
    url, _, _ = tls_redis
    with redis.Redis.from_url(url) as client:
        client.flushall()
    return {**env, "TASKBOT_REDIS_URL": url}


def taskbot(tls_env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, env=tls_env, capture_output=True,
                          text=True, timeout=60)


def test_a_run_goes_from_trigger_to_report_over_tls_with_a_password(tls_env, tmp_path, monkeypatch, wait_for):
    task = tmp_path / "standup.yaml"
    task.write_text("id: standup\nname: Standup\nowner: lee@example.com\ntemplate:\n"
                    "  fields: [{key: today, prompt: What will you do today?}]\n"
                    "  participants: [ann@example.com]\n")
    people = tmp_path / "people.csv"
    people.write_text("email,name,preferred_channel\nann@example.com,Ann,web\n")
    assert taskbot(tls_env, "contacts", "import", str(people)).returncode == 0
    assert taskbot(tls_env, "tasks", "apply", str(task)).returncode == 0
    rid = taskbot(tls_env, "run", "standup").stdout.strip().splitlines()[-1]

    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=tls_env,
                                  stdout=log, stderr=subprocess.STDOUT)
    engine = None
    try:
        monkeypatch.setenv("TASKBOT_REDIS_URL", tls_env["TASKBOT_REDIS_URL"])
        from bot.bootstrap import build_engine
        from bot.settings import Settings

        engine = build_engine(Settings())
        wait_for(lambda: any(s.get("chat_url") for s in engine.run_view(rid)["subtasks"]))
        [sub] = engine.run_view(rid)["subtasks"]
        engine.inbox.post_web(sub["chat_url"].rsplit("/", 1)[-1], "ship the TLS docs", "m1")
        wait_for(lambda: engine.store.run_fields(rid)["status"] == "completed")
    finally:
        worker.terminate()
        worker.wait(10)
        if engine is not None:
            engine.r.close()
    assert "ship the TLS docs" in taskbot(tls_env, "results", rid).stdout
    table = taskbot(tls_env, "results", rid, "--csv").stdout
    assert table.splitlines()[1] == "ann@example.com,Ann,completed,ship the TLS docs"
    assert PASSWORD not in (tmp_path / "worker.log").read_text()


@pytest.mark.parametrize(("change", "says"), [
    (lambda url: url.replace(quote(PASSWORD, safe=""), "wrong"), "refused the password"),
    (lambda url: url.replace("rediss://", "redis://").split("?")[0], "cannot reach Redis"),
    (lambda url: url.split("ssl_ca_certs=")[0] + "ssl_ca_certs=/etc/ssl/certs/ca-certificates.crt",
     "certificate verify failed"),
])
def test_a_wrong_password_or_ca_is_a_clear_error_that_names_no_secret(tls_env, change, says):
    url = change(tls_env["TASKBOT_REDIS_URL"])
    result = taskbot({**tls_env, "TASKBOT_REDIS_URL": url}, "runs")
    assert result.returncode == 1
    assert result.stderr.startswith("taskbot: error: ")
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "wrong"):
        assert secret not in result.stderr
