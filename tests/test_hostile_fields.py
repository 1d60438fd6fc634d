"""Hostile field values: every value a field refuses is a 400 naming that
field and changes nothing; every value at the edge of what a field takes is
stored whole and read back as sent. (Plainer cases live in test_api.py.)"""

import json

import hostile
import pytest
from conftest import API, auth, problem
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
    "connector-900k": ("connectorKey", "c" * 900_000),
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
