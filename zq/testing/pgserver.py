"""A throwaway PostgreSQL server for tests and benchmarks: initdb and pg_ctl in a
temporary directory, on a free loopback port, its socket in that directory, everything
removed on stop().

It lives in the zq package (not tests/ or bench/) because both the test suite and the
bench scripts start it, and bench must not import tests. Debian's `postgresql` package
puts the server binaries in /usr/lib/postgresql/VERSION/bin (not on PATH); the newest
found there, else initdb on PATH, is used. As root the server runs as the `postgres`
user (initdb refuses root).

    with PgServer.start() as server:   # PgUnavailable: why it cannot run here
        url = server.create_database("zq")
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

from zq.testing.processes import free_port

SUPERUSER = "zq"  # initdb's superuser, trusted on loopback: this server is a throwaway
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
PORT_TRIES = 3  # a free port found may be taken before the server binds it
# For tests: a crash of the server's host is not what they test, kill -9 of the master
# is (the server keeps every commit either way), so the server skips its fsyncs.
FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


class PgUnavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin with initdb, else the directory of initdb on
    PATH."""
    found = [Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")
             if (Path(d) / "initdb").exists()]
    if found:
        return max(found, key=lambda d: _version(d.parent.name))
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PgUnavailable("no PostgreSQL server binaries: none in /usr/lib/postgresql/*/bin "
                        "and no initdb on PATH (apt-get install postgresql)")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", name))


class PgServer:
    """One running server; stop() (or leaving the `with`) stops it and removes its
    directory."""

    def __init__(self, bindir: Path, root: Path, port: int, user: str | None,
                 listen: Sequence[str] = ("127.0.0.1",)) -> None:
        self.bindir, self.root, self.port, self._user = bindir, root, port, user
        self.listen = list(listen)
        self.data, self.log = root / "data", root / "server.log"
        self._stopped = False

    @classmethod
    def start(cls, fast: bool = True, bindir: Path | None = None,
              listen: Sequence[str] = ("127.0.0.1",), trust: Sequence[str] = ()) -> PgServer:
        """initdb and start a server (fast: without fsync, for tests); PgUnavailable
        when it cannot. listen: the addresses it listens on (the first is the one its
        URLs name); trust: networks (10.1.2.0/24) whose peers it admits too, without a
        password, as it does loopback peers (for test hosts in namespaces)."""
        bindir = bindir or find_bindir()
        user = _server_user()
        root = Path(tempfile.mkdtemp(prefix="zq-pg-"))
        server = cls(bindir, root, 0, user, listen)
        try:
            if user is not None:
                shutil.chown(root, user, user)
                os.chmod(root, 0o700)
            server._run("initdb", "-D", str(server.data), "-U", SUPERUSER, "-A", "trust",
                        "-E", "UTF8", "--no-sync", "--locale=C")
            if trust:
                with open(server.data / "pg_hba.conf", "a") as hba:
                    hba.writelines(f"host all all {net} trust\n" for net in trust)
            for _ in range(PORT_TRIES):
                server.port = free_port()
                if server._pg_ctl_start(fast):
                    return server
            raise PgUnavailable(f"the PostgreSQL server would not start; its log:\n"
                                f"{server._log_tail()}")
        except BaseException:
            server.stop()
            raise

    def _pg_ctl_start(self, fast: bool) -> bool:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses={','.join(self.listen)} "
                   f"-c max_connections=50" + (f" {FAST}" if fast else ""))
        done = self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log),
                         "-w", "-t", str(START_TIMEOUT), "-o", options, check=False)
        return done.returncode == 0

    @property
    def url(self) -> str:
        """The URL of the default `postgres` database."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{self.listen[0]}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self._run("createdb", "-h", self.listen[0], "-p", str(self.port), "-U", SUPERUSER,
                  name)
        return self.url_of(name)

    @contextlib.contextmanager
    def scratch_database(self) -> Iterator[str]:
        """A new empty database under a unique name, for one test: its URL; dropped
        after, with the connections still open to it (a killed master's) cut."""
        name = "zq_" + uuid.uuid4().hex[:12]
        url = self.create_database(name)
        try:
            yield url
        finally:
            self._run("dropdb", "-h", self.listen[0], "-p", str(self.port), "-U", SUPERUSER,
                      "--if-exists", "--force", name, check=False)

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away) and remove its directory;
        twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w",
                          check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command: Sequence[str] = [str(self.bindir / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        try:
            done = subprocess.run(command, cwd=self.root, capture_output=True, text=True,
                                  timeout=START_TIMEOUT + 30)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PgUnavailable(f"{tool} could not run: {e}") from e
        if check and done.returncode != 0:
            raise PgUnavailable(f"{tool} failed ({done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def _server_user() -> str | None:
    """None: run the server as ourselves; else the user to run it as (we are root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PgUnavailable("running as root, and there is no `postgres` user to run the "
                            "server as (initdb refuses root)") from None
    if shutil.which("runuser") is None:
        raise PgUnavailable("running as root without runuser to start the server as "
                            "`postgres`")
    return "postgres"
