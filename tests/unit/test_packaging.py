"""What the code reads at run time besides Python (templates, static files, examples) is listed in
pyproject.toml's package data, so an installed taskbot has its pages and mail bodies, not only a checkout."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

PACKAGES = ("bot", "channels", "engine")


def test_every_data_file_of_the_packages_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package in PACKAGES:
        folder = ROOT / package
        data = {p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                and "__pycache__" not in p.parts}
        # setuptools expands each pattern with glob relative to the package, as Path.glob does
        listed = {p for pattern in config.get(package, []) for p in folder.glob(pattern) if p.is_file()}
        assert sorted(map(str, data - listed)) == []


def test_the_pages_and_mail_bodies_are_among_them():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    listed = {f"{package}/{p.relative_to(ROOT / package)}" for package, patterns in config.items()
              for pattern in patterns for p in (ROOT / package).glob(pattern)}
    assert {"bot/templates/base.html", "bot/templates/chat.html", "bot/static/chat.js", "bot/static/taskbot.css",
            "channels/templates/email.html"} <= listed
