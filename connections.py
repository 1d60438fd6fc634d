"""Connections: a Peewee database for a `playhouse.db_url` URL, pooled per
process and tuned for several processes sharing one database."""

import os
import random
import time

from peewee import OperationalError
from playhouse import db_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase


class ProcessPool:
    """Connections kept open between requests (a connect and a close cost more
    than a list page) and never shared across a fork: a process that inherits
    pooled connections (gunicorn's master may have migrated before forking)
    leaves them untouched, since closing a parent's SQLite connection can
    checkpoint or unlink the WAL under it, and opens its own."""

    def _connect(self):
        with self._pool_lock:
            if getattr(self, "_pid", None) != os.getpid():
                self._inherited = (self._connections, self._in_use)
                self._pid, self._connections, self._in_use = os.getpid(), [], {}
            return super()._connect()


class PooledSqlite(ProcessPool, PooledSqliteDatabase):
    """SQLite opens an unwritable file read-only, and the connection stays
    read-only after the file is fixed: such a connection is never reused.
    A pooled connection serves one thread at a time, but not always the
    same one (gthread workers), hence `check_same_thread=False`."""

    def __init__(self, *args, **kwargs):
        self._read_only = set()
        super().__init__(*args, **{"check_same_thread": False, **kwargs})

    def _add_conn_hooks(self, conn):  # under the pool's lock, as is _can_reuse
        super()._add_conn_hooks(conn)
        if not os.access(self.database, os.W_OK):
            self._read_only.add(id(conn))

    def _can_reuse(self, conn):
        if id(conn) in self._read_only:
            self._read_only.discard(id(conn))
            return False
        return super()._can_reuse(conn)

    def begin(self, lock_type=None):
        """BEGIN IMMEDIATE retried every few tenths of a millisecond while
        another writer holds the lock, up to the busy timeout. SQLite's own
        busy handler sleeps 1, 2, 5, 10... ms however soon the lock frees,
        which leaves the lock idle and gives writers long tails."""
        if lock_type != "IMMEDIATE":
            return super().begin(lock_type)
        timeout_ms = int(dict(self._pragmas).get("busy_timeout", 5000))
        deadline = time.monotonic() + timeout_ms / 1000
        connection = self.connection()  # PRAGMAs straight to the driver: run on every write
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    return super().begin(lock_type)
                except OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(0.0001, 0.0005))
        finally:
            connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")


class PooledPostgresql(ProcessPool, PooledPostgresqlDatabase):
    pass


POOLED = {"sqlite": PooledSqlite, "postgres": PooledPostgresql, "postgresql": PooledPostgresql}


def open_url(url, **params):
    """`playhouse.db_url.connect`, with SQLite and PostgreSQL pooled per process
    (one connection per thread, reused; PostgreSQL ones checked on checkout)."""
    database_class = POOLED.get(url.partition(":")[0].removesuffix("+pool"))
    if database_class is None:
        return db_url.connect(url, **params)
    pool = {"max_connections": None, "stale_timeout": 300}
    return database_class(**{**pool, **db_url.parse(url), **params})


def connect_url(url, busy_timeout_ms=5000, connect_timeout_s=5, statement_timeout_ms=5000):
    """A Peewee database for a `playhouse.db_url` URL, tuned for several
    processes: SQLite in WAL with a busy timeout, PostgreSQL with a bounded
    connect timeout and statement timeout (a lock wait or a stalled server
    ends in an error, a 503, well before gunicorn's worker timeout)."""
    if url.startswith("sqlite"):
        return open_url(
            url,
            timeout=busy_timeout_ms / 1000,
            pragmas={
                # A new database's pages of 2 KiB, not 4: a write's commit appends
                # every page it dirtied (a leaf of each index, the search segment,
                # the counters: some 20) to the WAL, and smaller pages halve those
                # bytes and their checksums. Set before the first write, as
                # SQLite requires; an existing database keeps its page size.
                "page_size": 2048,
                "journal_mode": "wal",
                "busy_timeout": busy_timeout_ms,
                "synchronous": "normal",  # WAL + NORMAL survives a process crash
                # A checkpoint (and its fsync) every 4,000 pages, not 1,000: a write
                # dirties a dozen pages, mostly the same hot ones (counters, index
                # leaves), which a checkpoint then copies once instead of four times.
                "wal_autocheckpoint": 4000,
            },
        )
    params = {}
    if "connect_timeout" not in url:
        params["connect_timeout"] = connect_timeout_s
    if "options" not in url and statement_timeout_ms:
        params["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
    return open_url(url, **params)
