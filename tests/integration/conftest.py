"""The web app over real HTTP for integration tests: uvicorn on a free port, an API caller and a browser."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from bot.app import create_app
from bot.settings import Settings
from tests.conftest import served

TOKEN = "test-api-token-1234"


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Start apps under uvicorn in background threads; returns their base URLs; stops them after."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(served(app))


@pytest.fixture
def base(engine, serve) -> str:
    return serve(create_app(engine, Settings(api_token=TOKEN)))


@pytest.fixture
def api(base) -> Iterator[httpx.Client]:
    """A caller of the REST API that holds the token."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


@pytest.fixture
def web(base) -> Iterator[httpx.Client]:
    """A browser: no token, keeps cookies, does not follow redirects (so tests see them)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        yield client
