from __future__ import annotations

import os
import uuid

import pytest

from tasks.db.engine import dispose_engines, migrate

PG_URL = os.environ.get("AFTERCART_TEST_POSTGRES_URL")


def _backends():
    yield pytest.param("sqlite", id="sqlite")
    yield pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)


@pytest.fixture(params=list(_backends()))
def db_url(request, tmp_path):
    """A freshly migrated store: SQLite always, PostgreSQL when AFTERCART_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aftercart.db'}"
        migrate(url)
        yield url
        return
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must provide AFTERCART_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
        pytest.skip("AFTERCART_TEST_POSTGRES_URL not set")
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    base = PG_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    migrate(url)
    yield url
    dispose_engines()
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'aftercart.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server per session, flow heartbeats off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.fixture
def aftercart_env(monkeypatch, tmp_path, sqlite_url):
    """Settings for flows run in-process: a fresh store, the default policy."""
    monkeypatch.setenv("AFTERCART_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("AFTERCART_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AFTERCART_POLICY", raising=False)
    return sqlite_url


@pytest.fixture
def sop_world(aftercart_env, monkeypatch, prefect_harness):
    """A served sandbox (Shopify, 3PL, SMTP mailbox) with aftercart's settings pointed at it and a
    migrated store: what the SOP flow tests run against. Yields (served sandbox, store URL)."""
    from tests.helpers import free_port
    from tests.sandbox_fixtures import served_sandbox

    migrate(aftercart_env)
    smtp = free_port()
    with served_sandbox(smtp_port=smtp) as s:
        monkeypatch.setenv("AFTERCART_SHOPIFY_ADMIN_URL", f"{s.url}/admin/api/2026-10/graphql.json")
        monkeypatch.setenv("AFTERCART_SHOPIFY_ACCESS_TOKEN", "tok")
        monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
        monkeypatch.setenv("AFTERCART_THREEPL_URL", s.url)
        yield s, aftercart_env
