"""The throwaway PostgreSQL server the tests and benchmarks use: it serves on loopback,
and stop() leaves nothing behind (no process, no directory), also when a start fails."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest

from tests.pg import unavailable
from zq.testing.pgserver import PgServer, PgUnavailable

psycopg = pytest.importorskip("psycopg")


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_server_serves_on_loopback_and_stop_leaves_nothing() -> None:
    try:
        server = PgServer.start()
    except PgUnavailable as e:
        unavailable(str(e))
    try:
        url = server.create_database("probe")
        assert url.startswith(f"postgresql://zq@127.0.0.1:{server.port}/")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("probe",)
        assert (server.root / "data" / "postmaster.pid").exists()
    finally:
        server.stop()
    assert not server.root.exists()
    assert not listening(server.port)
    server.stop()  # twice: harmless


def test_a_failed_start_removes_its_directory(tmp_path: Path) -> None:
    """A bin directory without working binaries: PgUnavailable, and no temp dir left."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("initdb", "pg_ctl"):
        (bindir / tool).write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
        (bindir / tool).chmod(0o755)
    tmp = Path(tempfile.gettempdir())  # where PgServer makes its directory
    before = set(tmp.glob("zq-pg-*"))
    with pytest.raises(PgUnavailable, match="initdb failed"):
        PgServer.start(bindir=bindir)
    assert set(tmp.glob("zq-pg-*")) <= before
