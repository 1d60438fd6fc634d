"""Hostile request bodies: anything but strict JSON in UTF-8, declared as
application/json, within the size limit however it is framed, is a clear
4xx problem and changes nothing; under the test client, a real HTTP server
and the gunicorn that ships. (Plainer cases live in test_api.py.)"""

import io
import json

import hostile
import pytest
from conftest import API, SECRET, auth, problem, rows, token
from hostile import LIMIT, chunked, exactly, head, raw_request, send

shared, shared_app, server = hostile.shared, hostile.shared_app, hostile.server  # fixtures

# Bodies that are not strict JSON in UTF-8.

INVALID_UTF8 = {
    "ff": b"\xff",  # never valid in UTF-8
    "c328": b"\xc3\x28",  # a lead byte without its continuation
    "80": b"\x80",  # a lone continuation byte
    "c0af": b"\xc0\xaf",  # overlong "/"
    "c080": b"\xc0\x80",  # overlong NUL ("modified UTF-8")
    "e080af": b"\xe0\x80\xaf",  # three-byte overlong "/"
    "f08080af": b"\xf0\x80\x80\xaf",  # four-byte overlong "/"
    "eda080": b"\xed\xa0\x80",  # an encoded surrogate (CESU-8)
    "f4908080": b"\xf4\x90\x80\x80",  # past U+10FFFF
    "f888808080": b"\xf8\x88\x80\x80\x80",  # a five-byte sequence
    "e282": b"\xe2\x82",  # truncated
}
INVALID_UTF8_PLACES = {
    "value": b'{"key": "new", "name": "a@"}',
    "name": b'{"key": "new", "name": "n", "@": 1}',
    "nested-key": b'{"key": "new", "name": "n", "sourceConfig": {"@": 1}}',
}
NOT_UTF8 = {
    "utf-16-bom": '{"key": "new", "name": "n"}'.encode("utf-16"),
    "utf-32-bom": '{"key": "new", "name": "n"}'.encode("utf-32"),
    "utf-16-le": '{"key": "new", "name": "n"}'.encode("utf-16-le"),
    "latin-1": '{"key": "new", "name": "café"}'.encode("latin-1"),
    "utf-8-bom": b"\xef\xbb\xbf" + b'{"key": "new", "name": "n"}',
}
NUMBERS_JSON_DOES_NOT_ALLOW = {
    "huge-int": '{"key": "k", "name": "n", "recordCount": ' + "9" * 5000 + "}",
    "huge-int-nested": '{"key": "k", "name": "n", "sourceConfig": {"n": ' + "9" * 5000 + "}}",
    "inf": '{"key": "k", "name": "n", "sourceConfig": {"n": Infinity}}',
    "-inf": '{"key": "k", "name": "n", "sourceConfig": {"n": -Infinity}}',
    "hex": '{"key": "k", "name": "n", "recordCount": 0x10}',
    "octal": '{"key": "k", "name": "n", "recordCount": 010}',
    "plus": '{"key": "k", "name": "n", "recordCount": +1}',
    "bare-dot": '{"key": "k", "name": "n", "recordCount": .5}',
}
DUPLICATE_KEYS = [
    '{"key": "new", "name": "n", "sourceConfig": {"a": 1, "a": 2}}',
    '{"key": "new", "name": "n", "schedule": {"cron": "x", "b": {"c": 1, "c": 1}}}',
    '{"key": "new", "name": "n", "sourceConfig": {"l": [{"x": 1, "x": 1}]}}',
    '{"key": "new", "name": "n", "name": "n"}',
    '{"key": "crm", "name": "a", "name": "b"}',
]


def exhausting(depth, opener, closer):
    """A body whose sourceConfig nests `depth` levels."""
    return (
        '{"key": "new", "name": "n", "sourceConfig": ' + opener * depth + "1" + closer * depth + "}"
    )


NOT_JSON = [
    *(
        pytest.param(
            method, place.replace(b"@", raw), "not valid JSON", id=f"{method}-{where}-{name}"
        )
        for method in ("POST", "PUT")
        for where, place in INVALID_UTF8_PLACES.items()
        for name, raw in INVALID_UTF8.items()
    ),
    *(pytest.param("POST", data, "not valid JSON", id=name) for name, data in NOT_UTF8.items()),
    *(
        pytest.param("POST", data, "not valid JSON", id=name)
        for name, data in NUMBERS_JSON_DOES_NOT_ALLOW.items()
    ),
    *(
        pytest.param(method, data, "duplicate key", id=f"{method}-{data}")
        for data in DUPLICATE_KEYS
        for method in ("POST", "PUT")
    ),
]


@pytest.mark.parametrize("method, data, detail", NOT_JSON)
def test_a_body_not_strict_json_in_utf8_is_a_400_saying_so(shared, method, data, detail):
    assert detail in problem(send(shared.client, method, data), 400)["detail"]
    assert shared.state() == shared.before


# Where: every refusal of a body's JSON names its line and column (1-based,
# in characters), the way an editor shows them.

WHERE = {
    "trailing-comma-object": (
        b'{"key": "k", "name": "n",}',
        "a trailing comma at line 1, column 25",
    ),
    "trailing-comma-array": (
        b'{"key": "k", "name": "n", "sourceConfig": {"l": [1, 2 ,\n ]}}',
        "a trailing comma at line 1, column 55",
    ),
    "out-of-range": (b'{"key": "k",\n "name": 1e400}', "number out of range at line 2, column 10"),
    "out-of-range-negative": (
        b'{"key": "k", "name": "n", "sourceConfig": {"x": [0, -1E+999]}}',
        "number out of range at line 1, column 53",
    ),
    "too-many-digits": (
        b'{"key": "k", "name": "n", "recordCount": ' + b"9" * 5000 + b"}",
        "number out of range at line 1, column 42",
    ),
    "duplicate": (
        b'{"key": "k", "name": "a",\r\n"name": "b"}',
        "duplicate key 'name' at line 2, column 1",
    ),
    "duplicate-nested": (
        b'{"key": "k", "name": "n", "sourceConfig": {"l": [{"x": 1, "\\u0078": 2}]}}',
        "duplicate key 'x' at line 1, column 59",
    ),
    "duplicate-after-a-string-like-it": (
        b'{"key": "\\"key\\": 1", "name": "n", "key": "k"}',
        "duplicate key 'key' at line 1, column 36",
    ),
    "nan": (
        b'{"key": "k", "name": "n", "recordCount": NaN}',
        "NaN is not JSON at line 1, column 42",
    ),
    "infinity": (b'{"key": "k",\n\n  "x": -Infinity}', "-Infinity is not JSON at line 3, column 8"),
    "missing-colon": (b'{"key" "k"}', "expecting ':' delimiter at line 1, column 8"),
    "missing-comma": (b'{"key": "k"\n "name": "n"}', "expecting ',' delimiter at line 2, column 2"),
    "single-quotes": (
        b"{'key': 'k'}",
        "expecting property name enclosed in double quotes at line 1, column 2",
    ),
    "extra-data": (b'{"key": "k"} {}', "extra data at line 1, column 14"),
    "unterminated": (b'{"key": "k', "unterminated string starting at line 1, column 9"),
    "raw-newline-in-string": (b'{"key": "k\n"}', "invalid control character at line 1, column 11"),
    "not-utf8": (
        '{"key": "k", "name": "é'.encode() + b'\xff"}',
        "a byte that is not UTF-8 at line 1, column 24",
    ),
    "bom": (b"\xef\xbb\xbf{}", "a byte order mark (BOM) before the JSON at line 1, column 1"),
    "deep": (
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        "nested deeper than 32 levels at line 1, column 161",
    ),
    "empty": (b"", "it is empty"),
    "blank": (b" \r\n\t", "it is empty"),
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("data, reason", list(WHERE.values()), ids=list(WHERE))
def test_a_json_error_says_what_and_where(shared, method, data, reason):
    body = problem(send(shared.client, method, data), 400)
    assert body["detail"] == f"The body is not valid JSON: {reason}."
    assert "Error" not in body["detail"] and "char " not in body["detail"]  # no Python words
    assert shared.state() == shared.before


@pytest.mark.parametrize("depth", [5_000, 200_000])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ('{"a":', "}")])
def test_nesting_that_would_exhaust_the_parser_is_a_4xx(shared, depth, opener, closer):
    data = exhausting(depth, opener, closer)
    too_large = len(data) > 1024 * 1024  # the default limit, met first by the widest
    problem(send(shared.client, "POST", data), 413 if too_large else 400)
    assert shared.state() == shared.before


# Content types.

NOT_JSON_TYPES = [
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
]
UNSUPPORTED = [
    *(
        pytest.param(method, content_type, "application/json", id=f"{method}-{content_type}")
        for content_type in NOT_JSON_TYPES
        for method in ("POST", "PUT")
    ),
    *(
        pytest.param("POST", f"application/json; charset={charset}", "utf-8", id=charset)
        for charset in ("utf-16", "latin-1", "ascii", "x-unknown")
    ),
]


@pytest.mark.parametrize("method, content_type, detail", UNSUPPORTED)
def test_a_body_not_declared_json_in_utf8_is_a_415(shared, method, content_type, detail):
    data = json.dumps({"key": "crm" if method == "PUT" else "new", "name": "n"}).encode()
    assert detail in problem(send(shared.client, method, data, content_type), 415)["detail"]
    assert shared.state() == shared.before


@pytest.mark.parametrize(
    "content_type",
    [f"application/json; charset={c}" for c in ("utf-8", "UTF-8", "utf8", '"utf-8"')]
    + ["Application/JSON"],
)
def test_json_in_utf8_is_accepted_however_its_type_is_spelled(client, content_type):
    data = json.dumps({"key": "ключ", "name": "🚀"}, ensure_ascii=False).encode()
    response = send(client, "POST", data, content_type)
    assert response.status_code == 201 and response.get_json()["key"] == "ключ"


# Bodies over the size limit, chunked, or with a lying Content-Length.


@pytest.fixture
def small(make_app):
    """A seeded app whose body limit is LIMIT bytes."""
    return hostile.seed(make_app(DATASOURCES_MAX_BODY_BYTES=LIMIT))


def framed(client, method, data, framing):
    """`data` sent with its length (framing None), chunked, or with a
    Content-Length of `framing` whatever its real length."""
    headers = {**auth(), "Content-Type": "application/json"}
    if framing == "chunked":
        return client.open(
            API,
            method=method,
            input_stream=io.BytesIO(data),
            headers={**headers, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
    overrides = {} if framing is None else {"CONTENT_LENGTH": str(framing)}
    return client.open(API, method=method, data=data, headers=headers, environ_overrides=overrides)


FRAMINGS = [
    ("POST", exactly(LIMIT), None, 201),
    ("POST", exactly(LIMIT + 1), None, 413),
    ("PUT", exactly(LIMIT, "crm"), None, 200),
    ("PUT", exactly(LIMIT + 1, "crm"), None, 413),
    ("POST", exactly(LIMIT), "chunked", 201),
    ("POST", exactly(LIMIT + 1), "chunked", 413),
    ("POST", exactly(50 * LIMIT), "chunked", 413),
    ("POST", exactly(100), 10, 400),
    ("POST", exactly(100), LIMIT + 1, 413),
    ("POST", exactly(100), "abc", 400),
    ("POST", exactly(100), "-1", 400),
    ("POST", exactly(100), "1e3", 400),
    ("POST", exactly(100), "", 400),
]


@pytest.mark.parametrize(
    "method, data, framing, status",
    FRAMINGS,
    ids=[f"{m}-{len(d)}-{f}-{s}" for m, d, f, s in FRAMINGS],
)
def test_the_body_limit_holds_however_a_body_is_framed(small, method, data, framing, status):
    response = framed(small.client, method, data, framing)
    if status >= 400:
        body = problem(response, status)
        if status == 413:
            assert body["detail"] == f"The body is larger than the limit of {LIMIT} bytes."
        assert "WWW-Authenticate" not in response.headers
        assert small.state() == small.before
    else:
        assert response.status_code == status, response.data
        assert small.state() != small.before


# The same on the wire: a real HTTP server, and gunicorn.

ON_THE_WIRE = {
    "chunked-at-limit": (head(chunked_body=True), chunked(exactly(LIMIT)), 201),
    "chunked-over-limit": (head(chunked_body=True), chunked(exactly(LIMIT + 1)), 413),
    "chunked-100x-limit": (head(chunked_body=True), chunked(exactly(100 * LIMIT)), 413),
    "chunked-200x-limit": (head(chunked_body=True), chunked(exactly(200 * LIMIT)), 413),
    "length-shorter": (head(length=50), exactly(100), 400),
    "length-longer-then-eof": (head(length=500), exactly(100), 400),
    "length-over-limit": (head(length=LIMIT + 1), exactly(100), 413),
    "length-huge": (head(length=10**12), exactly(100), 413),
    "forged-token": (head(length=100, bearer="x" + token()), exactly(100), 401),
}


@pytest.mark.parametrize("lines, body, status", list(ON_THE_WIRE.values()), ids=list(ON_THE_WIRE))
def test_the_body_limit_holds_on_a_real_socket(server, lines, body, status):
    code, rest = raw_request(server.server_port, lines, body)
    assert code == status, rest
    if status >= 400:
        assert b"application/problem+json" in rest
    if status == 413:
        assert f"the limit of {LIMIT} bytes".encode() in rest
    assert len(rows(server.app)) == (2 if status == 201 else 1)


def test_gunicorn_limits_every_framing_and_logs_no_token(tmp_path):
    """The same body rules under the server that ships, with its own logs."""
    from servers import Gunicorn

    env = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'ds.db'}",
        "DATASOURCES_JWT_SECRET": SECRET,
        "DATASOURCES_MAX_BODY_BYTES": str(LIMIT),
        "DATASOURCES_METRICS": "false",
    }
    with Gunicorn(env, workers=1) as running:
        codes = [
            raw_request(running.port, lines, body)[0] for lines, body, _ in ON_THE_WIRE.values()
        ]
        log = running.log()
    assert codes == [status for _, _, status in ON_THE_WIRE.values()]
    assert token() not in log and token().split(".")[2] not in log and "Bearer" not in log
    assert "POST /api/v1/data-sources" in log  # the request log was on
