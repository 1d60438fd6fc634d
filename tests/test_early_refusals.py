"""Refusals sent before the body is read (413, 415, 401, 403, 404, 405)
reach a client that is still sending it: through the gunicorn that ships
(gunicorn_conf.py reads and discards what the application left unread), from
raw sockets that send their whole body before they read, at once or slowly,
with and without Content-Length, while other clients load the server; on
SQLite and PostgreSQL. The answer is whole, and the connection still serves
the next request, so the body was consumed exactly to its end.
"""

import collections
import json
import socket
import threading
import time
import uuid

import pytest
import requests
from conftest import API, SECRET, token
from servers import Gunicorn, read_response
from werkzeug.http import HTTP_STATUS_CODES

MiB = 1024 * 1024
TENANT = "t_refusals"
REFUSALS = {  # the request line, its media type and its role: the answer
    "413": (f"POST {API}", "application/json", "editor", 413),
    "415": (f"POST {API}", "text/plain", "editor", 415),
    "401": (f"POST {API}", "application/json", None, 401),
    "403": (f"PUT {API}", "application/json", "viewer", 403),
    "404": (f"POST {API}/", "application/json", "editor", 404),  # no source has the empty key
    "405": (f"PATCH {API}", "application/json", "editor", 405),
}
SENDERS = {  # framing, and the pieces the body is sent in (a pause after each)
    "at-once": ("length", 1),
    "chunked": ("chunked", 1),
    "slowly": ("length", 16),
    "slowly-chunked": ("chunked", 16),
}
CASES = [(refusal, sender, 2 * MiB) for refusal in REFUSALS for sender in SENDERS]
CASES += [("413", "at-once", 20 * MiB), ("413", "chunked", 20 * MiB)]
PAUSE = 0.03  # seconds between a slow sender's pieces


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request, tmp_path_factory):
    """One gunicorn per backend, on a database of this module's."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('refusals') / 'datasources.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    env = {
        "DATASOURCES_DATABASE_URL": url,
        "DATASOURCES_JWT_SECRET": SECRET,
        "DATASOURCES_AUTO_MIGRATE": "true",
    }
    with Gunicorn(env, workers=2) as running:
        running.first_workers = running.workers()
        yield running
        log = running.log()
    assert "Traceback" not in log and "Exception in post_request" not in log, log[-3000:]


class Load:
    """Clients creating and listing sources on the server until the block
    ends; every answer they got must be the expected one."""

    def __init__(self, url, clients=2):
        self.url, self.stop, self.started = url + API, threading.Event(), threading.Event()
        self.answers, self.failures = collections.Counter(), []
        self.threads = [threading.Thread(target=self.client, args=(n,)) for n in range(clients)]

    def client(self, number):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token(TENANT)}"
        while not self.stop.is_set():
            key = f"load-{uuid.uuid4().hex}"
            try:
                created = session.post(self.url, json={"key": key, "name": key}, timeout=30)
                listed = session.get(self.url, params={"limit": 5}, timeout=30)
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
                return
            self.answers[created.status_code, listed.status_code] += 1
            self.started.set()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        assert self.started.wait(30), "the load never got an answer"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def check(self):
        assert self.failures == []
        assert set(self.answers) == {(201, 200)} and self.answers.total() > 0


def request_head(refusal, framing, size, close=False):
    line, media_type, role, _ = REFUSALS[refusal]
    lines = [f"{line} HTTP/1.1", "Host: x", f"Content-Type: {media_type}"]
    if role is not None:
        lines.append(f"Authorization: Bearer {token(TENANT, role)}")
    lines.append(
        "Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {size}"
    )
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def body_pieces(framing, size, pieces):
    """A JSON-looking body of `size` bytes, framed, in `pieces` parts."""
    start, end = b'{"key": "big", "name": "', b'"}'
    body = start + b"n" * (size - len(start) - len(end)) + end
    step = -(-size // pieces)
    parts = [body[i : i + step] for i in range(0, size, step)]
    if framing == "chunked":  # in chunks of 64 KiB within each part
        parts = [b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks(p, 65536)) for p in parts]
        parts[-1] += b"0\r\n\r\n"
    return parts


def chunks(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def assert_problem(status, headers, body, expected):
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["type"] == "about:blank" and problem["status"] == expected
    assert problem["title"] == HTTP_STATUS_CODES[expected] and problem["detail"]


def assert_healthy(server):
    """Every worker of the start still serving, none replaced."""
    assert server.workers() == server.first_workers
    assert requests.get(server.url + "/healthz", timeout=30).json() == {"status": "ok"}


@pytest.mark.parametrize("refusal, sender, size", CASES)
def test_a_refusal_reaches_a_client_still_sending(server, refusal, sender, size):
    framing, pieces = SENDERS[sender]
    with Load(server.url) as load, connect(server) as sock:
        sock.sendall(request_head(refusal, framing, size))
        for part in body_pieces(framing, size, pieces):
            sock.sendall(part)  # the server reads it all: no reset while we send
            if pieces > 1:
                time.sleep(PAUSE)
        status, headers, body = read_response(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        following = read_response(sock)
    assert_problem(status, headers, body, REFUSALS[refusal][3])
    assert headers["connection"] == "keep-alive"
    assert following[0] == 200 and json.loads(following[2]) == {"status": "ok"}
    load.check()
    assert_healthy(server)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_client_that_closes_reads_the_answer_then_a_clean_end(server, framing):
    """With `Connection: close` the server drains, answers and ends the
    connection with a FIN: no reset destroys the answer or the end."""
    with Load(server.url) as load, connect(server) as sock:
        sock.sendall(request_head("413", framing, 20 * MiB, close=True))
        for part in body_pieces(framing, 20 * MiB, 1):
            sock.sendall(part)
        status, headers, body = read_response(sock)
        end = sock.recv(1)  # a reset would raise ConnectionResetError
    assert_problem(status, headers, body, 413)
    assert headers["connection"] == "close" and end == b""
    load.check()
    assert_healthy(server)


def test_a_body_too_large_to_drain_is_answered_with_connection_close(server):
    """Past the drain's bound (a declared gigabyte), the server reads nothing
    more of the body: the answer says `Connection: close`, and a client that
    listens while it sends reads it whole and then the end."""
    with Load(server.url) as load, connect(server) as sock:
        sock.sendall(request_head("413", "length", 1024 * MiB))
        sock.sendall(b"x" * 16384)
        status, headers, body = read_response(sock)
        end = sock.recv(1)
    assert_problem(status, headers, body, 413)
    assert headers["connection"] == "close" and end == b""
    load.check()
    assert_healthy(server)


def test_a_client_gone_mid_body_leaves_the_server_serving(server):
    """The drain meets the end of the connection, not of the body: it stops
    there (the module's server log holds no traceback)."""
    with Load(server.url) as load:
        with connect(server) as sock:
            sock.sendall(request_head("401", "length", 2 * MiB))
            sock.sendall(body_pieces("length", 2 * MiB, 4)[0])
        with connect(server) as sock:  # and the same while it is being drained
            sock.sendall(request_head("413", "chunked", 2 * MiB))
            sock.sendall(b"".join(body_pieces("chunked", 2 * MiB, 4)[:3]))  # past the limit
            assert read_response(sock)[0] == 413
    load.check()
    assert_healthy(server)


def test_a_broken_chunk_after_the_answer_ends_the_connection(server):
    """Where a body with a malformed chunk ends is unknown: the drain stops
    at it, and the connection is closed, not served again."""
    with Load(server.url) as load, connect(server) as sock:
        sock.sendall(request_head("415", "chunked", 2 * MiB))
        sock.sendall(body_pieces("chunked", 2 * MiB, 1)[0].removesuffix(b"0\r\n\r\n"))
        sock.sendall(b"zz\r\n")
        status, headers, body = read_response(sock)
        end = sock.recv(1)
    assert_problem(status, headers, body, 415)
    assert end == b""
    load.check()
    assert_healthy(server)
