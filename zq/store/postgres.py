"""The PostgreSQL store: every TaskRecord in a table of a PostgreSQL database (psycopg 3),
group committed the way the SQLite store is: journal, then fold.

Layout (made on the first open, in the first schema of the connection's search_path;
every name starts with zq_ so the store can share a database an application uses):

    zq_task (id bytea PRIMARY KEY,  -- the task id, UTF-8 (text refuses NUL, ids may not)
             seq bigint NOT NULL,   -- submission order: load() returns tasks by it
             state smallint NOT NULL,  -- zq.core.messages.State value
             payload bytea NOT NULL,   -- written on insert only: updates never rewrite it
             record bytea NOT NULL)    -- msgpack array of RECORD_FIELDS, as in SQLite
             WITH (fillfactor = 80)    -- room on the page: an update stays HOT
    zq_journal (turn bigint PRIMARY KEY, changes bytea NOT NULL)  -- committed turns not
             folded yet: msgpack [[op, rows], ...] in call order, as in SQLite
    zq_meta (key text PRIMARY KEY, value bytea NOT NULL)  -- msgpack values; the key
             'zq.schema' holds SCHEMA_VERSION, the other 'zq.' keys are the store's own

Indexes: the primary keys serve every write of the fold (an update, a delete: the master
expires results by id from its own expiry heap, so a result's TTL needs no index of its
own), get(), an upsert's conflict and the journal's trimming. zq_task_seq (seq) serves
the restore, which reads the tasks in submission order: an index scan streams them in
order, where a sort of a million rows with their payloads would spill to disk.

Journal, then fold. A commit writes the turn's changes as ONE row of zq_journal, with
the meta changes, in one transaction sent as one pipeline: a row per loop turn, not one
per task change (a row costs PostgreSQL 20-50 us: three per task would cap the master
below half of SQLite's throughput). compact() folds the oldest unfolded tasks into
zq_task, a bounded slice per call, when the master is quiet or the store behind(); the
index of unfolded changes (what get() and load() overlay on zq_task) is SQLite's, and
so is its format (zq.store.sqlite: merge, overlay, journal_parts). Opening the store
indexes what a crash left in the journal; replaying a change zq_task already has is
harmless, since every change sets values (none adds to them).

One writer per store: the lease. zq_lease holds one row: the lease's epoch, the master
that holds it (holder, the endpoint its peers reach it at), its server session (pid and
backend_start) and when it expires, by the database's clock. take_lease() takes it when
it is free: released, expired (its holder stopped renewing it: a host cut off, a master
hung), or held by a session the server no longer has (a master killed -9: its
connection ended); taking it adds 1 to the epoch and reads the journal afresh. Every
write (a commit, a fold) first calls zq_lease_check(epoch) in the same transaction: it
holds the lease row FOR SHARE until the commit (so a takeover waits for a write in
flight, and a write waits for a takeover in flight) and raises LEASE_LOST when the
epoch moved: the write fails whole as LeaseLost and the master must stop serving. A
store written to without take_lease (a tool, a test) takes the lease on its first write,
or fails BUSY (StoreUnavailable) naming the master that holds it.

Durability is the server's: with its defaults (synchronous_commit=on, fsync=on) a commit
survives the master's and the server's host crashing. A lost connection or a server
that cannot write (shutting down, out of disk, read-only) raises StoreUnavailable with
what is pending kept: the master answers BUSY and tries the commit again every
STORE_RETRY, on a new connection. A commit whose COMMIT reached the server but whose
answer was lost writes the same journal rows again when retried (an upsert by turn).

About 650 lines: the store contract (as zq.store.sqlite) plus the lease, the link's
timeouts and the journal's folding, each a short method on the one connection they share.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator

from zq.core.tasks import TaskRecord
from zq.errors import ConfigError, LeaseLost, StoreError, StoreUnavailable
from zq.store import redact
from zq.store.journal import (
    FOLD_AFTER,
    FOLD_BYTES,
    FOLD_CHUNK,
    GONE,
    INDEX_PER_FOLD,
    JournalIndex,
    TurnBuffer,
    by_seq,
    insert_args,
    journal_parts,
    overlaid,
    overlay,
    pack,
    read_all,
    unpack,
    update_args,
)

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError:  # pragma: no cover - the extra is missing
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the lease (zq_lease, zq_lease_check); a version 1 store gets it
SCHEMA_KEY = "zq.schema"
CONNECT_TIMEOUT = 5  # seconds; the loop waits this long at most for a new connection
# A link gone dark must not hang the master's loop: libpq's TCP keepalives find an idle
# connection dead in ~5 s, TCP_USER_TIMEOUT one whose sent bytes go unacknowledged in
# 5 s (a host cut off mid-write); the server ends a session idle inside a transaction
# for 5 s (a master cut off mid-commit: its FOR SHARE on the lease row would hold a
# takeover back), checks every second that a running query's client is still there,
# and cancels a lock wait of 5 s and a statement of 60 s. A master cut off in the middle
# of a commit's pipeline (before its Sync) leaves the server waiting for the rest with
# the lease row held and no idle-in-transaction timer armed, its replies unacknowledged
# so no keepalive either: the server's own TCP_USER_TIMEOUT (5 s) ends that session,
# else only TCP's retransmissions would, after about 15 minutes. Each is a default: a
# parameter the store's URL sets wins (its `options` come after these).
LINK_PARAMS = {"keepalives": "1", "keepalives_idle": "2", "keepalives_interval": "1",
               "keepalives_count": "3", "tcp_user_timeout": "5000"}
SESSION_OPTIONS = ("-c statement_timeout=60s -c lock_timeout=5s"
                   " -c idle_in_transaction_session_timeout=5s"
                   " -c client_connection_check_interval=1s"
                   " -c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1"
                   " -c tcp_keepalives_count=3 -c tcp_user_timeout=5000")
# A standby's try to take the lease waits this long at most for the lease row's lock: a
# holder cut off mid-commit holds it FOR SHARE for up to 5 s, and a standby waiting that
# out would answer no peer meanwhile. Not taken now: it tries again at its next poll.
TAKE_LOCK_WAIT = "100ms"
LOAD_CHUNK = 10_000  # rows per fetch of the restore's server-side cursor
# pg_advisory_xact_lock key taken while the schema is checked or made: two masters
# opening a new database at once make it once.
SCHEMA_LOCK = 0x7A71_5343  # "zqSC"
# The lease (see the module docstring). LEASE_TTL: seconds a lease lasts without renewal
# when the taker names none (a store written to directly); the master passes its own.
LEASE_TTL = 10.0
LEASE_LOST = "ZQL01"  # the SQLSTATE zq_lease_check raises
_SESSION = "(SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())"
_HOLDER_GONE = ("(pid IS NULL OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
                " WHERE a.pid = zq_lease.pid AND a.backend_start = zq_lease.started))")
_TAKE_LEASE = ("UPDATE zq_lease SET epoch = epoch + 1, holder = %s, endpoint = %s,"
               f" pid = pg_backend_pid(), started = {_SESSION},"
               " expires = now() + make_interval(secs => %s)"
               f" WHERE id = 1 AND (expires < now() OR {_HOLDER_GONE}) RETURNING epoch")
_RENEW_LEASE = (f"UPDATE zq_lease SET pid = pg_backend_pid(), started = {_SESSION},"
                " expires = now() + make_interval(secs => %s)"
                " WHERE id = 1 AND epoch = %s RETURNING epoch")
_RELEASE_LEASE = ("UPDATE zq_lease SET expires = '-infinity', pid = NULL"
                  " WHERE id = 1 AND epoch = %s")
_READ_LEASE = (f"SELECT epoch, holder, endpoint, expires >= now() AND NOT {_HOLDER_GONE}"
               " FROM zq_lease WHERE id = 1")
_CHECK_LEASE = "SELECT zq_lease_check(%s)"
LEASE_DDL = (
    """CREATE TABLE IF NOT EXISTS zq_lease (
        id       smallint PRIMARY KEY CHECK (id = 1),
        epoch    bigint NOT NULL,       -- +1 at every take: a write names the one it holds
        holder   text NOT NULL,         -- who holds it (master id, host, pid), for people
        endpoint text NOT NULL,         -- where its peers reach it ('' if unknown)
        pid      integer,               -- its server session; NULL once released
        started  timestamptz,           -- that session's backend_start (pids are reused)
        expires  timestamptz NOT NULL)  -- by the server's clock""",
    "INSERT INTO zq_lease (id, epoch, holder, endpoint, expires)"
    " VALUES (1, 0, '', '', '-infinity') ON CONFLICT (id) DO NOTHING",
    f"""CREATE OR REPLACE FUNCTION zq_lease_check(held bigint) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE now_held bigint;
        BEGIN
            SELECT epoch INTO now_held FROM zq_lease WHERE id = 1 FOR SHARE;
            IF now_held IS DISTINCT FROM held THEN
                RAISE EXCEPTION 'the store''s lease moved to epoch %, this master held %',
                    now_held, held USING ERRCODE = '{LEASE_LOST}';
            END IF;
        END $$""",
)


@dataclass(frozen=True, slots=True)
class Lease:
    """The lease as take_lease() found or left it."""

    epoch: int
    holder: str  # '' when none ever held it
    endpoint: str  # where the holder's peers reach it; '' if it did not say
    live: bool  # held now: not expired, not released, its holder's session alive
    ours: bool  # this store holds it (at this epoch)


DDL = (
    """CREATE TABLE IF NOT EXISTS zq_task (
        id      bytea PRIMARY KEY,
        seq     bigint NOT NULL,
        state   smallint NOT NULL,
        payload bytea NOT NULL,
        record  bytea NOT NULL) WITH (fillfactor = 80)""",
    "CREATE INDEX IF NOT EXISTS zq_task_seq ON zq_task (seq)",
    "CREATE TABLE IF NOT EXISTS zq_journal (turn bigint PRIMARY KEY, changes bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS zq_meta (key text PRIMARY KEY, value bytea NOT NULL)",
    *LEASE_DDL,
)
# A retried commit whose first try did reach the server writes the same rows again.
_JOURNAL = ("INSERT INTO zq_journal (turn, changes) SELECT * FROM unnest(%b::int8[], %b::bytea[])"
            " ON CONFLICT (turn) DO UPDATE SET changes = EXCLUDED.changes")
_TRIM_JOURNAL = "DELETE FROM zq_journal WHERE turn < %b"
_READ_JOURNAL = "SELECT turn, changes FROM zq_journal ORDER BY turn"
_DELETE = "DELETE FROM zq_task WHERE id = ANY(%b::bytea[])"
_UPSERT = ("INSERT INTO zq_task (id, seq, state, payload, record)"
           " SELECT * FROM unnest(%b::bytea[], %b::int8[], %b::int2[], %b::bytea[], %b::bytea[])"
           " ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state,"
           " payload = EXCLUDED.payload, record = EXCLUDED.record")
_UPDATE = ("UPDATE zq_task AS t SET state = u.state, record = u.record"
           " FROM unnest(%b::bytea[], %b::int2[], %b::bytea[]) AS u (id, state, record)"
           " WHERE t.id = u.id")
_SET_META = ("INSERT INTO zq_meta (key, value) SELECT * FROM unnest(%b::text[], %b::bytea[])"
             " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
_SELECT = "SELECT id, seq, state, payload, record FROM zq_task ORDER BY seq"
_SELECT_ONE = "SELECT id, seq, state, payload, record FROM zq_task WHERE id = %b"
_GET_META = "SELECT value FROM zq_meta WHERE key = %s"


class PostgresStore(TurnBuffer, JournalIndex):
    """The Store protocol over one PostgreSQL database. Not thread-safe: one thread at a
    time (it may be opened in one thread and used in another)."""

    durable = True
    leased = True  # several masters may open it: the lease says which one serves

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT,
                 fold_after: int = FOLD_AFTER, lease_ttl: float = LEASE_TTL) -> None:
        if psycopg is None:
            raise ConfigError("the PostgreSQL store needs psycopg 3: pip install "
                              "'zq[postgres]' (or 'psycopg[binary]')")
        self.url = url
        self.shown = redact(url)
        self._connect_timeout = connect_timeout
        self._closed = False
        TurnBuffer.__init__(self)  # the turn's buffered writes
        JournalIndex.__init__(self, fold_after, FOLD_BYTES)  # the journal, in memory
        self._conn: Any = None
        # The lease: the epoch held (None: not held), its length and who holds it.
        self.epoch: int | None = None
        self.lease_ttl = lease_ttl
        self._holder = f"a zq store user (pid {os.getpid()})"
        self._lease_lost = False  # LeaseLost was raised: write nothing more (no fold)
        try:
            self._connect()
            self._check_schema()
            self._recover()
        except StoreError:
            self._drop_connection()
            raise

    # --- writes: buffered until commit() (save, update, delete, set_meta: TurnBuffer) ---

    def commit(self) -> None:
        """Everything pending in one transaction, one round trip: the task changes as
        a journal row (several for a turn of huge payloads), the meta as rows of
        zq_meta. StoreUnavailable keeps it pending for the next try."""
        self._check_open("committing")
        pending, meta = self._pending, self._pending_meta
        if not (pending or meta):
            return
        self._hold_lease("committing")  # first: taking it reads the journal afresh
        try:
            parts = journal_parts(pending) if pending else []  # (msgpack refuses an
            # id that is not UTF-8, as zq_task would at the fold, after the ACCEPTED)
        except (TypeError, ValueError, OverflowError, UnicodeError) as e:
            raise self._fail(e, "committing") from e
        turns = list(range(self._turn + 1, self._turn + 1 + len(parts)))
        statements: list[tuple[str, list]] = []
        if parts:
            statements.append((_JOURNAL, [turns, [blob for _, blob in parts]]))
        if meta:
            statements.append((_SET_META, [list(meta), list(meta.values())]))
        self._write(statements, "committing")
        self._committed(turns, parts, pending)
        self._clear_pending()

    def _write(self, statements: list[tuple[str, list]], what: str) -> None:
        """One transaction in one pipeline, after the lease check; a lost connection is
        StoreUnavailable (the next try connects again), a moved lease LeaseLost, an
        error of the data a StoreError."""
        if self.epoch is None:
            raise StoreUnavailable(f"{what}: this store does not hold the lease of "
                                   f"{self.shown}")
        conn = None
        try:
            conn = self._connection()
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                cur.execute(_CHECK_LEASE, [self.epoch])
                for statement, params in statements:
                    cur.execute(statement, params)
        except psycopg.Error as e:
            if getattr(e, "sqlstate", None) == LEASE_LOST:
                raise self._lost(e, what) from e
            if _retryable(e, conn):
                raise self._unavailable(e, what) from e
            raise self._fail(e, what) from e

    # --- the lease ---------------------------------------------------------------------

    def take_lease(self, holder: str, endpoint: str = "", ttl: float | None = None) -> Lease:
        """Take the lease if it is free (released, expired, or its holder's session
        gone), for ttl seconds (lease_ttl by default); the lease as it is then. Taking
        it reads the journal afresh: the last holder may have written since the open.
        StoreUnavailable when the server cannot be reached."""
        self._check_open("taking the lease")
        if ttl is not None:
            self.lease_ttl = ttl
        self._holder = holder
        try:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{TAKE_LOCK_WAIT}'")
                    row = conn.execute(_TAKE_LEASE,
                                       (holder, endpoint, self.lease_ttl)).fetchone()
            except pg_errors.LockNotAvailable:  # a commit of the holder's holds the row
                row = None
            if row is not None:
                self.epoch, self._lease_lost = int(row[0]), False
                self._reset_index()
                self._recover()
                return Lease(self.epoch, holder, endpoint, True, True)
            return self._read_lease(conn)
        except psycopg.Error as e:
            raise self._lease_error(e, "taking the lease") from e

    def renew_lease(self) -> None:
        """Make the lease last lease_ttl seconds more, from the server's now: LeaseLost
        when another master took it meanwhile, StoreUnavailable when the server cannot
        be reached (the lease may expire meanwhile)."""
        self._check_open("renewing the lease")
        if self.epoch is None:
            raise LeaseLost(f"renewing the lease of {self.shown}: this store does not "
                            "hold it")
        try:
            self._renew(self._connection())
        except psycopg.Error as e:
            raise self._lease_error(e, "renewing the lease") from e

    def lease(self) -> Lease:
        """The lease as the server has it now."""
        self._check_open("reading the lease")
        try:
            return self._read_lease(self._connection())
        except psycopg.Error as e:
            raise self._lease_error(e, "reading the lease") from e

    def _renew(self, conn: Any) -> None:
        if conn.execute(_RENEW_LEASE, (self.lease_ttl, self.epoch)).fetchone() is None:
            raise self._lost(None, "renewing the lease")

    def _read_lease(self, conn: Any) -> Lease:
        epoch, holder, endpoint, live = conn.execute(_READ_LEASE).fetchone()
        return Lease(int(epoch), holder, endpoint, bool(live), epoch == self.epoch)

    def _hold_lease(self, what: str) -> None:
        """Before a write: the lease must be ours; a store that never took it takes it
        now, or cannot write now (BUSY), naming the master that holds it."""
        if self._lease_lost:
            raise LeaseLost(f"{what}: the lease of {self.shown} was lost; this store "
                            "writes nothing more")
        if self.epoch is not None:
            return
        lease = self.take_lease(self._holder)
        if not lease.ours:
            at = f" at {lease.endpoint}" if lease.endpoint else ""
            raise StoreUnavailable(
                f"{what}: another session writes to the store {self.shown} ({lease.holder}"
                f"{at}, lease epoch {lease.epoch}): is another zq master running on it? "
                "Run one master per store, or start the others as standbys; this one "
                "writes once that master is gone")

    def _lost(self, e: Exception | None, what: str) -> LeaseLost:
        """The lease moved: nothing of this write happened, and nothing more will."""
        held, self.epoch, self._lease_lost = self.epoch, None, True
        why = _first_line(e) if e is not None else (
            f"the store's lease moved on from epoch {held}")
        return LeaseLost(f"{what} on the store {self.shown} failed: {why}: another master "
                         "took over; this one must stop serving")

    def _lease_error(self, e: Exception, what: str) -> StoreError:
        if getattr(e, "sqlstate", None) == LEASE_LOST:
            return self._lost(e, what)
        if self._conn is None or self._conn.broken or isinstance(e, psycopg.OperationalError):
            self._drop_connection()
            return StoreUnavailable(f"{what} failed on the store {self.shown}: "
                                    f"{_first_line(e)}")
        return StoreError(f"{what} failed on the store {self.shown}: {_first_line(e)}")

    # --- upkeep: the fold --------------------------------------------------------------

    def compact(self, limit: int = FOLD_CHUNK) -> bool:
        """One bounded slice of upkeep: index up to INDEX_PER_FOLD * limit committed
        changes and fold up to `limit` tasks into zq_task. True while work remains."""
        self._check_open("compacting")
        self._hold_lease("folding the journal")
        self._index(INDEX_PER_FOLD * max(limit, 1))
        if self._unfolded:
            self._fold(limit)
            return True
        return bool(self._unindexed)

    def _fold(self, limit: int) -> None:
        """Write the oldest `limit` unfolded tasks into zq_task and delete the journal
        rows no unfolded change is left in, in one transaction."""
        if not self._unfolded or limit <= 0:
            return
        taken = list(islice(self._unfolded.items(), limit))
        oldest_left = self._oldest_left(len(taken))
        try:
            statements = _task_statements(taken)
        except (TypeError, ValueError, OverflowError, UnicodeError) as e:
            raise StoreError(f"folding the journal of the store {self.shown} failed: "
                             f"{e}") from e
        statements.append((_TRIM_JOURNAL, [oldest_left]))
        self._write(statements, "folding the journal")
        self._folded(taken, oldest_left)

    def _recover(self) -> None:
        """Index what a crash left in the journal (all of it was committed); it is
        folded as upkeep, like any other unfolded change."""
        try:
            rows = self._conn.execute(_READ_JOURNAL, binary=True).fetchall()
        except psycopg.Error as e:
            raise StoreError(f"reading the journal of the store {self.shown} failed: "
                             f"{_first_line(e)}") from e
        try:
            self._replay(rows)
        except (ValueError, TypeError, IndexError) as e:
            raise StoreError(f"a journal row of the store {self.shown} cannot be read: "
                             f"{e}") from e
        if self._unfolded:
            log.info("%d tasks' changes left in the journal of %s; they are folded as "
                     "upkeep", len(self._unfolded), self.shown)

    # --- reads -----------------------------------------------------------------------

    def load(self) -> Iterator[TaskRecord]:
        """Every committed record, by seq: zq_task, streamed from a server-side cursor,
        with the unfolded changes applied."""
        self._check_open("loading the tasks")
        self._index()
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor("zq_load", binary=True) as cur:
                cur.itersize = LOAD_CHUNK
                cur.execute(_SELECT)
                rows = ((i.decode(), s, st, p, r) for i, s, st, p, r in cur)
                records = read_all(overlaid(rows, self._unfolded))
        except psycopg.Error as e:
            raise self._read_error(e, "loading the tasks") from e
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"a task row of the store {self.shown} cannot be read: {e}") from e
        records.sort(key=by_seq)  # the unfolded tasks come last; stable, as SQLite's load
        return iter(records)

    def get(self, task_id: str) -> TaskRecord | None:
        """One committed task by id (an old result being fetched), or None."""
        self._check_open("reading a task")
        self._index()
        entry = self._unfolded.get(task_id)
        row = None
        if entry is None or entry[1] is None:
            try:
                key = task_id.encode()
                found = self._connection().execute(_SELECT_ONE, (key,), binary=True).fetchone()
            except psycopg.Error as e:
                raise self._read_error(e, "reading a task") from e
            except (AttributeError, UnicodeError) as e:
                raise StoreError(f"a task id is a str, not {task_id!r}") from e
            if found is not None:
                row = (task_id, *found[1:])
        if entry is not None:
            row = overlay(row, entry)
        if row is None:
            return None
        try:
            return read_all([row])[0]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"the row of task {task_id!r} in the store {self.shown} "
                             f"cannot be read: {e}") from e

    def get_meta(self, key: str) -> Any:
        self._check_open(f"reading meta {key!r}")
        if key in self._pending_meta:
            return unpack(self._pending_meta[key])
        return self._read_meta(key)

    def _read_meta(self, key: str) -> Any:
        try:
            row = self._connection().execute(_GET_META, (key,), binary=True).fetchone()
        except psycopg.Error as e:
            raise self._read_error(e, f"reading meta {key!r}") from e
        try:
            return None if row is None else unpack(bytes(row[0]))
        except ValueError as e:
            raise StoreError(f"meta {key!r} of the store {self.shown} cannot be read: "
                             f"{e}") from e

    def close(self) -> None:
        """Discard what is not committed, fold the journal and close; closing twice is
        harmless. A fold that fails leaves the journal for the next open."""
        if self._closed:
            return
        if self._clear_pending():
            log.warning("closing the store %s with uncommitted changes: discarded", self.shown)
        try:  # only the lease's holder writes: a standby leaves the journal alone
            if self.epoch is not None and (self._unfolded or self._unindexed):
                self._index()
                self._fold(len(self._unfolded))
        except StoreError:
            log.exception("folding the journal of %s on close failed", self.shown)
        self._closed = True
        if self.epoch is not None and self._conn is not None:
            try:  # a standby takes over at once, not once the lease expires
                self._conn.execute(_RELEASE_LEASE, (self.epoch,))
            except psycopg.Error:
                pass  # it expires, or the session's end frees it
        self.epoch = None
        self._drop_connection()

    # --- the connection ----------------------------------------------------------------

    def _connect(self) -> None:
        try:
            # make_conninfo merges the link parameters into the URL (connect()'s own
            # keywords would also take them, but then share a namespace with its options)
            params = link_params(self.url, self._connect_timeout)
            conninfo = psycopg.conninfo.make_conninfo(self.url, **params)
            self._conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store {self.shown}: "
                                   f"{_first_line(e)}") from e

    def _connection(self) -> Any:
        """The open connection, or a new one after a lost one."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop_connection()
            self._connect()
            if self.epoch is not None:  # the lease names our session: the new one now,
                self._renew(self._conn)  # before a standby takes the old one's end for ours
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _check_schema(self) -> None:
        """Make the tables in a new database, add the lease to a version 1 store; refuse
        one made by a newer zq. An existing store costs one query."""
        try:
            version = self._schema_version()
            if version is None or version == 1:
                with self._conn.transaction():
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    version = self._schema_version()  # another master may have done it
                    if version is None or version == 1:
                        for ddl in DDL if version is None else LEASE_DDL:
                            self._conn.execute(ddl)
                        version = SCHEMA_VERSION
                        self._conn.execute(_SET_META, ([SCHEMA_KEY], [pack(version)]),
                                           binary=True)
        except psycopg.Error as e:
            raise StoreError(f"cannot make the tables of the store {self.shown}: "
                             f"{_first_line(e)}") from e
        if version != SCHEMA_VERSION:
            raise StoreError(f"the store {self.shown} has schema version {version!r}, this "
                             f"zq knows {SCHEMA_VERSION}: run the zq that made it, or give "
                             "another database")

    def _schema_version(self) -> Any:
        """The stored schema version; None when there are no tables (or no version)."""
        try:
            with self._conn.transaction():  # a savepoint inside the creating transaction
                return self._read_meta(SCHEMA_KEY)
        except StoreError as e:
            if isinstance(e.__cause__, pg_errors.UndefinedTable):
                return None
            raise

    # --- errors ----------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise StoreError(f"{what}: the store {self.shown} is closed")

    def _unavailable(self, e: Exception, what: str) -> StoreUnavailable:
        """A retry may succeed: the connection is dropped (the next try makes a new
        one), what is pending is kept."""
        self._drop_connection()
        return StoreUnavailable(f"{what} failed on the store {self.shown}: "
                                f"{_first_line(e)}; nothing was lost, it can be tried again")

    def _read_error(self, e: Exception, what: str) -> StoreError:
        """A read failed: nothing pending is touched (it is not the reader's to drop)."""
        if self._conn is not None and self._conn.broken:
            self._drop_connection()
        return StoreError(f"{what} failed on the store {self.shown}: {_first_line(e)}")

    def _fail(self, e: Exception, what: str) -> StoreError:
        """The error to raise; what is pending is discarded first, so that a failed
        save never half-survives into the next commit."""
        note = "; the uncommitted changes were discarded" if self._clear_pending() else ""
        return StoreError(f"{what} failed on the store {self.shown}: {_first_line(e)}{note}")


def link_params(url: str, connect_timeout: float) -> dict[str, str]:
    """The connection parameters that keep a dead link from hanging the loop (see
    LINK_PARAMS), less those the URL sets itself. A malformed URL is left to connect()
    to refuse."""
    try:
        given = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        given = {}
    params = {k: v for k, v in LINK_PARAMS.items() if k not in given}
    if "connect_timeout" not in given:  # libpq takes whole seconds, 2 at least
        params["connect_timeout"] = str(max(2, int(connect_timeout)))
    params["options"] = f"{SESSION_OPTIONS} {given.get('options', '')}".strip()
    return params


def _task_statements(taken: list[tuple[str, list]]) -> list[tuple[str, list]]:
    """Unfolded entries as (statement, array parameters): deletes, upserts, updates."""
    deletes: list[bytes] = []
    upserts: list[tuple] = []
    updates: list[tuple] = []
    for task_id, (_, save, update) in taken:
        if save is GONE:
            deletes.append(task_id.encode())
        elif save is None:
            updates.append(update_args(update))
        else:
            upserts.append(insert_args(save, update))
    out: list[tuple[str, list]] = []
    if deletes:
        out.append((_DELETE, [deletes]))
    if upserts:
        ids, seqs, states, payloads, records = zip(*upserts)
        out.append((_UPSERT, [[i.encode() for i in ids], list(seqs), list(states),
                              [bytes(p) if type(p) is memoryview else p for p in payloads],
                              list(records)]))
    if updates:
        states, records, ids = zip(*updates)
        out.append((_UPDATE, [[i.encode() for i in ids], list(states), list(records)]))
    return out


# SQLSTATE classes after which the same commit may succeed later: the connection
# (08), too many connections or a full disk (53), an operator intervention such as a
# shutdown or a cancel (57), a system error (58), a read-only server (25006), a
# serialization failure or deadlock (40).
_RETRY_CLASSES = ("08", "53", "57", "58", "40")


def _retryable(e: Exception, conn: Any) -> bool:
    if conn is None or conn.closed or conn.broken:
        return True
    if isinstance(e, (psycopg.OperationalError, pg_errors.ReadOnlySqlTransaction)):
        return True
    code = getattr(e, "sqlstate", None) or ""
    return code[:2] in _RETRY_CLASSES


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

