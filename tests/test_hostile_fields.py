"""Hostile field values: every value a field refuses is a 400 naming that
field and changes nothing; every value at the edge of what a field takes is
stored whole and read back as sent. (Plainer cases live in test_api.py.)"""

import json
import re

import hostile
import pytest
from conftest import API, auth, problem, rows, token
from hostile import send

seeded, shared, shared_app = hostile.seeded, hostile.shared, hostile.shared_app  # fixtures


def nested(depth, leaf=1):
    for _ in range(depth):
        leaf = {"n": leaf}
    return leaf


def nested_lists(depth, leaf=1):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def base(method):
    """The rest of a body that would be accepted: a new source, or `crm` changed."""
    return {"key": "new", "name": "n"} if method == "POST" else {"key": "crm"}


# Values a field refuses.

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
# The samples each field accepts; every other sample is refused.
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
WRONG_TYPES = [
    pytest.param(method, field, value, id=f"{method}-{field}-{kind}")
    for method in ("PUT", "POST")
    for field in ACCEPTS
    if method == "PUT" or field != "rowVersion"
    for kind, value in SAMPLES.items()
    if kind not in ACCEPTS[field]
]
OUT_OF_RANGE = [
    ("POST", "recordCount", -1),
    ("POST", "recordCount", 2**63),
    ("POST", "recordCount", -(2**63) - 1),
    ("POST", "recordCount", 10**30),
    ("POST", "recordCount", 1e300),
    ("POST", "recordCount", 5e-324),
    ("POST", "recordCount", 9.3e18),
    ("POST", "recordCount", 2.5),
    ("PUT", "recordCount", 2**64),
    ("PUT", "rowVersion", 2**63),
    ("PUT", "rowVersion", -(2**63)),
    ("PUT", "rowVersion", 10**30),
    ("PUT", "rowVersion", 1e300),
    ("PUT", "rowVersion", -9.3e18),
    ("PUT", "rowVersion", 0.5),
    ("POST", "lastSyncAt", "9999-12-31T23:59:59-01:00"),
    ("POST", "lastSyncAt", "10000-01-01T00:00:00Z"),
    ("POST", "lastSyncAt", "2026-02-30T00:00:00Z"),
    ("POST", "lastSyncAt", "2026-03-16T24:00:01Z"),
    ("POST", "lastSyncAt", "2026-03-16T02:00:00+25:00"),
    ("PUT", "lastSyncAt", "2026-03-16T23:59:60Z"),
]
TOO_DEEP = {
    "config-33": ("sourceConfig", nested(33)),
    "schedule-500": ("schedule", nested(500)),
    "lists-35": ("sourceConfig", {"a": nested_lists(35)}),
    "description-500": ("description", nested(500)),
    "name-lists": ("name", nested_lists(10, "x")),
}
REFUSED = [
    *WRONG_TYPES,
    *(pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]!r}") for case in OUT_OF_RANGE),
    *(
        pytest.param(method, field, value, id=f"{method}-{name}")
        for name, (field, value) in TOO_DEEP.items()
        for method in ("POST", "PUT")
    ),
]


@pytest.mark.parametrize("method, field, value", REFUSED)
def test_a_value_its_field_refuses_is_a_400_naming_that_field_alone(shared, method, field, value):
    response = shared.client.open(
        API, method=method, json={**base(method), field: value}, headers=auth()
    )
    assert list(problem(response, 400, field)["errors"]) == [field]
    assert shared.state() == shared.before


# Text no database can hold. On both backends: PostgreSQL refuses what
# SQLite might keep, and a refusal must come from us, never from the database.

TEXT_FIELDS = ["key", "name", "description", "connectorKey", "fileFormat", "schemaKey"]
TEXT_FIELDS += ["lastSyncStatus"]
ESCAPES = [r"\u0000", r"\u0007", r"\u001b", r"\ud800", r"\udfff", r"\ud800\u0041", r"\udc00\ud800"]
NESTED_ESCAPES = [
    r'{"k": "\u0000"}',
    r'{"\u0000": 1}',
    r'{"k": ["ok", {"deep": "\ud800"}]}',
    r'{"\udfff": {"k": 1}}',
]
UNSTORABLE_MESSAGE = "Contains a control character or invalid Unicode."
LENGTH_MESSAGE = "Length must be between 1 and 255."
UNSTORABLE = [
    *(
        pytest.param(
            TEXT_FIELDS, json.dumps("a@b").replace("@", escaped), UNSTORABLE_MESSAGE, id=escaped
        )
        for escaped in ESCAPES
    ),
    *(
        pytest.param(["sourceConfig", "schedule"], inner, UNSTORABLE_MESSAGE, id=inner)
        for inner in NESTED_ESCAPES
    ),
    pytest.param(["key"], json.dumps("\U0001f680" * 256), LENGTH_MESSAGE, id="astral-key-256"),
    pytest.param(["name"], json.dumps("é" * 100_000), LENGTH_MESSAGE, id="name-100k"),
]


def body_text(fields):
    """A JSON object of `fields`, each already JSON text (escapes kept as written)."""
    return "{" + ", ".join(f'"{name}": {text}' for name, text in fields.items()) + "}"


@pytest.mark.parametrize("fields, text, message", UNSTORABLE)
def test_text_no_database_can_hold_is_a_400_naming_the_field(seeded, fields, text, message):
    for method in ("POST", "PUT"):
        for field in fields:
            if method == "PUT" and field == "key":
                continue  # PUT's key names the source to change
            rest = {name: json.dumps(value) for name, value in base(method).items()}
            response = send(seeded.client, method, body_text({**rest, field: text}))
            assert problem(response, 400, field)["errors"] == {field: [message]}, (method, field)
    assert seeded.state() == seeded.before


UNKNOWN = {"one-50k-name": ["x" * 50_000], "20k-names": [f"f{i}" for i in range(20_000)]}


@pytest.mark.parametrize("unknown", list(UNKNOWN.values()), ids=list(UNKNOWN))
def test_unknown_fields_are_one_400_naming_each(shared, unknown):
    body = {"key": "new", "name": "n", **dict.fromkeys(unknown, 1)}
    error = problem(shared.client.post(API, json=body, headers=auth()), 400)
    assert sorted(error["errors"]) == sorted(unknown)
    assert shared.state() == shared.before


# Values at the edge of what a field takes: stored whole, read back as sent.

UNUSUAL_TEXT = "\U0001f680 \u200b\u202e\ufeff\ufffd\uffff \x7f\x85\x9f \u2028\u2029"
STORED_WHOLE = {
    "astral-key-255": ("key", "\U0001f680" * 255),
    "name-255": ("name", "é" * 255),
    "description-900k": ("description", "d" * 900_000),
    "astral-connector-255": ("connectorKey", "\U0001f680" * 255),
    "astral-schema-255": ("schemaKey", "\U0001f680" * 255),
    "astral-format-255": ("fileFormat", "\U0001f680" * 255),
    "config-900k": ("sourceConfig", {"k" * 500_000: "v" * 400_000}),
    "config-nested-to-the-limit": ("sourceConfig", {"list": [nested(30)]}),
    "config-100k-list": ("sourceConfig", {"items": list(range(100_000))}),
    "config-60k-keys": ("sourceConfig", {f"k{i}": i for i in range(60_000)}),
    "config-200k-objects": ("sourceConfig", {"items": [{}] * 200_000}),
    "unusual-but-valid-characters": ("description", UNUSUAL_TEXT),
}
STORED = [
    *(
        pytest.param(field, json.dumps(value), value, id=name)
        for name, (field, value) in STORED_WHOLE.items()
    ),
    pytest.param("name", r'"\ud83d\ude80"', "\U0001f680", id="escaped-surrogate-pair"),
]


@pytest.mark.parametrize("field, text, value", STORED)
def test_a_value_at_the_edge_is_stored_whole(client, field, text, value):
    created = send(client, "POST", body_text({"key": '"k"', "name": '"n"', field: text}))
    assert created.status_code == 201, created.data[:300]
    assert created.get_json()[field] == value
    assert client.get(API, headers=auth()).get_json()["data"][0][field] == value


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


# Whole numbers however written (JSON Schema's integer): stored and answered as integers.

WHOLE = [
    ("POST", "recordCount", "37310.0", 37310),
    ("POST", "recordCount", "1e3", 1000),
    ("POST", "recordCount", "4.5E+15", 4500000000000000),
    ("POST", "recordCount", "-0.0", 0),
    ("PUT", "recordCount", "250.000", 250),
    ("PUT", "rowVersion", "1.0", 1),
    ("PUT", "rowVersion", "1e0", 1),
]


@pytest.mark.parametrize("method, field, text, number", WHOLE, ids=str)
def test_an_integral_number_is_that_whole_number(seeded, method, field, text, number):
    """A rowVersion of 1.0 matches the stored 1 (the answer holds the next one)."""
    body = body_text({**{k: json.dumps(v) for k, v in base(method).items()}, field: text})
    response = send(seeded.client, method, body)
    assert response.status_code == (201 if method == "POST" else 200), response.data
    number += field == "rowVersion"
    answered = response.get_json()[field]
    assert type(answered) is int and answered == number
    assert re.search(rb'"%s" ?: ?%d[,}]' % (field.encode(), number), response.data)
    [row] = [row for row in rows(seeded.app) if row["key"] == base(method)["key"]]
    stored = row["record_count" if field == "recordCount" else "row_version"]
    assert type(stored) is int and stored == number


# Every string read means what was sent: no character dropped, ignored or
# guessed, in the body, the query string or a header.

CONTROLS = [chr(c) for c in (*range(32), 127)]
MOMENT = "2026-03-16T02:00:00.000Z"
INSIDE = [
    0,
    4,
    10,
    13,
    19,
    23,
    24,
]  # start, in the date, at T, in the time, before .000, before Z, end
DATE_TIMES = [
    *(
        pytest.param([MOMENT[:at] + char + MOMENT[at:] for at in INSIDE], id=f"{ord(char):#04x}")
        for char in CONTROLS
    ),
    pytest.param(
        [
            "2026-03-16T02:00:00.000+00:00.5",
            "2026-03-16T02:00:00 Z",
            " 2026-03-16T02:00:00Z",
            "2026-03-16T02:00:00Z ",
            "2026-03-16T02:00:00Zx",
            "2026-03-16T02:00:00\u00a0Z",
            "2026-03-16T02:00:00\u2028",
            "2026-03-16",
            "2026-W11-1T02:00:00Z",
            "\uff12\uff10\uff12\uff16-03-16T02:00:00Z",
            "\u0662\u0660\u0662\u0666-03-16T02:00:00Z",
            "2026-03-16T02:00:00.Z",
            "2026-03-16T02:00:00+01:00:00.1234567",
            "2026-03-16T02:00:00+1",
        ],
        id="not-iso-8601",
    ),
]


@pytest.mark.parametrize("texts", DATE_TIMES)
def test_a_date_time_is_read_whole_or_refused(seeded, texts):
    for text in texts:
        for method in ("POST", "PUT"):
            body = {**base(method), "lastSyncAt": text}
            response = seeded.client.open(API, method=method, json=body, headers=auth())
            assert problem(response, 400, "lastSyncAt")["errors"] == {
                "lastSyncAt": ["Not a valid datetime."]
            }, (method, text)
    assert seeded.state() == seeded.before


@pytest.mark.parametrize(
    "sent, stored",
    [
        ("2026-03-16T02:00:00.000Z", "2026-03-16T02:00:00.000Z"),
        ("2026-03-16t02:00:00z", "2026-03-16T02:00:00.000Z"),
        ("2026-03-16 02:00:00.5+00:00", "2026-03-16T02:00:00.500Z"),
        ("20260316T030000+0100", "2026-03-16T02:00:00.000Z"),
        ("2026-03-16T02:00:00,25Z", "2026-03-16T02:00:00.250Z"),
        ("2026-03-16T02:00:00.1234567Z", "2026-03-16T02:00:00.123Z"),
        ("2026-03-16T02:53:28+00:53:28", "2026-03-16T02:00:00.000Z"),
        ("2026-03-16T02Z", "2026-03-16T02:00:00.000Z"),
    ],
)
def test_a_date_time_in_any_form_the_document_names_is_read_whole(seeded, sent, stored):
    body = {"key": "k", "name": "n", "lastSyncAt": sent}
    created = seeded.client.post(API, json=body, headers=auth())
    assert created.status_code == 201, created.data
    assert created.get_json()["lastSyncAt"] == stored


C0_UNSTORABLE = [c for c in CONTROLS if c not in "\t\n\r\x7f"]


@pytest.mark.parametrize("char", C0_UNSTORABLE, ids=lambda c: f"{ord(c):#04x}")
def test_a_control_character_in_any_text_or_enum_field_is_a_400(seeded, char):
    values = {field: f"a{char}b" for field in TEXT_FIELDS}
    values.update(syncMode=f"cdc{char}", status=f"{char}active")
    values.update(sourceConfig={"a": [f"{char}"]}, schedule={f"k{char}": 1})
    for method in ("POST", "PUT"):
        for field, value in values.items():
            if method == "PUT" and field == "key":
                continue
            body = {**base(method), field: value}
            response = seeded.client.open(API, method=method, json=body, headers=auth())
            assert list(problem(response, 400, field)["errors"]) == [field], (method, field)
    assert seeded.state() == seeded.before


@pytest.mark.parametrize("char", ["\t", "\n", "\r", "\x7f", "\x85", "\u2028"], ids=repr)
def test_the_storable_controls_are_stored_as_sent(seeded, char):
    sent = {"key": f"k{char}", "name": f"{char}n{char}", "sourceConfig": {f"{char}": char}}
    created = seeded.client.post(API, json=sent, headers=auth())
    assert created.status_code == 201, created.data
    assert {k: created.get_json()[k] for k in sent} == sent
    assert (
        seeded.client.delete(API, query_string={"key": f"k{char}"}, headers=auth()).status_code
        == 204
    )


LIMITS = ["5%00", "%005", "5%09", "%095", "%205", "5%20", "%2B5", "5%0A", "%EF%BC%95", "%D9%A5"]
LIMITS += ["%FF", "5%C0%80"]
KEYS = ["crm%00", "%00crm", "crm%1F", "crm%FF", "%FFcrm", "cr%C0%80m", "crm%ED%A0%80", "%E3%81"]
QUERIES = [("GET", "limit", raw) for raw in LIMITS] + [("DELETE", "key", raw) for raw in KEYS]
QUERIES += [
    ("GET", name, raw) for name in ("connectorKey", "syncMode") for raw in ("%FF", "x&{}=y")
]


@pytest.mark.parametrize("method, name, raw", QUERIES, ids=lambda v: str(v))
def test_a_query_parameter_is_read_whole_or_refused(seeded, method, name, raw):
    raw = raw.format(name)  # "x&{}=y": the parameter given twice
    response = seeded.client.open(f"{API}?{name}={raw}", method=method, headers=auth())
    assert list(problem(response, 400, name)["errors"]) == [name]
    assert seeded.state() == seeded.before


@pytest.mark.parametrize("tail", ["%00", "%1F", "%FF", "%20", "+", "%C0%80"])
def test_a_cursor_with_anything_added_is_refused(seeded, tail):
    seeded.client.post(API, json={"key": "second", "name": "n"}, headers=auth())
    cursor = seeded.client.get(f"{API}?limit=1", headers=auth()).get_json()["pagination"][
        "nextCursor"
    ]
    assert seeded.client.get(f"{API}?limit=1&cursor={cursor}", headers=auth()).status_code == 200
    response = seeded.client.get(f"{API}?limit=1&cursor={cursor}{tail}", headers=auth())
    assert list(problem(response, 400, "cursor")["errors"]) == ["cursor"]


def test_a_key_named_like_a_bad_escape_is_not_what_a_bad_escape_deletes(seeded):
    assert (
        seeded.client.post(API, json={"key": "%FF", "name": "n"}, headers=auth()).status_code == 201
    )
    before = seeded.state()
    problem(seeded.client.delete(f"{API}?key=%FF", headers=auth()), 400, "key")
    assert seeded.state() == before
    assert seeded.client.delete(f"{API}?key=%25FF", headers=auth()).status_code == 204


@pytest.mark.parametrize(
    "credential",
    ["{t}\x1f", "\x1c{t}", "{t}\x00", "\x0b{t}", "{t}\x0c", "{t}\x85", "{t}\u3000"],
    ids=repr,
)
def test_a_bearer_token_with_a_control_character_is_a_401(seeded, credential):
    headers = {"Authorization": "Bearer " + credential.format(t=token())}
    response = seeded.client.post(API, json={"key": "new", "name": "n"}, headers=headers)
    problem(response, 401)
    assert seeded.state() == seeded.before


def test_a_request_id_with_a_control_character_is_not_echoed(seeded):
    for sent in ("abc\x00", "abc\x1f", "\x7fabc", "abc\t"):
        answered = seeded.client.get(API, headers={**auth(), "X-Request-ID": sent})
        assert re.fullmatch("[0-9a-f]{32}", answered.headers["X-Request-ID"]), repr(sent)
    assert (
        seeded.client.get(API, headers={**auth(), "X-Request-ID": "abc"}).headers["X-Request-ID"]
        == "abc"
    )


@pytest.fixture
def gateway(make_app):
    """An app that takes identity from a gateway's X-Tenant-Id and X-Role."""
    return make_app(DATASOURCES_AUTH="headers")


def as_sent(tenant, role="editor"):
    """Headers as WSGI hands them over: each byte of their UTF-8 a character."""
    return {name: text.encode().decode("latin-1") for name, text in
            (("X-Tenant-Id", tenant), ("X-Role", role))}  # fmt: skip


@pytest.mark.parametrize(
    "headers, status",
    [
        (as_sent("t_001\x00"), 401),
        (as_sent("\x1ft_001"), 401),
        (as_sent("t_\x7f001"), 401),
        (as_sent("t_001\x85"), 401),
        ({"X-Tenant-Id": "t_\xe9", "X-Role": "editor"}, 401),  # Latin-1, not UTF-8
        (as_sent("t_001", "editor\x00"), 403),
        (as_sent("t_001", "\x1feditor"), 403),
        ({"X-Tenant-Id": "t_001", "X-Role": "edit\xe9r"}, 401),  # no role we can read
    ],
    ids=repr,
)
def test_gateway_headers_are_read_whole_or_refused(gateway, headers, status):
    response = gateway.test_client().post(API, json={"key": "k", "name": "n"}, headers=headers)
    problem(response, status)
    assert rows(gateway) == []


def test_a_gateway_tenant_in_utf8_is_that_tenant(gateway):
    client = gateway.test_client()
    created = client.post(API, json={"key": "k", "name": "n"}, headers=as_sent("té-ω"))
    assert created.status_code == 201, created.data
    assert created.get_json()["tenantId"] == "té-ω"
    assert [row["tenant_id"] for row in rows(gateway)] == ["té-ω"]
    listed = client.get(API, headers=as_sent("té-ω", "viewer")).get_json()["data"]
    assert [source["key"] for source in listed] == ["k"]
