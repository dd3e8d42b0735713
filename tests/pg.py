"""A real PostgreSQL server for the tests: one per test session (zq.testing.pgserver
starts it), and a fresh database per store under test.

The session fixture `pg_server` sets ZQ_TEST_PG_URL, so child processes (a store's crash
child, a `zq master`) reach the same server. It skips, saying why, when no server can be
started here; when ZQ_TESTS_NEED_POSTGRES=1 (.ci/run, which installs the server) it
fails instead, so CI never passes by skipping the PostgreSQL store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterator, NoReturn

import pytest

from zq.testing.pgserver import PgServer, PgUnavailable

URL_VARIABLE = "ZQ_TEST_PG_URL"  # the server's URL (its `postgres` database)


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("ZQ_TESTS_NEED_POSTGRES") == "1":
        pytest.fail(f"ZQ_TESTS_NEED_POSTGRES=1, but PostgreSQL cannot run: {reason}")
    pytest.skip(f"no PostgreSQL here: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'zq[postgres]')")
    try:
        server = PgServer.start()
    except PgUnavailable as e:
        unavailable(str(e))
    before = os.environ.get(URL_VARIABLE)
    os.environ[URL_VARIABLE] = server.url
    try:
        yield server
    finally:
        if before is None:
            os.environ.pop(URL_VARIABLE, None)
        else:
            os.environ[URL_VARIABLE] = before
        server.stop()


@pytest.fixture
def database(pg_server: PgServer) -> Iterator[str]:
    """A database of its own for one test (a master's connections to it may be cut or
    killed), dropped after."""
    with pg_server.scratch_database() as url:
        yield url


TEST_DATABASE = "zq_tests"


def database_for(path: Path) -> str:
    """The URL of a store of its own named after `path` (a schema of the session's
    test database, put first on the search path, made on first use): a store "kept at a
    path", as the contract suite opens every store, in this process or a child. A
    schema, not a database: making a database copies its template (8 MB each)."""
    import psycopg

    key = (os.environ.get(URL_VARIABLE), str(Path(path).resolve()))
    if key in _made:
        return _made[key]
    server_url = os.environ.get(URL_VARIABLE)
    if not server_url:
        raise RuntimeError(f"{URL_VARIABLE} is not set: use the pg_server fixture")
    base = server_url.rsplit("/", 1)[0]
    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                        (TEST_DATABASE,)).fetchone() is None:
            try:
                conn.execute(f"CREATE DATABASE {TEST_DATABASE}")
            except psycopg.errors.DuplicateDatabase:
                pass  # made meanwhile by another process
    schema = "s_" + hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:20]
    url = f"{base}/{TEST_DATABASE}?options=-csearch_path%3D{schema}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    _made[key] = url
    return url


_made: dict[tuple, str] = {}  # (server, path) -> the URL of its schema, made in this process
