"""Hostile clients: every kind of bad input gets a clear 4xx problem and
changes nothing; forged credentials get nothing; tenants never see each
other; logs never hold a token. (Plainer cases live in test_api.py.)"""

import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import threading

import jwt
import pytest
from conftest import API, SECRET, auth, rows, token
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from itsdangerous import Signer
from werkzeug.serving import make_server

import app as service
import models

SEED = {"key": "crm", "name": "CRM", "sourceConfig": {"a": 1}}


def problem(response, status, field=None):
    assert response.status_code == status, response.data[:500]
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    if field is not None:
        assert field in body["errors"], body
        assert field in body["detail"]
    return body


def state():
    """Everything stored, both tables, straight from the database."""
    return rows(), rows("datasources_tenant_counts")


@pytest.fixture
def seeded(client):
    """t_001 has `crm`, t_002 has `theirs`; the stored state to compare against."""
    assert client.post(API, json=SEED, headers=auth()).status_code == 201
    theirs = {"key": "theirs", "name": "T"}
    assert client.post(API, json=theirs, headers=auth("t_002")).status_code == 201
    return state()


@pytest.fixture
def make_app(config, tmp_path, monkeypatch):
    monkeypatch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(tmp_path))
    yield lambda **settings: service.create_app({**config, **settings})
    if not models.db.is_closed():
        models.db.close()


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    """One seeded SQLite app for the requests refused before any query, where
    the backend cannot matter: far faster than an app per case."""
    folder = tmp_path_factory.mktemp("shared")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("DATASOURCES_")]:
            patch.delenv(name)
        patch.setattr("flask.Flask.auto_find_instance_path", lambda self: str(folder))
        application = service.create_app(
            {
                "TESTING": True,
                "DATASOURCES_DATABASE_URL": f"sqlite:///{folder / 'datasources.db'}",
                "DATASOURCES_JWT_SECRET": SECRET,
            }
        )
    client = application.test_client()
    assert client.post(API, json=SEED, headers=auth()).status_code == 201
    assert (
        client.post(API, json={"key": "theirs", "name": "T"}, headers=auth("t_002")).status_code
        == 201
    )
    seeded = state()
    models.db.close()
    return application, models.db.obj, seeded


@pytest.fixture
def shared(shared_app):
    """A client of the shared app and the state every test must leave behind."""
    application, database, seeded = shared_app
    models.bind_database(database)  # other tests' apps rebind the one proxy
    yield application.test_client(), seeded
    if state() != seeded:  # a failed case must not fail every case after it
        restore(seeded)
    models.db.close()


def restore(seeded):
    with models.db.atomic():
        for table, table_rows in zip(
            ["data_sources", "datasources_tenant_counts"], seeded, strict=True
        ):
            models.db.execute_sql(f"DELETE FROM {table}")
            for row in table_rows:
                marks = ", ".join("?" * len(row))
                models.db.execute_sql(
                    f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})", list(row.values())
                )


def send(client, method, data, content_type="application/json", headers=None, **kwargs):
    headers = {**auth(), **(headers or {})}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.open(API, method=method, data=data, headers=headers, **kwargs)


# Wrong JSON types on each field, for POST and PUT.

SAMPLES = {
    "null": None,
    "true": True,
    "false": False,
    "int": 0,
    "negative": -7,
    "float": 1.5,
    "string": "x",
    "list": [],
    "list-of-string": ["x"],
    "object": {},
    "object-of-string": {"a": "x"},
}
# The samples each field accepts; every other sample is a 400 naming the field.
ACCEPTS = {
    "key": {"string"},
    "name": {"string"},
    "description": {"string"},
    "connectorKey": {"string"},
    "sourceConfig": {"object", "object-of-string"},
    "fileFormat": {"string", "null"},
    "syncMode": set(),  # "x" is no sync mode
    "schedule": {"object", "object-of-string"},
    "schemaKey": {"string", "null"},
    "status": set(),
    "lastSyncAt": {"null"},  # "x" is no date-time
    "lastSyncStatus": {"string", "null"},
    "recordCount": {"int"},
    "rowVersion": {"int", "negative"},  # PUT only; a 409, not a 400
}


@pytest.mark.parametrize(
    "method, field",
    [("PUT", field) for field in ACCEPTS] + [("POST", f) for f in ACCEPTS if f != "rowVersion"],
)
def test_wrong_json_types_are_400_naming_the_field(shared, method, field):
    client, seeded = shared
    for kind, value in SAMPLES.items():
        if kind in ACCEPTS[field]:
            continue
        base = {"key": "new", "name": "n"} if method == "POST" else {"key": "crm"}
        response = client.open(API, method=method, json={**base, field: value}, headers=auth())
        body = problem(response, 400, field)
        assert list(body["errors"]) == [field], (kind, body)
        assert state() == seeded, kind


# Out-of-range numbers.


@pytest.mark.parametrize(
    "method, field, value",
    [
        ("POST", "recordCount", -1),
        ("POST", "recordCount", 2**63),
        ("POST", "recordCount", -(2**63) - 1),
        ("POST", "recordCount", 10**30),
        ("POST", "recordCount", 1e300),
        ("POST", "recordCount", 5e-324),
        ("POST", "recordCount", -0.0),
        ("PUT", "recordCount", 2**64),
        ("PUT", "rowVersion", 2**63),
        ("PUT", "rowVersion", -(2**63)),
        ("PUT", "rowVersion", 10**30),
        ("PUT", "rowVersion", 1e300),
        ("POST", "lastSyncAt", "9999-12-31T23:59:59-01:00"),
        ("POST", "lastSyncAt", "10000-01-01T00:00:00Z"),
        ("POST", "lastSyncAt", "2026-02-30T00:00:00Z"),
        ("POST", "lastSyncAt", "2026-03-16T24:00:01Z"),
        ("POST", "lastSyncAt", "2026-03-16T02:00:00+25:00"),
        ("PUT", "lastSyncAt", "2026-03-16T23:59:60Z"),
    ],
)
def test_out_of_range_numbers_are_400(shared, method, field, value):
    client, seeded = shared
    base = {"key": "new", "name": "n"} if method == "POST" else {"key": "crm"}
    response = client.open(API, method=method, json={**base, field: value}, headers=auth())
    problem(response, 400, field)
    assert state() == seeded


@pytest.mark.parametrize(
    "number",
    [2**64, -(2**63), 10**400, 1e308, -1e-300, 5e-324, 0.1, -0.0],
    ids=repr,
)
def test_extreme_numbers_inside_config_round_trip(client, number):
    body = {"key": "k", "name": "n", "sourceConfig": {"n": number, "list": [number]}}
    created = client.post(API, json=body, headers=auth())
    assert created.status_code == 201, created.data
    stored = client.get(API, headers=auth()).get_json()["data"][0]["sourceConfig"]
    # The same JSON number, though PostgreSQL's jsonb may write 1e308 without
    # an exponent (which Python then reads as an int).
    assert [type(number)(stored["n"]), type(number)(stored["list"][0])] == [number, number]
    assert set(stored) == {"n", "list"}


@pytest.mark.parametrize(
    "data",
    [
        '{"key": "k", "name": "n", "recordCount": ' + "9" * 5000 + "}",
        '{"key": "k", "name": "n", "sourceConfig": {"n": ' + "9" * 5000 + "}}",
        '{"key": "k", "name": "n", "sourceConfig": {"n": Infinity}}',
        '{"key": "k", "name": "n", "sourceConfig": {"n": -Infinity}}',
        '{"key": "k", "name": "n", "recordCount": 0x10}',
        '{"key": "k", "name": "n", "recordCount": 010}',
        '{"key": "k", "name": "n", "recordCount": +1}',
        '{"key": "k", "name": "n", "recordCount": .5}',
    ],
    ids=["huge-int", "huge-int-nested", "inf", "-inf", "hex", "octal", "plus", "bare-dot"],
)
def test_numbers_json_does_not_allow_are_400(shared, data):
    client, seeded = shared
    assert "not valid JSON" in problem(send(client, "POST", data), 400)["detail"]
    assert state() == seeded


# Control characters and invalid Unicode.

TEXT_FIELDS = ["key", "name", "description", "connectorKey", "fileFormat", "schemaKey"]
TEXT_FIELDS += ["lastSyncStatus"]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(
    "escaped",
    [r"\u0000", r"\u0007", r"\u001b", r"\ud800", r"\udfff", r"\ud800\u0041", r"\udc00\ud800"],
)
def test_control_characters_and_lone_surrogates_are_400_in_every_text_field(
    client, seeded, method, escaped
):
    for field in TEXT_FIELDS:
        if method == "PUT" and field == "key":
            continue
        base = {"key": "new", "name": "n"} if method == "POST" else {"key": "crm"}
        data = json.dumps({**base, field: "a@b"}).replace("@", escaped)
        body = problem(send(client, method, data), 400, field)
        assert body["errors"][field] == ["Contains a control character or invalid Unicode."]
        assert state() == seeded, field


@pytest.mark.parametrize("field", ["sourceConfig", "schedule"])
@pytest.mark.parametrize(
    "inner",
    [
        r'{"k": "\u0000"}',
        r'{"\u0000": 1}',
        r'{"k": ["ok", {"deep": "\ud800"}]}',
        r'{"\udfff": {"k": 1}}',
    ],
)
def test_unstorable_text_nested_in_objects_is_400(client, seeded, field, inner):
    data = f'{{"key": "new", "name": "n", "{field}": {inner}}}'
    problem(send(client, "POST", data), 400, field)
    problem(send(client, "PUT", f'{{"key": "crm", "{field}": {inner}}}'), 400, field)
    assert state() == seeded


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",  # never valid in UTF-8
        b"\xc3\x28",  # a lead byte without its continuation
        b"\x80",  # a lone continuation byte
        b"\xc0\xaf",  # overlong "/"
        b"\xc0\x80",  # overlong NUL ("modified UTF-8")
        b"\xe0\x80\xaf",  # three-byte overlong "/"
        b"\xf0\x80\x80\xaf",  # four-byte overlong "/"
        b"\xed\xa0\x80",  # an encoded surrogate (CESU-8)
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xf8\x88\x80\x80\x80",  # a five-byte sequence
        b"\xe2\x82",  # truncated
    ],
    ids=lambda raw: raw.hex(),
)
@pytest.mark.parametrize("where", ["value", "name", "nested-key"])
def test_invalid_utf8_bytes_are_400(shared, raw, where):
    client, seeded = shared
    if where == "value":
        data = b'{"key": "new", "name": "a' + raw + b'"}'
    elif where == "name":
        data = b'{"key": "new", "name": "n", "' + raw + b'": 1}'
    else:
        data = b'{"key": "new", "name": "n", "sourceConfig": {"' + raw + b'": 1}}'
    for method in ("POST", "PUT"):
        assert "not valid JSON" in problem(send(client, method, data), 400)["detail"]
    assert state() == seeded


@pytest.mark.parametrize(
    "data",
    [
        ('{"key": "new", "name": "n"}'.encode("utf-16")),
        ('{"key": "new", "name": "n"}'.encode("utf-32")),
        ('{"key": "new", "name": "n"}'.encode("utf-16-le")),
        ('{"key": "new", "name": "café"}'.encode("latin-1")),
        (b"\xef\xbb\xbf" + b'{"key": "new", "name": "n"}'),
    ],
    ids=["utf-16-bom", "utf-32-bom", "utf-16-le", "latin-1", "utf-8-bom"],
)
def test_bodies_not_in_utf8_are_400(shared, data):
    client, seeded = shared
    problem(send(client, "POST", data), 400)
    assert state() == seeded


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "ascii", "x-unknown"])
def test_a_charset_other_than_utf8_is_415(shared, charset):
    client, seeded = shared
    data = json.dumps({"key": "new", "name": "n"}).encode()
    response = send(client, "POST", data, f"application/json; charset={charset}")
    assert "utf-8" in problem(response, 415)["detail"]
    assert state() == seeded


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", '"utf-8"'])
def test_a_utf8_charset_is_accepted(client, charset):
    data = json.dumps({"key": "ключ", "name": "🚀"}, ensure_ascii=False).encode()
    response = send(client, "POST", data, f"application/json; charset={charset}")
    assert response.status_code == 201 and response.get_json()["key"] == "ключ"


def test_surrogate_pairs_and_unusual_but_valid_characters_are_kept(client):
    text = "\U0001f680 \u200b\u202e\ufeff\ufffd\uffff \x7f\x85\x9f \u2028\u2029"
    data = r'{"key": "k", "name": "\ud83d\ude80", "description": ' + json.dumps(text) + "}"
    body = send(client, "POST", data).get_json()
    assert body["name"] == "\U0001f680" and body["description"] == text
    listed = client.get(API, headers=auth()).get_json()["data"][0]
    assert listed["description"] == text


# Very long strings, deep and huge JSON, duplicate keys.


@pytest.mark.parametrize(
    "field, value, status",
    [
        ("key", "\U0001f680" * 255, 201),
        ("name", "é" * 255, 201),
        ("key", "\U0001f680" * 256, 400),
        ("name", "é" * 100_000, 400),
        ("description", "d" * 900_000, 201),
        ("connectorKey", "c" * 900_000, 201),
        ("sourceConfig", {"k" * 500_000: "v" * 400_000}, 201),
    ],
    ids=[
        "astral-key-255",
        "name-255",
        "astral-key-256",
        "name-100k",
        "description-900k",
        "connector-900k",
        "config-900k",
    ],  # fmt: skip
)
def test_long_strings(client, field, value, status):
    body = {"key": "k", "name": "n", field: value}
    response = client.post(API, json=body, headers=auth())
    if status == 400:
        problem(response, 400, field)
        assert rows() == []
    else:
        assert response.status_code == 201
        assert client.get(API, headers=auth()).get_json()["data"][0][field] == value


def test_a_very_long_unknown_field_name_is_400(shared):
    client, seeded = shared
    body = problem(
        client.post(API, json={"key": "k", "name": "n", "x" * 50_000: 1}, headers=auth()), 400
    )
    assert list(body["errors"]) == ["x" * 50_000]
    assert state() == seeded


def nested(depth, leaf=1):
    for _ in range(depth):
        leaf = {"n": leaf}
    return leaf


def nested_lists(depth, leaf=1):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def test_nesting_up_to_the_limit_is_kept(client):
    config = {"list": [nested(30)]}
    assert (
        client.post(
            API, json={"key": "k", "name": "n", "sourceConfig": config}, headers=auth()
        ).status_code
        == 201
    )
    assert client.get(API, headers=auth()).get_json()["data"][0]["sourceConfig"] == config


@pytest.mark.parametrize(
    "field, value",
    [
        ("sourceConfig", nested(33)),
        ("schedule", nested(500)),
        ("sourceConfig", {"a": nested_lists(35)}),
        ("description", nested(500)),
        ("name", nested_lists(10, "x")),
    ],
    ids=["config-33", "schedule-500", "lists-35", "description-500", "name-lists"],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_deep_nesting_is_400_naming_the_field(shared, field, value, method):
    client, seeded = shared
    base = {"key": "new", "name": "n"} if method == "POST" else {"key": "crm"}
    problem(
        client.open(API, method=method, json={**base, field: value}, headers=auth()), 400, field
    )
    assert state() == seeded


@pytest.mark.parametrize("depth", [5_000, 200_000])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
def test_nesting_that_would_exhaust_the_parser_is_a_4xx(shared, depth, opener, closer):
    client, seeded = shared
    data = (
        '{"key": "new", "name": "n", "sourceConfig": ' + opener * depth + "1" + closer * depth + "}"
    )
    too_large = len(data) > 1024 * 1024  # the default limit, met first by the widest
    problem(send(client, "POST", data), 413 if too_large else 400)
    assert state() == seeded


@pytest.mark.parametrize(
    "source_config",
    [
        {"items": list(range(100_000))},
        {f"k{i}": i for i in range(60_000)},
        {"items": [{}] * 200_000},
    ],
    ids=["100k-list", "60k-keys", "200k-objects"],
)
def test_huge_but_valid_json_under_the_limit_is_stored(client, source_config):
    response = client.post(
        API, json={"key": "k", "name": "n", "sourceConfig": source_config}, headers=auth()
    )
    assert response.status_code == 201, response.data[:300]
    listed = client.get(API, headers=auth()).get_json()["data"][0]
    assert listed["sourceConfig"] == source_config


def test_many_unknown_fields_are_one_400(shared):
    client, seeded = shared
    body = {"key": "new", "name": "n", **{f"f{i}": i for i in range(20_000)}}
    error = problem(client.post(API, json=body, headers=auth()), 400)
    assert len(error["errors"]) == 20_000
    assert state() == seeded


@pytest.mark.parametrize(
    "data",
    [
        '{"key": "new", "name": "n", "sourceConfig": {"a": 1, "a": 2}}',
        '{"key": "new", "name": "n", "schedule": {"cron": "x", "b": {"c": 1, "c": 1}}}',
        '{"key": "new", "name": "n", "sourceConfig": {"l": [{"x": 1, "x": 1}]}}',
        '{"key": "new", "name": "n", "name": "n"}',
        '{"key": "crm", "name": "a", "name": "b"}',
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_duplicate_keys_anywhere_are_400(shared, data, method):
    client, seeded = shared
    assert "duplicate key" in problem(send(client, method, data), 400)["detail"]
    assert state() == seeded


# Bodies over the size limit, chunked, or with a lying Content-Length.

LIMIT = 2048


@pytest.fixture
def small(make_app):
    """An app whose body limit is LIMIT bytes."""
    application = make_app(DATASOURCES_MAX_BODY_BYTES=LIMIT)
    client = application.test_client()
    assert client.post(API, json=SEED, headers=auth()).status_code == 201
    return client


def exactly(size, key="new"):
    """A JSON body of exactly `size` bytes."""
    prefix = '{"key": "' + key + '", "name": "n", "description": "'
    return (prefix + "d" * (size - len(prefix) - 2) + '"}').encode()


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_the_body_limit_is_exact(small, method):
    before = state()
    key = "new" if method == "POST" else "crm"
    at = send(small, method, exactly(LIMIT, key))
    assert at.status_code == (201 if method == "POST" else 200), at.data
    after = state()
    over = send(small, method, exactly(LIMIT + 1, key))
    assert "WWW-Authenticate" not in over.headers
    problem(over, 413)
    assert state() == after != before


@pytest.mark.parametrize("size, status", [(LIMIT, 201), (LIMIT + 1, 413), (50 * LIMIT, 413)])
def test_chunked_bodies_without_a_length_are_limited_too(small, size, status):
    before = state()
    data = exactly(size)
    response = small.post(
        API,
        input_stream=__import__("io").BytesIO(data),
        headers={**auth(), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == status, response.data
    if status == 413:
        problem(response, 413)
        assert state() == before


@pytest.mark.parametrize(
    "declared, status",
    [(10, 400), (LIMIT + 1, 413), ("abc", 400), ("-1", 400), ("1e3", 400), ("", 400)],
)
def test_a_lying_content_length_is_a_4xx(small, declared, status):
    before = state()
    data = exactly(100)
    response = small.post(
        API,
        data=data,
        headers={**auth(), "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": str(declared)},
    )
    problem(response, status)
    assert state() == before


@pytest.fixture
def server(make_app):
    """The app behind a real HTTP server on a free loopback port."""
    application = make_app(DATASOURCES_MAX_BODY_BYTES=LIMIT)
    client = application.test_client()
    assert client.post(API, json=SEED, headers=auth()).status_code == 201
    models.db.close()  # the server's threads open their own connections
    http = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield http
    http.shutdown()
    thread.join(10)


def raw_request(server, head, body=b""):
    """Send bytes, close our side, and read the status line and body."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
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


def head(length=None, chunked_body=False):
    lines = [f"POST {API} HTTP/1.1", "Host: x", f"Authorization: Bearer {token()}",
             "Content-Type: application/json", "Connection: close"]  # fmt: skip
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked_body:
        lines.append("Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize(
    "size, status", [(LIMIT, 201), (LIMIT + 1, 413), (200 * LIMIT, 413)], ids=str
)
def test_chunked_over_a_real_socket(server, size, status):
    code, rest = raw_request(server, head(chunked_body=True), chunked(exactly(size)))
    assert code == status, rest
    assert len(rows()) == (2 if status == 201 else 1)


@pytest.mark.parametrize(
    "declared, sent, status",
    [(50, 100, 400), (500, 100, 400), (LIMIT + 1, 100, 413), (10**12, 100, 413)],
    ids=["shorter", "longer-then-eof", "over-limit", "huge"],
)
def test_lying_content_length_over_a_real_socket(server, declared, sent, status):
    code, rest = raw_request(server, head(length=declared), exactly(sent))
    assert code == status, rest
    assert b"application/problem+json" in rest
    assert len(rows()) == 1


# Content types.


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "text/json",
        "application/xml",
        "application/jsonx",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "json",
        "application/",
        "*/*",
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_wrong_or_missing_content_type_is_415(shared, content_type, method):
    client, seeded = shared
    data = json.dumps({"key": "crm" if method == "PUT" else "new", "name": "n"})
    problem(send(client, method, data, content_type), 415)
    assert state() == seeded


def test_media_type_names_are_case_insensitive(client):
    data = json.dumps({"key": "new", "name": "n"})
    assert send(client, "POST", data, "Application/JSON").status_code == 201


# Cursors.


def signed_cursor(position, tenant="t_001", secret=SECRET, salt=None, digest=hashlib.sha256):
    salt = salt or f"datasources-cursor:{tenant}"
    return Signer(secret, salt=salt, digest_method=digest).sign(position).decode()


JAN_1 = "1767225600000000"  # 2026-01-01T00:00:00 in µs since 1970
FORGED = {
    "garbage": "garbage",
    "dot": ".",
    "unsigned": f"{JAN_1}.ds_x",
    "unsigned-prefix": f"{JAN_1}.ds_x.",
    "other-secret": signed_cursor(f"{JAN_1}.ds_x", secret="x" * 40),
    "other-salt": signed_cursor(f"{JAN_1}.ds_x", salt="other"),
    "other-digest": signed_cursor(f"{JAN_1}.ds_x", digest=hashlib.sha1),
    "other-tenant": signed_cursor(f"{JAN_1}.ds_x", tenant="t_002"),
    "tenant-prefix": signed_cursor(f"{JAN_1}.ds_x", tenant="t_00"),
    "too-long": "a" * 5000,
    "non-ascii": "ÿÿÿ.ÿÿÿ",
    "nul": "abc\x00def",
    "no-id": signed_cursor(JAN_1),
    "empty-id": signed_cursor(f"{JAN_1}."),
    "no-time": signed_cursor(".ds_x"),
    "time-garbage": signed_cursor("yesterday.ds_x"),
    "time-iso": signed_cursor("2026-01-01T00:00:00.ds_x"),
    "time-plus": signed_cursor(f"+{JAN_1}.ds_x"),
    "time-space": signed_cursor(f" {JAN_1}.ds_x"),
    "time-arabic-digits": signed_cursor("١٧٦٧٢٢٥٦٠٠.ds_x"),
    "time-out-of-range": signed_cursor("99999999999999999999.ds_x"),
    "time-too-long": signed_cursor("1" * 30 + ".ds_x"),
    "id-too-long": signed_cursor(f"{JAN_1}.ds_" + "x" * 100),
    "id-nul": signed_cursor(f"{JAN_1}.ds_\x00"),
    "id-newline": signed_cursor(f"{JAN_1}.ds_\n"),
}


@pytest.mark.parametrize("cursor", list(FORGED.values()), ids=list(FORGED))
def test_bad_or_forged_cursors_are_400(client, seeded, cursor):
    response = client.get(API, query_string={"cursor": cursor}, headers=auth())
    assert list(problem(response, 400, "cursor")["errors"]) == ["cursor"]
    assert state() == seeded


def test_a_well_formed_cursor_signed_with_the_secret_pages(client, seeded):
    cursor = signed_cursor("946684800000000.a")  # 2000-01-01, before every source
    response = client.get(API, query_string={"cursor": cursor}, headers=auth())
    assert [s["key"] for s in response.get_json()["data"]] == ["crm"]


@pytest.mark.parametrize(
    "tenant",
    [
        "t" * 255,
        "".join(map(chr, range(0x4E00, 0x4E00 + 255))),
        "".join(map(chr, range(0x1F300, 0x1F3FF))),
    ],
    ids=["ascii-255", "cjk-255", "astral-255"],
)
def test_every_valid_tenant_can_page(client, tenant):
    for key in "abc":
        client.post(API, json={"key": key, "name": key}, headers=auth(tenant))
    seen, cursor = [], None
    while True:
        query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get(API, query_string=query, headers=auth(tenant, "viewer"))
        assert page.status_code == 200, page.data
        seen += [s["key"] for s in page.get_json()["data"]]
        cursor = page.get_json()["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert seen == ["a", "b", "c"]


# Query values.


@pytest.mark.parametrize(
    "query, field",
    [
        ("?limit=", "limit"),
        ("?limit=%20", "limit"),
        ("?limit=%205", "limit"),
        ("?limit=5%20", "limit"),
        ("?limit=%2B5", "limit"),
        ("?limit=1_0", "limit"),
        ("?limit=%D9%A5", "limit"),  # ARABIC-INDIC DIGIT FIVE
        ("?limit=%EF%BC%95", "limit"),  # FULLWIDTH DIGIT FIVE
        ("?limit=0x10", "limit"),
        ("?limit=1e1", "limit"),
        ("?limit=5.0", "limit"),
        ("?limit=-0", "limit"),
        ("?limit=NaN", "limit"),
        ("?limit=%00", "limit"),
        ("?limit=%FF", "limit"),
        ("?limit=" + "9" * 5000, "limit"),
        ("?limit=99999999999999999999999", "limit"),
        ("?limit=5&limit=6", "limit"),
        ("?limit=5&limit=5", "limit"),
        ("?cursor=a&cursor=b", "cursor"),
        ("?cursor=%00", "cursor"),
    ],
)
def test_bad_list_query_values_are_400(shared, query, field):
    client, seeded = shared
    problem(client.get(API + query, headers=auth()), 400, field)
    assert state() == seeded


@pytest.mark.parametrize(
    "query, limit", [("?limit=%35", 5), ("?limit=007", 7), ("?x=1&y", 25), ("?x=1&x=2", 25)]
)
def test_plain_query_encodings_work(client, seeded, query, limit):
    response = client.get(API + query, headers=auth())
    assert response.status_code == 200 and response.get_json()["pagination"]["limit"] == limit


@pytest.mark.parametrize(
    "query, status",
    [
        ("?key=crm&key=theirs", 400),
        ("?key=theirs&key=crm", 400),
        ("?key=%00", 400),
        ("?key=crm%00", 400),
        ("?key=" + "k" * 256, 400),
        ("?key=%FF", 404),
        ("?key=%ED%A0%80", 404),
        ("?key=crm%0D%0ASet-Cookie:%20a=b", 404),
        ("?key=CRM", 404),
        ("?key=crm%20", 404),
        ("?KEY=crm", 400),
        ("?key[]=crm", 400),
    ],
)
def test_bad_delete_query_values(client, seeded, query, status):
    response = client.delete(API + query, headers=auth())
    body = problem(response, status, "key" if status == 400 else None)
    assert "Set-Cookie" not in response.headers
    assert "\n" not in body["detail"]
    assert state() == seeded


# Header injection.


def test_crlf_in_values_never_reaches_a_response_header(client, seeded):
    evil = "crm\r\nSet-Cookie: session=evil\r\nX-Injected: 1"
    created = client.post(API, json={"key": evil, "name": evil}, headers=auth())
    assert created.status_code == 201 and created.get_json()["key"] == evil
    responses = [
        client.post(API, json={"key": evil, "name": "n"}, headers=auth()),
        client.put(API, json={"key": evil + "x", "name": "n"}, headers=auth()),
        client.delete(API, query_string={"key": evil + "x"}, headers=auth()),
        client.get(API, headers=auth()),
        client.get(API, headers=auth(), environ_overrides={"HTTP_X_REQUEST_ID": evil}),
    ]
    assert [r.status_code for r in responses] == [409, 404, 404, 200, 200]
    for response in responses:
        assert "Set-Cookie" not in response.headers and "X-Injected" not in response.headers
        for name, value in response.headers:
            assert "\r" not in value and "\n" not in value, name


@pytest.mark.parametrize(
    "tenant",
    ["t_001\r\nX-Role: admin", "t_001\n", "t_001\x00", " t_001", "t_001 ", "\t", "x" * 256],
)
def test_headers_mode_refuses_odd_tenant_values(make_app, tenant):
    client = make_app(DATASOURCES_AUTH="headers").test_client()
    environ = {"HTTP_X_TENANT_ID": tenant, "HTTP_X_ROLE": "editor"}
    response = client.post(API, json={"key": "k", "name": "n"}, environ_overrides=environ)
    problem(response, 401)
    assert rows() == []


# JWT attacks.


SECRET_BYTES = SECRET.encode()


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header, claims, key=SECRET_BYTES, digest=hashlib.sha256):
    """A JWS signed with HMAC over whatever header and payload bytes we like."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


GOOD = {"tenant_id": "t_001", "role": "admin"}
HS = {"alg": "HS256", "typ": "JWT"}
VALID = token(role="admin")
ATTACKS = {
    "alg-none": f"{b64({'alg': 'none'})}.{b64(GOOD)}.",
    "alg-None": f"{b64({'alg': 'None'})}.{b64(GOOD)}.",
    "alg-none-no-dot": f"{b64({'alg': 'none'})}.{b64(GOOD)}",
    "alg-none-with-signature": f"{b64({'alg': 'none'})}.{b64(GOOD)}.{VALID.split('.')[2]}",
    "alg-missing": handmade({"typ": "JWT"}, GOOD),
    "alg-list": handmade({"alg": ["HS256"]}, GOOD),
    "alg-HS512": handmade({"alg": "HS512"}, GOOD, digest=hashlib.sha512),
    "alg-RS256-on-hmac": handmade({"alg": "RS256"}, GOOD),
    "signature-stripped": VALID.rsplit(".", 1)[0] + ".",
    "payload-tampered": ".".join(
        [VALID.split(".")[0], b64({"tenant_id": "t_002", "role": "admin"}), VALID.split(".")[2]]
    ),
    "signature-of-another-token": ".".join(VALID.split(".")[:2] + [token().split(".")[2]]),
    "expired": token(role="admin", exp=1),
    "expired-string-exp": handmade(HS, {**GOOD, "exp": "never"}),
    "exp-infinity": handmade(HS, b'{"tenant_id":"t_001","role":"admin","exp":Infinity}'),
    "exp-nan": handmade(HS, b'{"tenant_id":"t_001","role":"admin","exp":NaN}'),
    "nbf-future": token(role="admin", nbf=4102444800),
    "nbf-infinity": handmade(HS, b'{"tenant_id":"t_001","role":"admin","nbf":Infinity}'),
    "iat-future": token(role="admin", iat=4102444800),
    "iat-string": handmade(HS, {**GOOD, "iat": "now"}),
    "payload-list": handmade(HS, [GOOD]),
    "payload-string": handmade(HS, "t_001"),
    "payload-deep": handmade(HS, b"[" * 50_000 + b"]" * 50_000),
    "payload-not-json": handmade(HS, b"{tenant_id: t_001}"),
    "payload-not-utf8": handmade(HS, b'{"tenant_id":"\xff","role":"admin"}'),
    "header-deep": handmade(b'{"alg":"HS256","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}", GOOD),
    "header-list": handmade(["HS256"], GOOD),
    "header-kid-number": handmade({**HS, "kid": 5}, GOOD),
    "header-b64-false": handmade({**HS, "b64": False, "crit": ["b64"]}, GOOD),
    "two-segments": "eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnRfaWQiOiJ0In0",
    "four-segments": VALID + ".x",
    "dots": "....",
    "bad-base64": "e!J.e!J.e!J",
    "non-ascii": "tökén.tökén.tökén",
    "spaces-inside": VALID[:20] + " " + VALID[20:],
    "huge": "a" * 200_000 + "." + "b" * 200_000 + ".c",
}


@pytest.mark.parametrize("bad", list(ATTACKS.values()), ids=list(ATTACKS))
def test_forged_or_broken_tokens_are_401(shared, bad):
    client, seeded = shared
    headers = {"Authorization": f"Bearer {bad}"}
    for response in (
        client.get(API, headers=headers),
        client.post(API, json={"key": "new", "name": "n"}, headers=headers),
        client.delete(API, query_string={"key": "crm"}, headers=headers),
    ):
        body = problem(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert bad[:40] not in json.dumps(body)
    assert state() == seeded


BAD_CLAIMS = [
    ({"role": "admin"}, 401),
    ({"tenant_id": "t_001"}, 401),
    ({"tenant_id": None, "role": "admin"}, 401),
    ({"tenant_id": 1, "role": "admin"}, 401),
    ({"tenant_id": 1.5, "role": "admin"}, 401),
    ({"tenant_id": True, "role": "admin"}, 401),
    ({"tenant_id": ["t_001"], "role": "admin"}, 401),
    ({"tenant_id": {"id": "t_001"}, "role": "admin"}, 401),
    ({"tenant_id": "", "role": "admin"}, 401),
    ({"tenant_id": " ", "role": "admin"}, 401),
    ({"tenant_id": " t_001", "role": "admin"}, 401),
    ({"tenant_id": "t_001\n", "role": "admin"}, 401),
    ({"tenant_id": "t_001\x00", "role": "admin"}, 401),
    ({"tenant_id": "\ud800", "role": "admin"}, 401),
    ({"tenant_id": "t" * 256, "role": "admin"}, 401),
    ({"tenant_id": "t_001", "role": None}, 401),
    ({"tenant_id": "t_001", "role": ""}, 401),
    ({"tenant_id": "t_001", "role": 3}, 401),
    ({"tenant_id": "t_001", "role": True}, 401),
    ({"tenant_id": "t_001", "role": ["admin"]}, 401),
    ({"tenant_id": "t_001", "role": ["viewer", "editor"]}, 401),
    ({"tenant_id": "t_001", "role": {"name": "admin"}}, 401),
    ({"tenant_id": "t_001", "role": "superuser"}, 403),
    ({"tenant_id": "t_001", "role": "Admin"}, 403),
    ({"tenant_id": "t_001", "role": "editor "}, 403),
    ({"tenant_id": "t_001", "role": "owner"}, 403),
]


@pytest.mark.parametrize("claims, status", BAD_CLAIMS, ids=[repr(c) for c, _ in BAD_CLAIMS])
def test_missing_or_odd_claims(shared, claims, status):
    client, seeded = shared
    signed = handmade(HS, json.dumps(claims).encode())
    headers = {"Authorization": f"Bearer {signed}"}
    for response in (
        client.get(API, headers=headers),
        client.post(API, json={"key": "new", "name": "n"}, headers=headers),
    ):
        problem(response, status)
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert state() == seeded


@pytest.mark.parametrize(
    "exp, status",
    [("4102444800", 401), (4102444800.5, 200), (10**400, 200), (None, 200), (True, 401)],
    ids=["string", "float", "huge", "absent", "bool"],
)
def test_a_signed_token_answers_the_same_every_time(shared, exp, status):
    # Verified tokens are remembered until their exp: the second use must not differ.
    client, seeded = shared
    claims = dict(GOOD, tenant_id="t_exp") if exp is None else dict(GOOD, exp=exp)
    headers = {"Authorization": f"Bearer {handmade(HS, claims)}"}
    assert [client.get(API, headers=headers).status_code for _ in range(3)] == [status] * 3
    assert state() == seeded


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Token {VALID}"},
        {"Authorization": f"JWT {VALID}"},
        {"Authorization": f"Basic {VALID}"},
        {"Authorization": f"Bearer: {VALID}"},
        {"Authorization": f"Bearer\t{VALID}"},
        {"Authorization": f"Bearer {VALID} {VALID}"},
        {"Authorization": VALID},
        {"X-Authorization": f"Bearer {VALID}"},
        {"Authentication": f"Bearer {VALID}"},
        {"Cookie": f"token={VALID}; access_token={VALID}"},
        {"X-Access-Token": VALID},
    ],
    ids=lambda headers: " ".join(headers),
)
def test_tokens_in_the_wrong_place_or_scheme_are_401(shared, headers):
    client, seeded = shared
    problem(client.post(API, json={"key": "new", "name": "n"}, headers=headers), 401)
    assert state() == seeded


def test_tokens_in_the_query_string_are_ignored(shared):
    client, seeded = shared
    for name in ("access_token", "token", "jwt", "Authorization"):
        response = client.get(API, query_string={name: VALID})
        problem(response, 401)


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_hs256_signed_with_the_public_key_is_refused(make_app, rsa_key):
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client = make_app(DATASOURCES_JWT_PUBLIC_KEY=public_pem.decode()).test_client()
    good = jwt.encode(GOOD, rsa_key, algorithm="RS256")
    assert client.get(API, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for key in (public_pem, public_pem.strip(), public_pem.decode().replace("\n", "\r\n").encode()):
        forged = handmade(HS, GOOD, key=key)
        response = client.post(
            API, json={"key": "k", "name": "n"}, headers={"Authorization": f"Bearer {forged}"}
        )
        problem(response, 401)
    unsigned = f"{b64({'alg': 'none'})}.{b64(GOOD)}."
    problem(client.get(API, headers={"Authorization": f"Bearer {unsigned}"}), 401)
    assert rows() == []


# Trusted headers mean nothing unless configured.


def test_x_tenant_id_means_nothing_in_jwt_mode(client, seeded):
    forged = {"X-Tenant-Id": "t_002", "X-Role": "admin", "X-User-Role": "admin"}
    problem(client.get(API, headers=forged), 401)
    problem(client.post(API, json={"key": "new", "name": "n"}, headers=forged), 401)
    headers = {**auth("t_001", "viewer"), **forged}
    listed = client.get(API, headers=headers).get_json()
    assert [s["key"] for s in listed["data"]] == ["crm"]
    problem(client.delete(API, query_string={"key": "theirs"}, headers=headers), 403)
    headers = {**auth("t_001", "editor"), **forged}
    problem(client.delete(API, query_string={"key": "theirs"}, headers=headers), 404)
    assert state() == seeded


# Tenant isolation: another tenant's key is a 404, exactly like a missing one.

OPERATIONS = {
    "put": lambda c, key, h: c.put(API, json={"key": key, "name": "stolen"}, headers=h),
    "put-row-version": lambda c, key, h: c.put(API, json={"key": key, "rowVersion": 1}, headers=h),
    "put-stale-version": lambda c, key, h: c.put(
        API, json={"key": key, "rowVersion": 9}, headers=h
    ),
    "delete": lambda c, key, h: c.delete(API, query_string={"key": key}, headers=h),
}


@pytest.mark.parametrize("role", ["editor", "admin"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_another_tenants_key_is_a_404_like_a_missing_one(client, seeded, operation, role):
    headers = auth("t_002", role)
    foreign = OPERATIONS[operation](client, "crm", headers)
    missing = OPERATIONS[operation](client, "nope", headers)
    body, other = problem(foreign, 404), problem(missing, 404)
    assert body == {**other, "detail": other["detail"].replace("nope", "crm")}
    assert "current" not in body and "t_001" not in json.dumps(body)
    assert state() == seeded


def test_another_tenants_key_is_free_to_create_and_list_shows_only_your_own(client, seeded):
    created = client.post(API, json={"key": "crm", "name": "mine"}, headers=auth("t_002"))
    assert created.status_code == 201 and created.get_json()["tenantId"] == "t_002"
    listed = client.get(API, headers=auth("t_002", "admin")).get_json()
    assert sorted(s["key"] for s in listed["data"]) == ["crm", "theirs"]
    assert listed["pagination"]["total"] == 2
    mine = client.get(API, headers=auth("t_001", "viewer")).get_json()
    assert [s["name"] for s in mine["data"]] == ["CRM"] and mine["pagination"]["total"] == 1


def test_tenant_id_in_the_body_or_query_is_ignored(client, seeded):
    created = client.post(
        API, json={"key": "new", "name": "n", "tenantId": "t_002"}, headers=auth()
    )
    assert created.get_json()["tenantId"] == "t_001"
    updated = client.put(
        API, json={"key": "theirs", "tenantId": "t_002", "name": "x"}, headers=auth()
    )
    problem(updated, 404)
    listed = client.get(API + "?tenantId=t_002&tenant_id=t_002", headers=auth()).get_json()
    assert sorted(s["key"] for s in listed["data"]) == ["crm", "new"]


# Logs never hold a token or an Authorization header.


@pytest.fixture
def every_logger_at_debug(caplog):
    names = ["", "werkzeug", "peewee", "datasources", "flask.app", "jwt", "urllib3"]
    names += list(logging.root.manager.loggerDict)
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_logs_never_hold_a_token(client, app, every_logger_at_debug, monkeypatch):
    caplog = every_logger_at_debug
    editor, viewer = token(), token(role="viewer")
    wrong = token(secret="another-secret-" + "z" * 32)
    client.post(API, json=SEED, headers={"Authorization": f"Bearer {editor}"})
    client.post(API, json=SEED, headers={"Authorization": f"Bearer {editor}"})
    client.post(API, json={"key": 1}, headers={"Authorization": f"Bearer {editor}"})
    client.post(API, json=SEED, headers={"Authorization": f"Bearer {viewer}"})
    client.get(API, headers={"Authorization": f"Bearer {wrong}"})
    client.get(API + "?limit=x", headers={"Authorization": f"Bearer {viewer}"})
    client.put(
        API, json={"key": "crm", "rowVersion": 9}, headers={"Authorization": f"Bearer {editor}"}
    )
    client.delete(API, query_string={"key": "nope"}, headers={"Authorization": f"Bearer {editor}"})

    def explode(*args, **kwargs):
        from flask import request

        raise RuntimeError(f"boom with {dict(request.headers)}")

    monkeypatch.setattr(models.DataSource, "page", explode)
    failed = client.get(API, headers={"Authorization": f"Bearer {viewer}"})
    assert failed.status_code == 500 and editor not in failed.get_data(as_text=True)
    assert viewer not in failed.get_data(as_text=True)
    assert caplog.records, "the requests logged nothing at all: is capture working?"
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in (editor, viewer, wrong, SECRET, editor.split(".")[2], viewer.split(".")[2]):
        assert secret not in text
    assert "Bearer" not in text and "authorization" not in text.lower()


def test_logs_of_a_real_server_never_hold_a_token(server, every_logger_at_debug):
    caplog = every_logger_at_debug
    minted = token()
    for body, length in ((exactly(100), 100), (b'{"key": 1}', 10), (b"{", 1)):
        head_lines = head(length=length).replace(token(), minted)
        raw_request(server, head_lines, body)
    raw_request(server, head(length=1).replace(token(), "x." + minted), b"{")
    assert "werkzeug" in {r.name for r in caplog.records}
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert minted not in text and minted.split(".")[2] not in text
    assert "Bearer" not in text


def test_gunicorn_limits_every_framing_and_logs_no_token(tmp_path):
    """The same body rules under the server that ships, with its own logs."""
    from servers import Gunicorn

    env = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'ds.db'}",
        "DATASOURCES_JWT_SECRET": SECRET,
        "DATASOURCES_MAX_BODY_BYTES": str(LIMIT),
        "DATASOURCES_METRICS": "false",
    }
    minted = token()
    with Gunicorn(env, workers=1) as running:
        server = type("Server", (), {"server_port": running.port})
        cases = [
            (head(chunked_body=True), chunked(exactly(LIMIT)), 201),
            (head(chunked_body=True), chunked(exactly(LIMIT + 1, "b")), 413),
            (head(chunked_body=True), chunked(exactly(100 * LIMIT, "c")), 413),
            (head(length=LIMIT + 1), exactly(100, "d"), 413),
            (head(length=50), exactly(100, "e"), 400),
            (head(length=500), exactly(100, "f"), 400),
            (head(length=100).replace(token(), "x" + minted), exactly(100, "g"), 401),
        ]
        codes = [raw_request(server, lines, body)[0] for lines, body, _ in cases]
        log = running.log()
    assert codes == [case[2] for case in cases]
    assert minted not in log and minted.split(".")[2] not in log and "Bearer" not in log
    assert "POST /api/v1/data-sources" in log  # the request log was on
