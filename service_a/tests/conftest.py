"""Fixtures: an app per test on a fresh database (SQLite always, PostgreSQL too
when TEST_DATABASE_URL_A is set) and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from shopkit_testing import (
    TEST_IDENTITY,
    bare_client,  # noqa: F401 - the same without an identity of its own
    client,  # noqa: F401 - the fixture of an in-process HTTP client of app
    database_backends,
    fresh_database_url,
    started,
    use_audience,
)

PG_ENV = "TEST_DATABASE_URL_A"
use_audience("service_a")


@pytest.fixture(params=database_backends(PG_ENV))
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test run: "sqlite" or "postgres"."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> str:
    """A fresh database for the test."""
    return await fresh_database_url(PG_ENV if backend == "postgres" else None, tmp_path / "service_a.db")


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings of an app without Kafka on the test's database."""
    return Settings(database_url=database_url, kafka_enabled=False, **TEST_IDENTITY.settings())


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app, started (schema created) and stopped around the test."""
    async with started(create_app(settings)) as application:
        yield application
