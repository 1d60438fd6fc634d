"""What the test_hostile_*.py files share: seeded apps and the state a
refused request must leave as it was, raw bodies, and a real HTTP server.

Fixtures; a test module takes the ones it uses by assignment, `shared =
hostile.shared` (an import the test's parameter shadows is lint's F811):
    seeded      an app of the test's backend where t_001 has `crm`, t_002 `theirs`
    shared      the same seed in one SQLite app per module, for requests
                refused before any query, where the backend cannot matter
    server      an app with a body limit of LIMIT bytes behind a real HTTP server
"""

import dataclasses
import os
import socket
import threading

import pytest
from conftest import API, SECRET, auth, database_of, rows, token
from werkzeug.serving import make_server

from datasources.app import create_app

SEED = {"key": "crm", "name": "CRM", "sourceConfig": {"a": 1}}
THEIRS = {"key": "theirs", "name": "T"}
LIMIT = 2048  # the body limit of `server` (and of test_hostile_bodies.small)


def state(app):
    """Everything stored, both tables, straight from the app's database."""
    return rows(app), rows(app, "datasources_tenant_counts")


@dataclasses.dataclass(frozen=True)
class Seeded:
    """A client of a seeded app, and what was stored once it was seeded."""

    app: object
    client: object
    before: tuple

    def state(self):
        return state(self.app)


def seed(app):
    client = app.test_client()
    assert client.post(API, json=SEED, headers=auth()).status_code == 201
    assert client.post(API, json=THEIRS, headers=auth("t_002")).status_code == 201
    return Seeded(app, client, state(app))


@pytest.fixture
def seeded(app):
    return seed(app)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared")
    with pytest.MonkeyPatch.context() as patch:  # before conftest's function-scoped cleaning
        for name in [n for n in os.environ if n.startswith("DATASOURCES_")]:
            patch.delenv(name)
        application = create_app(
            {
                "TESTING": True,
                "DATASOURCES_DATABASE_URL": f"sqlite:///{folder / 'datasources.db'}",
                "DATASOURCES_JWT_SECRET": SECRET,
            },
            instance_path=str(folder),
        )
    yield seed(application)
    database_of(application).close()


@pytest.fixture
def shared(shared_app):
    yield shared_app
    if shared_app.state() != shared_app.before:  # a failed case must not fail every case after
        restore(shared_app)


def restore(seeded):
    database = database_of(seeded.app)
    tables = ["data_sources", "datasources_tenant_counts"]
    with database.connection_context(), database.atomic():
        for table, table_rows in zip(tables, seeded.before, strict=True):
            database.execute_sql(f"DELETE FROM {table}")
            for row in table_rows:
                marks = ", ".join("?" * len(row))
                database.execute_sql(
                    f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", list(row.values())
                )


def bearer(credential):
    """The Authorization header that presents `credential` as a bearer token."""
    return {"Authorization": f"Bearer {credential}"}


def send(client, method, data, content_type="application/json", headers=None, **kwargs):
    """`data` as the body of an editor's request, exactly as given."""
    headers = {**auth(), **(headers or {})}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.open(API, method=method, data=data, headers=headers, **kwargs)


def exactly(size, key="new"):
    """A JSON body of exactly `size` bytes."""
    prefix = '{"key": "' + key + '", "name": "n", "description": "'
    return (prefix + "d" * (size - len(prefix) - 2) + '"}').encode()


# Raw HTTP, for what a test client cannot send.


@pytest.fixture
def server(make_app):
    """An app seeded with SEED, its body limit LIMIT bytes, behind a real
    threaded HTTP server on a free loopback port (`server.app` is the app)."""
    application = make_app(DATASOURCES_MAX_BODY_BYTES=LIMIT)
    client = application.test_client()
    assert client.post(API, json=SEED, headers=auth()).status_code == 201
    http = make_server("127.0.0.1", 0, application, threaded=True)
    # A short poll: shutdown() waits for the loop's next look, 0.5 s by default.
    thread = threading.Thread(target=http.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield http
    http.shutdown()
    thread.join(10)


def raw_request(port, head, body=b""):
    """Send bytes, close our side, and read the status code and what follows."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest


def chunked(data, size=500):
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def head(length=None, chunked_body=False, bearer=None):
    """The head of an editor's POST (bearer: its token, default `token()`)."""
    lines = [f"POST {API} HTTP/1.1", "Host: x", f"Authorization: Bearer {bearer or token()}",
             "Content-Type: application/json", "Connection: close"]  # fmt: skip
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked_body:
        lines.append("Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n\r\n"
