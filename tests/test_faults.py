"""Faults: the database goes away and comes back, a connection dies mid-request,
a worker is killed mid-write, gunicorn is told to stop. Real gunicorn, a real
PostgreSQL of this module's own (never the shared server), real SQLite files.

Every request carries a client timeout: a hang fails the test instead of
stalling it, and no test asserts a duration.
"""

import collections
import concurrent.futures
import contextlib
import glob
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import threading
import time

import psycopg
import pytest
import requests
from conftest import API, SECRET, auth, close, database_of, problem
from prometheus_client import REGISTRY
from servers import Gunicorn, Postgres, free_port, owned_tempdir, wait_for

from datasources import connections, models
from datasources.app import create_app

TIMEOUT = 20  # seconds a client waits; well past every timeout the service sets
MIGRATIONS = sorted(  # every migration the package ships, as a fresh database lacks them
    name.removesuffix(".py") for name in os.listdir(models.MIGRATIONS) if name[0].isdigit()
)


class Caller:
    """Each API operation over HTTP, as an editor of tenant t_001."""

    def __init__(self, server):
        self.url = server.url + API
        self.workers = server.workers()
        self.headers = auth()

    def list(self):
        return requests.get(self.url, headers=self.headers, timeout=TIMEOUT)

    def post(self, key, **fields):
        body = {"key": key, "name": key, **fields}
        return requests.post(self.url, json=body, headers=self.headers, timeout=TIMEOUT)

    def put(self, key, **fields):
        body = {"key": key, **fields}
        return requests.put(self.url, json=body, headers=self.headers, timeout=TIMEOUT)

    def delete(self, key):
        params = {"key": key}
        return requests.delete(self.url, params=params, headers=self.headers, timeout=TIMEOUT)

    def every_operation(self, key):
        return [self.list(), self.post(key), self.put(key, name="x"), self.delete(key)]


def unavailable(response):
    """A 503 problem with a Retry-After in whole seconds."""
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"].isdigit()
    body = response.json()
    assert body["status"] == 503 and body["title"] == "Service Unavailable"
    assert "Traceback" not in response.text


@pytest.fixture(scope="module")
def pg():
    with Postgres() as server:
        database = connections.connect_url(server.url)
        models.migrate(database)
        close(database)
        yield server


@pytest.fixture
def pg_env(pg):
    if not pg.running():
        pg.start()
    pg.sql("TRUNCATE data_sources, datasources_tenant_counts")
    return {"DATASOURCES_DATABASE_URL": pg.url, "DATASOURCES_JWT_SECRET": SECRET}


@pytest.fixture
def background():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        yield pool


@contextlib.contextmanager
def row_lock(pg, query, *params):
    """Hold the row locks `query` (a SELECT … FOR UPDATE) takes, in an open
    transaction, until the block ends."""
    with psycopg.connect(pg.url, connect_timeout=5) as conn:
        assert conn.execute(query, params).fetchall(), "nothing to lock"
        yield
        conn.rollback()


def blocked_backend(pg, statement):
    """The pid of the server backend waiting on a lock in `statement`, if any."""
    found = pg.sql(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
        statement + "%",
    )
    return found[0][0] if found else None


def client_backends(pg):
    query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    return pg.sql(query)[0][0] - 1  # not this query's own


def stored(pg):
    keys = [key for (key,) in pg.sql("SELECT key FROM data_sources ORDER BY key")]
    counts = dict(pg.sql("SELECT tenant_id, sources FROM datasources_tenant_counts"))
    return keys, counts


def test_postgres_away_is_503_and_the_same_workers_serve_when_it_is_back(pg, pg_env):
    with Gunicorn(pg_env, workers=2) as server:
        call = Caller(server)
        assert call.post("before").status_code == 201
        workers = server.workers()
        pg.stop()
        try:
            for attempt in range(3):  # enough requests to reach both workers
                for response in call.every_operation(f"during-{attempt}"):
                    unavailable(response)
            unavailable(requests.get(f"{server.url}/readyz", timeout=TIMEOUT))
            assert requests.get(f"{server.url}/healthz", timeout=TIMEOUT).status_code == 200
        finally:
            pg.start()
        assert requests.get(f"{server.url}/readyz", timeout=TIMEOUT).json() == {"status": "ready"}
        for attempt in range(3):
            assert call.post(f"after-{attempt}").status_code == 201
            assert call.put(f"after-{attempt}", rowVersion=1).json()["rowVersion"] == 2
        assert [s["key"] for s in call.list().json()["data"]] == [
            "before",
            *sorted(f"after-{attempt}" for attempt in range(3)),
        ]
        assert server.workers() == workers  # served again without a restart
    assert stored(pg) == (["after-0", "after-1", "after-2", "before"], {"t_001": 4})


def test_postgres_restarted_between_requests_then_serves_the_same_workers(pg, pg_env):
    with Gunicorn(pg_env, workers=2) as server:
        call = Caller(server)
        for attempt in range(6):  # every worker has used (and may keep) a connection
            assert call.post(f"before-{attempt}").status_code == 201
        pg.stop()
        pg.start()
        statuses = retried_writes(call, 12)
        assert server.workers() == call.workers
    keys, counts = stored(pg)
    assert len(keys) == 6 + statuses.count(201) and counts == {"t_001": len(keys)}


def test_a_server_that_never_answers_is_503_within_the_connect_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=1"
        env = {"DATASOURCES_DATABASE_URL": url, "DATASOURCES_JWT_SECRET": SECRET}
        with Gunicorn(env, workers=1) as server:
            call = Caller(server)
            unavailable(call.list())
            unavailable(call.post("k"))
            unavailable(requests.get(f"{server.url}/readyz", timeout=TIMEOUT))


def test_a_connection_killed_mid_request_is_503_and_never_reused(pg, pg_env, background):
    with Gunicorn(pg_env, workers=1) as server:
        call = Caller(server)
        assert call.post("k").status_code == 201
        with row_lock(pg, "SELECT 1 FROM data_sources WHERE key = %s FOR UPDATE", "k"):
            pending = background.submit(call.put, "k", name="lost", rowVersion=1)
            backend = wait_for(lambda: blocked_backend(pg, 'UPDATE "data_sources"'))
            assert pg.sql("SELECT pg_terminate_backend(%s)", backend) == [(True,)]
            unavailable(pending.result(TIMEOUT))
        for version in (1, 2, 3):  # the same worker, on fresh connections
            assert call.put("k", name=f"v{version}", rowVersion=version).status_code == 200
        assert len(server.workers()) == 1
    assert pg.sql("SELECT name, row_version FROM data_sources") == [("v3", 4)]


def test_a_statement_past_its_timeout_is_503_not_a_hang(pg, pg_env, background):
    env = {**pg_env, "DATASOURCES_STATEMENT_TIMEOUT_MS": "300"}
    with Gunicorn(env, workers=1) as server:
        call = Caller(server)
        assert call.post("k").status_code == 201
        with row_lock(pg, "SELECT 1 FROM data_sources WHERE key = %s FOR UPDATE", "k"):
            unavailable(call.put("k", name="waited", rowVersion=1))
            unavailable(call.delete("k"))
        assert call.put("k", name="later", rowVersion=1).status_code == 200
    assert pg.sql("SELECT name, row_version FROM data_sources") == [("later", 2)]


def test_a_worker_killed_mid_write_leaves_no_half_written_source(pg, pg_env, background):
    with Gunicorn(pg_env, workers=1) as server:
        call = Caller(server)
        assert call.post("first").status_code == 201
        # The create's INSERT has written its row, and its trigger waits on the
        # counter row we hold: the worker dies in the middle of the statement.
        counter = "SELECT 1 FROM datasources_tenant_counts WHERE tenant_id = %s FOR UPDATE"
        with row_lock(pg, counter, "t_001"):
            pending = background.submit(call.post, "second")
            wait_for(lambda: blocked_backend(pg, 'INSERT INTO "data_sources"'))
            [worker] = server.workers()
            os.kill(worker, signal.SIGKILL)
            with pytest.raises(requests.ConnectionError):
                pending.result(TIMEOUT)
            assert stored(pg) == (["first"], {"t_001": 1})  # nothing seen half-done
        # Once the lock is free, the statement ends whole, row and counters
        # together, as one statement does (a create is one, its counters kept
        # by triggers); its backend then finds its client gone.
        wait_for(lambda: client_backends(pg) == 0, what="the killed worker's backend to end")
        assert stored(pg) == (["first", "second"], {"t_001": 2})
        wait_for(lambda: server.workers() not in ([], [worker]), what="a new worker")
        again = call.post("second")
        assert again.status_code == 409  # the client's retry learns it is there
        assert call.post("third").status_code == 201
    assert stored(pg) == (["first", "second", "third"], {"t_001": 3})


def test_sigterm_lets_an_in_flight_request_finish(pg, pg_env, background):
    with Gunicorn(pg_env, workers=1) as server:
        call = Caller(server)
        assert call.post("slow").status_code == 201
        with row_lock(pg, "SELECT 1 FROM data_sources WHERE key = %s FOR UPDATE", "slow"):
            pending = background.submit(call.put, "slow", name="finished", rowVersion=1)
            wait_for(lambda: blocked_backend(pg, 'UPDATE "data_sources"'))
            server.process.send_signal(signal.SIGTERM)
            wait_for(lambda: "Handling signal: term" in server.log(), what="gunicorn's SIGTERM")
        response = pending.result(TIMEOUT)
        assert response.status_code == 200
        assert (response.json()["name"], response.json()["rowVersion"]) == ("finished", 2)
        assert server.process.wait(TIMEOUT) == 0
        with pytest.raises(requests.ConnectionError):
            call.list()
    assert pg.sql("SELECT name, row_version FROM data_sources") == [("finished", 2)]


@pytest.fixture
def sqlite_app(tmp_path):
    path = tmp_path / "datasources.db"
    app = create_app(
        {
            "TESTING": True,
            "DATASOURCES_DATABASE_URL": f"sqlite:///{path}",
            "DATASOURCES_JWT_SECRET": SECRET,
            "DATASOURCES_SQLITE_BUSY_TIMEOUT_MS": 200,
        },
        instance_path=str(tmp_path),
    )
    app.database_path = str(path)
    yield app
    close(database_of(app))


def test_sqlite_locked_past_the_busy_timeout_is_503_for_writes(sqlite_app):
    client, headers = sqlite_app.test_client(), auth()
    assert client.post(API, json={"key": "k", "name": "n"}, headers=headers).status_code == 201
    holder = sqlite3.connect(sqlite_app.database_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for response in [
            client.post(API, json={"key": "new", "name": "n"}, headers=headers),
            client.put(API, json={"key": "k", "name": "x", "rowVersion": 1}, headers=headers),
            client.delete(API, query_string={"key": "k"}, headers=headers),
        ]:
            problem(response, 503)
            assert response.headers["Retry-After"] == "5"
        listed = client.get(API, headers=headers)  # WAL: readers never wait for the writer
        assert listed.status_code == 200 and listed.json["pagination"]["total"] == 1
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert client.put(API, json={"key": "k", "rowVersion": 1}, headers=headers).status_code == 200
    assert client.post(API, json={"key": "new", "name": "n"}, headers=headers).status_code == 201


def sqlite_settings(path):
    with contextlib.closing(sqlite3.connect(path)) as database:
        (size,) = database.execute("PRAGMA page_size").fetchone()
        (mode,) = database.execute("PRAGMA journal_mode").fetchone()
    return size, mode


@pytest.mark.parametrize("existing", [None, 4096, 1024])
def test_a_new_sqlite_database_has_2_kib_pages_and_an_existing_one_keeps_its_own(
    tmp_path, existing
):
    path = tmp_path / "datasources.db"
    if existing:  # made before the service, in rollback-journal mode
        with contextlib.closing(sqlite3.connect(path)) as made:
            made.execute(f"PRAGMA page_size = {existing}")
            made.execute("CREATE TABLE host_notes (note TEXT)")
    config = {"DATASOURCES_DATABASE_URL": f"sqlite:///{path}", "DATASOURCES_JWT_SECRET": SECRET}
    app = create_app(config, instance_path=str(tmp_path))
    try:
        response = app.test_client().post(API, json={"key": "k", "name": "n"}, headers=auth())
        assert response.status_code == 201
        assert sqlite_settings(path) == (existing or 2048, "wal")
        listed = app.test_client().get(API, headers=auth())
        assert [source["key"] for source in listed.json["data"]] == ["k"]
    finally:
        close(database_of(app))


@pytest.fixture
def sqlite_env():
    folder = owned_tempdir()
    yield {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{folder}/ds.db",
        "DATASOURCES_JWT_SECRET": SECRET,
        "DATASOURCES_SQLITE_BUSY_TIMEOUT_MS": "200",
    }
    shutil.rmtree(folder)


def chmod_database(env, mode):
    for path in glob.glob(env["DATASOURCES_DATABASE_URL"].removeprefix("sqlite:///") + "*"):
        os.chmod(path, mode)


def test_sqlite_file_unwritable_is_503_for_writes_until_it_is_writable_again(sqlite_env):
    with Gunicorn(sqlite_env, workers=1) as server:
        assert Caller(server).post("k").status_code == 201
    # Workers that open the database while it is unwritable (root's override
    # dropped, so file modes bind) boot, read, and answer writes with 503.
    chmod_database(sqlite_env, 0o444)
    with Gunicorn(sqlite_env, workers=2, honour_file_modes=True) as server:
        call = Caller(server)
        workers = server.workers()
        for attempt in range(3):
            unavailable(call.post(f"new-{attempt}"))
            unavailable(call.put("k", name="x"))
            unavailable(call.delete("k"))
            assert call.list().json()["pagination"]["total"] == 1
        # SQLite makes its -wal/-shm files with the database's mode, so an
        # operator restores all of them, not only ds.db.
        chmod_database(sqlite_env, 0o644)
        statuses = retried_writes(call, 12)
        assert call.list().json()["pagination"]["total"] == 1 + statuses.count(201)
        assert server.workers() == workers


def retried_writes(call, count):
    """Creates after a fault has passed: a connection a worker keeps from the
    fault (pooled: dead, or opened read-only) may fail once, with a 503, and
    is then discarded; so at most one 503 per worker, and never a 500."""
    statuses = []
    for attempt in range(count):
        response = call.post(f"after-{attempt}")
        if response.status_code != 201:
            unavailable(response)
        statuses.append(response.status_code)
    assert statuses.count(503) <= len(call.workers)
    return statuses


def test_a_worker_restarted_while_sqlite_is_locked_boots_and_serves(sqlite_env):
    with Gunicorn(sqlite_env, workers=2) as server:
        call = Caller(server)
        assert call.post("k").status_code == 201
        path = sqlite_env["DATASOURCES_DATABASE_URL"].removeprefix("sqlite:///")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            killed = server.workers()[0]
            os.kill(killed, signal.SIGKILL)
            wait_for(
                lambda: killed not in server.workers() and len(server.workers()) == 2,
                what="a new worker",
            )
            wait_for(
                lambda: "Booting worker" in server.log().split(str(killed))[-1], what="boot log"
            )
            unavailable(call.post("new"))
            assert call.list().status_code == 200
        finally:
            holder.execute("COMMIT")
            holder.close()
        assert server.process.poll() is None, server.log()
        for attempt in range(4):
            assert call.post(f"new-{attempt}").status_code == 201


def test_readyz_is_503_while_migrations_pend_and_200_once_applied(tmp_path):
    config = {"DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'ds.db'}"}
    config.update(DATASOURCES_JWT_SECRET=SECRET, DATASOURCES_AUTO_MIGRATE="0")
    app = create_app(config, instance_path=str(tmp_path))
    client, database = app.test_client(), database_of(app)
    response = client.get("/readyz")
    detail = f"Schema migrations are pending: {', '.join(MIGRATIONS)}."
    assert problem(response, 503)["detail"] == detail
    assert response.headers["Retry-After"] == "5"
    assert models.migrate(database) == MIGRATIONS
    response = client.get("/readyz")
    assert (response.status_code, response.json) == (200, {"status": "ready"})
    close(database)


def test_healthz_needs_no_database_and_readyz_names_none(tmp_path):
    refused = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    config = {"DATASOURCES_DATABASE_URL": refused, "DATASOURCES_JWT_SECRET": SECRET}
    app = create_app(config, instance_path=str(tmp_path))
    client = app.test_client()
    assert (client.get("/healthz").status_code, client.get("/healthz").json) == (
        200,
        {"status": "ok"},
    )
    response = client.get("/readyz")
    assert problem(response, 503)["detail"] == "The database is unavailable; try again shortly."
    assert response.headers["Retry-After"] == "5"
    assert "127.0.0.1" not in response.get_data(as_text=True)  # no connection details leak
    close(database_of(app))


def test_workers_killed_under_write_load_leave_every_source_whole(database_url):
    """SIGKILL workers while creates and deletes are in flight: every source
    and the tenant's counter stay consistent, every answered write holds."""
    env = {"DATASOURCES_DATABASE_URL": database_url, "DATASOURCES_JWT_SECRET": SECRET}
    stop = threading.Event()

    def writer(server, number):
        session, outcomes = requests.Session(), collections.defaultdict(set)
        session.headers.update(auth())
        url = server.url + API
        for n in itertools.count():
            if stop.is_set():
                return outcomes
            key = f"w{number}-{n}"
            try:
                created = session.post(url, json={"key": key, "name": key}, timeout=TIMEOUT)
                outcomes[created.status_code].add(key)
                if n % 2:
                    deleted = session.delete(url, params={"key": key}, timeout=TIMEOUT)
                    outcomes[deleted.status_code].add(key)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                outcomes["cut"].add(key)  # the worker died: either outcome may hold

    with Gunicorn(env, workers=3) as server:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            writers = [pool.submit(writer, server, number) for number in range(6)]
            for victim in range(3):
                time.sleep(0.3)  # pacing only: let writes pile up in every worker
                killed = server.workers()[victim % 3]
                os.kill(killed, signal.SIGKILL)
                wait_for(
                    lambda gone=killed: len(server.workers()) == 3 and gone not in server.workers()
                )
            stop.set()
            outcomes = collections.defaultdict(set)
            for future in writers:
                for status, keys in future.result().items():
                    outcomes[status] |= keys
    assert set(outcomes) <= {201, 204, 404, "cut"}, outcomes.keys()
    rows = database_rows(database_url, "SELECT key FROM data_sources WHERE tenant_id = 't_001'")
    counted = database_rows(
        database_url, "SELECT sources FROM datasources_tenant_counts WHERE tenant_id = 't_001'"
    )
    keys = {key for (key,) in rows}
    assert counted == [(len(keys),)]
    assert outcomes[201] - outcomes[204] - outcomes["cut"] <= keys
    assert not keys & outcomes[204]
    assert len(outcomes[201]) > 0


def database_rows(database_url, sql):
    if database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


# Operators can see why: each failure is logged with its cause (never a
# password or the URL) and counted by cause; an unmigrated schema is a 503
# that says so on every route, logged once per worker with the command to run.

WRONG_PASSWORD = "wrong-pass-" + secrets.token_hex(4)


def output_lines(capsys):
    """The JSON log lines the standalone app printed since the last call."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def database_errors(cause):
    return REGISTRY.get_sample_value("datasources_database_errors_total", {"error": cause}) or 0


@pytest.fixture
def locked_out(pg):
    """A role that must give its password over TCP (the rest of the cluster
    trusts): the name of a role whose login fails."""
    if not pg.running():
        pg.start()
    hba = os.path.join(pg.data, "pg_hba.conf")
    with open(hba) as rules:
        original = rules.read()
    with open(hba, "w") as rules:  # first match wins
        rules.write("host all locked_out 127.0.0.1/32 scram-sha-256\n" + original)
    pg.sql("CREATE ROLE locked_out LOGIN PASSWORD 'the-right-one'")
    pg.sql("SELECT pg_reload_conf()")
    yield "locked_out"
    with open(hba, "w") as rules:
        rules.write(original)
    pg.sql("SELECT pg_reload_conf()")
    pg.sql("DROP ROLE locked_out")


@contextlib.contextmanager
def silent_server():
    """A port whose kernel completes handshakes and where nobody ever answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield silent.getsockname()[1]


FAILURES = {
    "connection_refused": lambda pg, port: f"postgresql://postgres@127.0.0.1:{free_port()}/x",
    "authentication_failed": lambda pg, port: (
        f"postgresql://locked_out:{WRONG_PASSWORD}@127.0.0.1:{pg.port}/postgres"
    ),
    "unknown_database": lambda pg, port: (
        f"postgresql://postgres:{WRONG_PASSWORD}@127.0.0.1:{pg.port}/no_such_database"
    ),
    "connect_timeout": lambda pg, port: (
        f"postgresql://postgres:{WRONG_PASSWORD}@127.0.0.1:{port}/x?connect_timeout=1"
    ),
}


@pytest.mark.parametrize("cause", list(FAILURES))
def test_a_database_failure_is_logged_with_its_cause_and_counted(
    pg, locked_out, tmp_path, capsys, cause
):
    with silent_server() as port:
        url = FAILURES[cause](pg, port)
        app = create_app(
            {"DATASOURCES_DATABASE_URL": url, "DATASOURCES_JWT_SECRET": SECRET},
            instance_path=str(tmp_path),
        )
        client = app.test_client()
        before = database_errors(cause)
        capsys.readouterr()
        response = client.get(API, headers={**auth(), "X-Request-ID": f"down-{cause}"})
    assert problem(response, 503)["detail"] == "The database is unavailable; try again shortly."
    warning, access = output_lines(capsys)
    words = cause.replace("_", " ")
    assert warning["message"] == f"database unavailable: {words} (OperationalError)"
    assert warning["level"] == "WARNING" and warning["request_id"] == "down-" + cause
    assert (access["status"], access["problem"]) == (503, "Service Unavailable")
    assert database_errors(cause) == before + 1
    for leak in (WRONG_PASSWORD, "postgresql://", "the-right-one"):
        assert leak not in json.dumps([warning, access]) and leak not in response.text
    close(database_of(app))


def test_a_statement_past_its_timeout_is_logged_as_such(pg, pg_env, tmp_path, capsys):
    config = {**pg_env, "DATASOURCES_STATEMENT_TIMEOUT_MS": "300"}
    app = create_app(config, instance_path=str(tmp_path))
    client = app.test_client()
    assert client.post(API, json={"key": "k", "name": "n"}, headers=auth()).status_code == 201
    before = database_errors("statement_timeout")
    with row_lock(pg, "SELECT 1 FROM data_sources WHERE key = %s FOR UPDATE", "k"):
        capsys.readouterr()
        problem(client.put(API, json={"key": "k", "name": "x"}, headers=auth()), 503)
    [warning] = [line for line in output_lines(capsys) if line["level"] == "WARNING"]
    assert warning["message"] == "database unavailable: statement timeout (OperationalError)"
    assert database_errors("statement_timeout") == before + 1
    close(database_of(app))


def test_sqlite_locked_is_logged_as_locked(sqlite_app, capsys):
    client = sqlite_app.test_client()
    holder = sqlite3.connect(sqlite_app.database_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        capsys.readouterr()
        problem(client.post(API, json={"key": "k", "name": "n"}, headers=auth()), 503)
    finally:
        holder.execute("COMMIT")
        holder.close()
    [warning] = [line for line in output_lines(capsys) if line["level"] == "WARNING"]
    assert warning["message"] == "database unavailable: locked (OperationalError)"


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request, tmp_path):
    """An empty database: an SQLite file, or a new database on this module's
    PostgreSQL (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    pg = request.getfixturevalue("pg")
    if not pg.running():
        pg.start()
    name = f"fresh_{secrets.token_hex(4)}"
    pg.sql(f'CREATE DATABASE "{name}"')
    yield pg.url.rsplit("/", 1)[0] + "/" + name
    pg.sql(f'DROP DATABASE "{name}" WITH (FORCE)')


def every_route(client):
    """One call of each API operation, as an editor of t_001."""
    return [
        client.get(API, headers=auth()),
        client.post(API, json={"key": "k", "name": "n"}, headers=auth()),
        client.get(f"{API}/k", headers=auth()),
        client.put(API, json={"key": "k", "name": "x"}, headers=auth()),
        client.delete(API, query_string={"key": "k"}, headers=auth()),
    ]


def schema_app(url, folder, migrate):
    config = {"DATASOURCES_DATABASE_URL": url, "DATASOURCES_JWT_SECRET": SECRET}
    return create_app({**config, "DATASOURCES_AUTO_MIGRATE": migrate}, instance_path=str(folder))


def test_an_unmigrated_database_is_a_503_on_every_route_logged_once(fresh_url, tmp_path, capsys):
    app = schema_app(fresh_url, tmp_path, migrate="0")
    client, names = app.test_client(), ", ".join(MIGRATIONS)
    capsys.readouterr()
    for _ in range(2):
        for response in every_route(client):
            body = problem(response, 503)
            assert body["detail"] == f"Schema migrations are pending: {names}; run `db upgrade`."
            assert response.headers["Retry-After"] == "5"
    assert [line["message"] for line in output_lines(capsys) if line["level"] != "INFO"] == [
        f"schema migrations are pending ({names}): the API answers 503 until "
        "`flask --app datasources.app db upgrade` runs"
    ]
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).output == f"applied: {names}\n"
    assert [response.status_code for response in every_route(client)] == [200, 201, 200, 200, 204]
    close(database_of(app))


def test_a_missing_table_is_a_503_saying_migrations_are_pending(fresh_url, tmp_path, capsys):
    app = schema_app(fresh_url, tmp_path, migrate="1")
    client = app.test_client()
    assert client.post(API, json={"key": "k", "name": "n"}, headers=auth()).status_code == 201
    database = database_of(app)
    with database.connection_context():
        database.execute_sql("DROP TABLE data_sources")
    before = database_errors("missing_table")
    capsys.readouterr()
    for _ in range(2):
        for response in every_route(client):
            assert problem(response, 503)["detail"] == (
                "Schema migrations are pending: a table the API needs is missing; run `db upgrade`."
            )
    assert [line["message"] for line in output_lines(capsys) if line["level"] != "INFO"] == [
        "a table or column the API needs is missing: it answers 503 until "
        "`flask --app datasources.app db upgrade` runs"
    ]
    assert database_errors("missing_table") == before + 10
    close(database)
