"""The PostgreSQL store's connection cannot hang the master's loop on a link gone
dark: libpq's TCP keepalives and TCP_USER_TIMEOUT are on, and the server's session has
lock, statement and idle-in-transaction timeouts (so a master cut off mid-commit does
not hold the lease row from a standby). A parameter the store's URL sets wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import database_for
from zq.testing.pgserver import PgServer

psycopg = pytest.importorskip("psycopg")
from zq.store.postgres import PostgresStore  # noqa: E402 - after the importorskip

SHOWN = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
         "client_connection_check_interval", "tcp_keepalives_idle")


def settings(store: PostgresStore) -> dict[str, str]:
    conn = store._conn
    return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SHOWN}


def test_the_session_has_timeouts_and_the_link_keepalives(pg_server: PgServer,
                                                          tmp_path: Path) -> None:
    store = PostgresStore(database_for(tmp_path / "store"))
    try:
        assert settings(store) == {
            "statement_timeout": "1min", "lock_timeout": "5s",
            "idle_in_transaction_session_timeout": "5s",
            "client_connection_check_interval": "1s", "tcp_keepalives_idle": "2"}
        params = store._conn.info.get_parameters()
        assert (params.get("keepalives"), params.get("tcp_user_timeout")) == ("1", "5000")
    finally:
        store.close()


def test_the_urls_own_parameters_win(pg_server: PgServer, tmp_path: Path) -> None:
    url = database_for(tmp_path / "store")
    joined = "&" if "?" in url else "?"
    store = PostgresStore(f"{url}{joined}tcp_user_timeout=7000"
                          "&options=-c%20lock_timeout%3D9s")
    try:
        assert settings(store)["lock_timeout"] == "9s"
        assert settings(store)["statement_timeout"] == "1min"
        assert store._conn.info.get_parameters().get("tcp_user_timeout") == "7000"
    finally:
        store.close()
