"""Every endpoint, status code, field rule and example of the reference."""

import datetime
import json
import re

import pytest
from conftest import API, EXAMPLE, REFERENCE_DEFAULTS, database_of, problem, rows

from datasources import models

FIELDS = [
    "id", "tenantId", "key", "name", "description", "connectorKey", "sourceConfig",
    "fileFormat", "syncMode", "schedule", "schemaKey", "status", "lastSyncAt",
    "lastSyncStatus", "recordCount", "rowVersion", "createdAt", "updatedAt", "secrets",
]  # fmt: skip
TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def test_create_the_reference_example(api, app):
    response = api.post(EXAMPLE)
    assert response.status_code == 201
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == FIELDS
    assert body["id"].startswith("ds_") and body["tenantId"] == "t_001"
    assert {k: body[k] for k in EXAMPLE} == EXAMPLE
    assert body["fileFormat"] is None and body["lastSyncAt"] is None
    assert body["lastSyncStatus"] is None and body["recordCount"] == 0
    assert body["rowVersion"] == 1
    assert body["createdAt"] == body["updatedAt"]
    assert re.match(TIME, body["createdAt"])
    [row] = rows(app)
    assert row["key"] == "crm-customers" and row["tenant_id"] == "t_001"
    assert row["id"] == body["id"]


def test_ids_carry_their_creation_millisecond_and_sort_in_creation_order(api):
    made = [api.post({"key": f"k{i}", "name": "n"}).get_json() for i in range(20)]
    for source in made:
        assert re.fullmatch(r"ds_[0-9a-f]{20}", source["id"]), source["id"]
        created = datetime.datetime.fromisoformat(source["createdAt"])
        milliseconds = (created - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // (
            datetime.timedelta(milliseconds=1)
        )
        assert int(source["id"][3:14], 16) == milliseconds
    ids = [source["id"] for source in made]
    assert len(set(ids)) == 20
    by_time = sorted(made, key=lambda source: source["createdAt"])
    assert [s["id"][:14] for s in by_time] == sorted(s["id"][:14] for s in made)


def test_create_applies_the_reference_defaults(api):
    body = api.post({"key": "k", "name": "n"}).get_json()
    assert {k: body[k] for k in FIELDS[4:16]} == {**REFERENCE_DEFAULTS, "rowVersion": 1}


def test_create_every_optional_field(api):
    sent = dict(
        EXAMPLE,
        fileFormat="parquet",
        lastSyncAt="2026-03-16T02:00:00.000Z",
        lastSyncStatus="success",
        recordCount=45000,
    )
    body = api.post(sent).get_json()
    assert {k: body[k] for k in sent} == sent
    assert api.get().get_json()["data"][0] == body


@pytest.mark.parametrize(
    "sent, stored",
    [
        ("2026-03-16T02:00:00Z", "2026-03-16T02:00:00.000Z"),
        ("2026-03-16T02:00:00", "2026-03-16T02:00:00.000Z"),
        ("2026-03-15T21:00:00-05:00", "2026-03-16T02:00:00.000Z"),
        ("2026-03-16T07:30:00.123456+05:30", "2026-03-16T02:00:00.123Z"),
    ],
)
def test_last_sync_at_is_normalised_to_utc_milliseconds(api, sent, stored):
    body = api.post({"key": "k", "name": "n", "lastSyncAt": sent}).get_json()
    assert body["lastSyncAt"] == stored


def test_read_only_fields_are_ignored_so_a_read_object_can_be_sent_back(api):
    first = api.post(EXAMPLE).get_json()
    again = dict(first, key="copy", tenantId="t_999", id="ds_mine", rowVersion=7)
    second = api.post(again).get_json()
    assert second["tenantId"] == "t_001" and second["id"] not in ("ds_mine", first["id"])
    assert second["rowVersion"] == 1


def test_duplicate_key_is_409_and_changes_nothing(api, app):
    api.post(EXAMPLE)
    body = problem(api.post(dict(EXAMPLE, name="Other")), 409)
    assert "crm-customers" in body["detail"]
    assert [r["name"] for r in rows(app)] == ["CRM Customer Export"]


def test_same_key_in_two_tenants(api, app):
    assert api.post(EXAMPLE).status_code == 201
    assert api.as_("t_002").post(EXAMPLE).status_code == 201
    assert len(rows(app)) == 2


@pytest.mark.parametrize(
    "content_type, status",
    [
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        (None, 415),
    ],
)
def test_create_needs_a_json_content_type(api, app, client, content_type, status):
    headers = dict(api.headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(API, data=json.dumps(EXAMPLE), headers=headers)
    assert response.status_code == status
    if status == 415:
        problem(response, 415)
        assert rows(app) == []


@pytest.mark.parametrize("method", ["post", "put"])
@pytest.mark.parametrize(
    "data, detail",
    [
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('{"key": "a", "key": "b", "name": "n"}', "duplicate key"),
        ('{"key": "k", "name": "n", "sourceConfig": {"x": NaN}}', "not valid JSON"),
        ('{"key": "k", "name": "n", "sourceConfig": {"x": 1e999}}', "not valid JSON"),
        (b'{"key": "\xff", "name": "n"}', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_400(api, app, client, method, data, detail):
    response = getattr(client, method)(
        API, data=data, headers=api.headers, content_type="application/json"
    )
    assert detail in problem(response, 400)["detail"]
    assert rows(app) == []


LONG = "x" * 256
VALIDATION = [
    ({"name": "n"}, "key", "Missing data for required field."),
    ({"key": "k"}, "name", "Missing data for required field."),
    ({"key": "", "name": "n"}, "key", "Length must be between 1 and 255."),
    ({"key": LONG, "name": "n"}, "key", "Length must be between 1 and 255."),
    ({"key": "k", "name": ""}, "name", "Length must be between 1 and 255."),
    ({"key": "k", "name": LONG}, "name", "Length must be between 1 and 255."),
    ({"key": 5, "name": "n"}, "key", "Not a valid string."),
    ({"key": None, "name": "n"}, "key", "Field may not be null."),
    ({"key": "k", "name": "n", "description": None}, "description", "Field may not be null."),
    ({"key": "k", "name": "n", "description": 1}, "description", "Not a valid string."),
    ({"key": "k", "name": "n", "connectorKey": []}, "connectorKey", "Not a valid string."),
    ({"key": "k", "name": "n", "sourceConfig": []}, "sourceConfig", "Not a valid mapping type."),
    ({"key": "k", "name": "n", "sourceConfig": None}, "sourceConfig", "Field may not be null."),
    ({"key": "k", "name": "n", "schedule": "daily"}, "schedule", "Not a valid mapping type."),
    ({"key": "k", "name": "n", "fileFormat": 3}, "fileFormat", "Not a valid string."),
    ({"key": "k", "name": "n", "schemaKey": {}}, "schemaKey", "Not a valid string."),
    ({"key": "k", "name": "n", "lastSyncStatus": True}, "lastSyncStatus", "Not a valid string."),
    (
        {"key": "k", "name": "n", "syncMode": "delta"},
        "syncMode",
        "Must be one of: full_refresh, incremental, cdc.",
    ),
    (
        {"key": "k", "name": "n", "status": "deleted"},
        "status",
        "Must be one of: draft, active, paused, archived.",
    ),
    ({"key": "k", "name": "n", "lastSyncAt": "yesterday"}, "lastSyncAt", "Not a valid datetime."),
    ({"key": "k", "name": "n", "lastSyncAt": 1700000000}, "lastSyncAt", "Not a valid datetime."),
    (
        {"key": "k", "name": "n", "lastSyncAt": "0001-01-01T00:00:00+01:00"},
        "lastSyncAt",
        "Out of the representable date range.",
    ),
    ({"key": "k", "name": "n", "connectorKey": "c" * 256}, "connectorKey", None),
    ({"key": "k", "name": "n", "schemaKey": "s" * 256}, "schemaKey", None),
    ({"key": "k", "name": "n", "fileFormat": "f" * 256}, "fileFormat", None),
    ({"key": "k", "name": "n", "recordCount": -1}, "recordCount", None),
    ({"key": "k", "name": "n", "recordCount": 2**63}, "recordCount", None),
    ({"key": "k", "name": "n", "recordCount": 1.5}, "recordCount", "Not a valid integer."),
    ({"key": "k", "name": "n", "recordCount": True}, "recordCount", "Not a valid integer."),
    ({"key": "k", "name": "n", "recordCount": "5"}, "recordCount", "Not a valid integer."),
    ({"key": "k", "name": "n", "owner": "me"}, "owner", "Unknown field."),
    ({"key": "k\x00", "name": "n"}, "key", "Contains a control character or invalid Unicode."),
    ({"key": "k", "name": "n\x1b"}, "name", "Contains a control character or invalid Unicode."),
    (
        {"key": "k", "name": "n", "description": "\ud800"},
        "description",
        "Contains a control character or invalid Unicode.",
    ),
    (
        {"key": "k", "name": "n", "sourceConfig": {"a": [{"b": "\x00"}]}},
        "sourceConfig",
        "Contains a control character or invalid Unicode.",
    ),
    (
        {"key": "k", "name": "n", "schedule": {"\x00": 1}},
        "schedule",
        "Contains a control character or invalid Unicode.",
    ),
]


@pytest.mark.parametrize("body, field, message", VALIDATION)
def test_validation_errors_name_the_field(api, app, body, field, message):
    error = problem(api.post(body), 400)
    assert field in error["errors"] and field in error["detail"]
    if message:
        assert error["errors"][field] == [message]
    assert rows(app) == []


def test_deeply_nested_config_is_400(api):
    nested = {}
    for _ in range(40):
        nested = {"n": nested}
    error = problem(api.post({"key": "k", "name": "n", "sourceConfig": nested}), 400)
    assert error["errors"] == {"sourceConfig": ["Nested deeper than 32 levels."]}


def test_text_with_tabs_newlines_and_unicode_is_kept(api):
    text = "line one\n\tline two\r\n — café 数据 🚀"
    body = api.post({"key": "ключ", "name": text, "sourceConfig": {"k": text}}).get_json()
    assert body["name"] == text and body["key"] == "ключ"
    assert api.get().get_json()["data"][0]["sourceConfig"] == {"k": text}


def test_largest_record_count_round_trips(api, app):
    body = api.post({"key": "k", "name": "n", "recordCount": 2**63 - 1}).get_json()
    assert body["recordCount"] == 2**63 - 1
    assert rows(app)[0]["record_count"] == 2**63 - 1


def test_body_over_the_limit_is_413(api, app, client):
    big = {"key": "k", "name": "n", "description": "x" * (1024 * 1024)}
    problem(client.post(API, json=big, headers=api.headers), 413)
    assert rows(app) == []


# List


def test_list_the_reference_shape(api):
    created = api.post(EXAMPLE).get_json()
    response = api.get()
    assert response.status_code == 200
    assert response.get_json() == {
        "data": [created],
        "pagination": {"total": 1, "limit": 25, "hasMore": False, "nextCursor": None},
    }


def test_list_empty(api):
    assert api.get().get_json() == {
        "data": [],
        "pagination": {"total": 0, "limit": 25, "hasMore": False, "nextCursor": None},
    }


def test_list_pages_oldest_first_with_a_cursor(api):
    keys = [f"k{i:02d}" for i in range(7)]
    for key in keys:
        api.post({"key": key, "name": key})
    seen, cursor, pages = [], "", 0
    while True:
        page = api.get(f"?limit=3{cursor}").get_json()
        pages += 1
        assert page["pagination"]["total"] == 7 and page["pagination"]["limit"] == 3
        seen += [s["key"] for s in page["data"]]
        if not page["pagination"]["hasMore"]:
            assert page["pagination"]["nextCursor"] is None
            break
        cursor = "&cursor=" + page["pagination"]["nextCursor"]
    assert seen == keys and pages == 3


def test_list_ties_in_creation_time_are_broken_stably(api, app):
    for i in range(5):
        api.post({"key": f"k{i}", "name": "n"})
    database = database_of(app)
    with database.connection_context(), models.DataSource.bind_ctx(database):
        models.DataSource.update(created_at=datetime.datetime(2026, 1, 1)).execute()
    first = [s["id"] for s in api.get("?limit=5").get_json()["data"]]
    assert first == sorted(first)
    page = api.get("?limit=2").get_json()
    rest = api.get("?limit=5&cursor=" + page["pagination"]["nextCursor"]).get_json()
    assert [s["id"] for s in page["data"] + rest["data"]] == first


def test_list_is_per_tenant(api):
    api.post(EXAMPLE)
    api.as_("t_002").post({"key": "other", "name": "o"})
    other = api.as_("t_002", "viewer").get().get_json()
    assert [s["key"] for s in other["data"]] == ["other"]
    assert other["pagination"]["total"] == 1


def test_total_follows_creates_and_deletes(api):
    for key in "abc":
        api.post({"key": key, "name": key})
    api.post({"key": "a", "name": "dup"})
    api.delete("b")
    api.delete("b")
    assert api.get().get_json()["pagination"]["total"] == 2


@pytest.mark.parametrize(
    "query, field",
    [
        ("?limit=abc", "limit"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=2.5", "limit"),
        ("?cursor=garbage", "cursor"),
        ("?cursor=", "cursor"),
    ],
)
def test_bad_list_parameters_are_400(api, query, field):
    assert field in problem(api.get(query), 400)["errors"]


def test_limit_100_is_allowed(api):
    assert api.get("?limit=100").get_json()["pagination"]["limit"] == 100


def test_tampered_or_foreign_cursors_are_400(api):
    for key in "abc":
        api.post({"key": key, "name": key})
    cursor = api.get("?limit=1").get_json()["pagination"]["nextCursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert problem(api.get(f"?cursor={tampered}"), 400)["errors"] == {
        "cursor": ["Not a valid cursor."]
    }
    problem(api.as_("t_002").get(f"?cursor={cursor}"), 400)


# Update


def test_update_changes_only_the_given_fields(api, app):
    created = api.post(EXAMPLE).get_json()
    response = api.put({"key": "crm-customers", "status": "paused", "recordCount": 45000})
    assert response.status_code == 200
    body = response.get_json()
    assert body == dict(
        created,
        status="paused",
        recordCount=45000,
        rowVersion=2,
        updatedAt=body["updatedAt"],
    )
    assert body["updatedAt"] >= created["updatedAt"]
    assert rows(app)[0]["status"] == "paused"


def test_update_every_field_and_null_the_nullable_ones(api):
    api.post(dict(EXAMPLE, fileFormat="csv", lastSyncAt="2026-03-16T02:00:00Z"))
    changes = {
        "key": "crm-customers",
        "name": "New",
        "description": "d",
        "connectorKey": "s3",
        "sourceConfig": {"bucket": "b"},
        "fileFormat": None,
        "syncMode": "cdc",
        "schedule": {},
        "schemaKey": None,
        "status": "archived",
        "lastSyncAt": None,
        "lastSyncStatus": "failed",
        "recordCount": 0,
    }
    body = api.put(changes).get_json()
    assert {k: body[k] for k in changes} == changes


def test_update_with_the_current_row_version(api):
    api.post(EXAMPLE)
    body = api.put({"key": "crm-customers", "name": "A", "rowVersion": 1}).get_json()
    assert body["rowVersion"] == 2 and body["name"] == "A"
    body = api.put({"key": "crm-customers", "name": "B", "rowVersion": 2}).get_json()
    assert body["rowVersion"] == 3


def test_update_with_a_stale_row_version_is_409_with_the_current_object(api, app):
    api.post(EXAMPLE)
    current = api.put({"key": "crm-customers", "name": "A"}).get_json()
    response = api.put({"key": "crm-customers", "name": "B", "rowVersion": 1})
    body = problem(response, 409)
    assert body["title"] == "Optimistic concurrency conflict"
    assert body["detail"] == "rowVersion mismatch."
    assert body["current"] == current
    assert rows(app)[0]["name"] == "A" and rows(app)[0]["row_version"] == 2


def test_update_a_missing_source_is_404(api):
    problem(api.put({"key": "nope", "name": "x"}), 404)
    problem(api.put({"key": "nope", "rowVersion": 1}), 404)


def test_update_another_tenants_source_is_404(api, app):
    api.post(EXAMPLE)
    problem(api.as_("t_002").put({"key": "crm-customers", "name": "stolen"}), 404)
    assert rows(app)[0]["name"] == "CRM Customer Export"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x"}, "key"),
        ({"key": "crm-customers", "name": ""}, "name"),
        ({"key": "crm-customers", "name": None}, "name"),
        ({"key": "crm-customers", "rowVersion": "1"}, "rowVersion"),
        ({"key": "crm-customers", "rowVersion": 1.5}, "rowVersion"),
        ({"key": "crm-customers", "rowVersion": True}, "rowVersion"),
        ({"key": "crm-customers", "rowVersion": 2**64}, "rowVersion"),
        ({"key": "crm-customers", "recordCount": -5}, "recordCount"),
        ({"key": "crm-customers", "syncMode": "x"}, "syncMode"),
        ({"key": "crm-customers", "newKey": "x"}, "newKey"),
    ],
)
def test_update_validation(api, app, body, field):
    api.post(EXAMPLE)
    assert field in problem(api.put(body), 400)["errors"]
    assert rows(app)[0]["row_version"] == 1


def test_update_ignores_read_only_fields(api):
    created = api.post(EXAMPLE).get_json()
    sent = dict(created, name="renamed", id="ds_x", tenantId="t_002", createdAt="2000-01-01")
    body = api.put(sent).get_json()
    assert body["id"] == created["id"] and body["tenantId"] == "t_001"
    assert body["createdAt"] == created["createdAt"] and body["name"] == "renamed"


def test_update_needs_json(api, client):
    api.post(EXAMPLE)
    response = client.put(API, data="key=crm-customers", headers=api.headers)
    problem(response, 415)


# Delete


def test_delete(api, app):
    api.post(EXAMPLE)
    response = api.delete("crm-customers")
    assert response.status_code == 204 and response.data == b""
    assert "Content-Type" not in response.headers
    assert rows(app) == []
    problem(api.delete("crm-customers"), 404)


def test_delete_needs_a_key(api, client):
    for query in ("", "?key="):
        body = problem(client.delete(API + query, headers=api.headers), 400)
        assert "key" in body["errors"]


def test_delete_another_tenants_source_is_404(api, app):
    api.post(EXAMPLE)
    problem(api.as_("t_002").delete("crm-customers"), 404)
    assert len(rows(app)) == 1


# Routing


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("patch", API, 405),
        ("get", API + "/crm-customers", 404),
        ("delete", API + "/x/y", 405),
        ("get", "/api/v1/nothing", 404),
    ],
)
def test_unknown_routes_are_problems(api, client, method, path, status):
    response = getattr(client, method)(path, headers=api.headers)
    problem(response, status)
    if status == 405:
        allowed = {"GET", "POST", "PUT", "DELETE"} if path == API else {"GET"}
        assert set(response.headers["Allow"].split(", ")) >= allowed
