"""zq.testing.pgserver finds Debian's server binaries by glob (any version, the newest
first) and says clearly why it cannot run; tests/pg.py turns that into a skip, or a
failure where PostgreSQL is required (ZQ_TESTS_NEED_POSTGRES=1, as .ci/run sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import pg
from zq.testing import pgserver
from zq.testing.pgserver import PgUnavailable, find_bindir


def fake_versions(tmp_path: Path, versions: list[str]) -> str:
    for v in versions:
        (tmp_path / v / "bin").mkdir(parents=True)
        (tmp_path / v / "bin" / "initdb").touch()
    return str(tmp_path / "*" / "bin")


def test_the_newest_installed_version_is_found_by_glob(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = fake_versions(tmp_path, ["9.6", "15", "16", "13"])
    real_glob = pgserver.glob.glob
    monkeypatch.setattr(pgserver.glob, "glob", lambda _: real_glob(pattern))
    assert find_bindir() == tmp_path / "16" / "bin"


def test_no_binaries_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgserver.glob, "glob", lambda _: [])
    monkeypatch.setattr(pgserver.shutil, "which", lambda _: None)
    with pytest.raises(PgUnavailable, match=r"apt-get install postgresql"):
        find_bindir()


def test_unavailable_skips_unless_postgres_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZQ_TESTS_NEED_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL here: why"):
        pg.unavailable("why")
    monkeypatch.setenv("ZQ_TESTS_NEED_POSTGRES", "1")
    with pytest.raises(pytest.fail.Exception, match="ZQ_TESTS_NEED_POSTGRES=1"):
        pg.unavailable("why")
