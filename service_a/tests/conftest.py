"""Fixtures: an app per test on a fresh database (SQLite always, PostgreSQL too
when TEST_DATABASE_URL_A is set) and an HTTP client for it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app import db
from app.main import create_app
from app.settings import Settings, normalize_database_url

PG_ENV = "TEST_DATABASE_URL_A"


def _backends() -> list[str]:
    return ["sqlite", "postgres"] if os.environ.get(PG_ENV) else ["sqlite"]


async def fresh_database_url(backend: str, tmp_path: Any) -> str:
    """A database URL with no tables in it."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/service_a.db"
    url = normalize_database_url(os.environ[PG_ENV])
    engine = db.make_engine(url)
    try:
        await db.drop_all_tables(engine)
    except Exception as exc:  # set but unreachable is always a failure
        pytest.fail(f"{PG_ENV} is set but the database is unreachable: {exc!r}")
    finally:
        await engine.dispose()
    return url


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test run: "sqlite" or "postgres"."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Any) -> str:
    """A fresh database for the test."""
    return await fresh_database_url(backend, tmp_path)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings of an app without Kafka on the test's database."""
    return Settings(database_url=database_url, kafka_enabled=False)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app, started (schema created) and stopped around the test."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An HTTP client that calls the app in-process."""
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://service-a") as http:
        yield http
