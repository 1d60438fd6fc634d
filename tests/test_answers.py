"""Answers are JSON the database writes (models.answer); they equal
marshmallow's dump of the same source, key for key and in the schema's order,
on both backends, for any source the API can store."""

import datetime
import json
import uuid

from conftest import API, auth, database_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasources import models
from datasources.schemas import SYNC_MODES, UNSTORABLE, canonical_numbers, json_plan, source_schema

text = st.text(max_size=40).filter(lambda value: not UNSTORABLE.search(value))
maybe_text = st.none() | text
moments = st.datetimes(
    min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(text, json_values, max_size=4).map(canonical_numbers)
sources = st.fixed_dictionaries(
    {
        "tenant_id": text.filter(bool),
        "name": text,
        "description": text,
        "connector_key": text,
        "source_config": json_objects,
        "file_format": maybe_text,
        "sync_mode": st.sampled_from(SYNC_MODES),
        "schedule": json_objects,
        "schema_key": maybe_text,
        "status": st.text(max_size=32).filter(lambda value: not UNSTORABLE.search(value)),
        "last_sync_at": st.none() | moments,
        "last_sync_status": maybe_text,
        "record_count": st.integers(0, 2**63 - 1),
        "row_version": st.integers(1, 2**63 - 2),  # created at 1, +1 per update
        "created_at": moments,
        "updated_at": moments,
        "secrets": json_objects,
        "secret_values": maybe_text,
        "secret_key_id": maybe_text,
    }
)


def dumped(data):
    """What the schema makes of a source, as a client parses it."""
    return json.loads(json.dumps(source_schema.dump(models.DataSource(**data))))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sources)
def test_every_answer_equals_the_schema_dump(app, data):
    unique = uuid.uuid4().hex  # examples share a database
    data |= {
        "id": models.new_id(datetime.datetime(2026, 12, 3)),
        "key": unique,
        "tenant_id": data["tenant_id"] + unique,
    }
    expected, database = dumped(data), database_of(app)
    tenant, key, version = data["tenant_id"], data["key"], data["row_version"]
    with app.app_context(), database.connection_context():
        created = models.insert(database, data)
        found = models.find(database, tenant, key)
        listed = models.page(database, tenant, 1, (data["created_at"], ""))
        updated = models.update(database, tenant, key, {}, data["updated_at"], version)
    assert len(listed.answer) == 1
    for answer in (created.answer, found.answer, listed.answer[0]):
        assert list(json.loads(answer)) == list(expected)  # the schema's key order
        assert json.loads(answer) == expected
    assert created.row_version == found.row_version == listed.row_version[0] == version
    assert created.id == found.id == listed.id[0] == data["id"]
    assert json.loads(updated.answer) == expected | {"rowVersion": version + 1}
    assert (updated.id, updated.row_version) == (data["id"], version + 1)


def test_the_plan_follows_the_schema():
    plan = json_plan(source_schema)
    assert [key for key, _, _ in plan] == [
        field.data_key or name for name, field in source_schema.dump_fields.items()
    ]
    assert dict((key, kind) for key, _, kind in plan) == {
        "id": "text",
        "tenantId": "text",
        "key": "text",
        "name": "text",
        "description": "text",
        "connectorKey": "text",
        "sourceConfig": "object",
        "fileFormat": "text",
        "syncMode": "text",
        "schedule": "object",
        "schemaKey": "text",
        "status": "text",
        "lastSyncAt": "time",
        "lastSyncStatus": "text",
        "recordCount": "integer",
        "rowVersion": "integer",
        "createdAt": "time",
        "updatedAt": "time",
        "secrets": "object",
    }


def test_times_are_cut_to_milliseconds_not_rounded(app):
    moment = datetime.datetime(2026, 3, 16, 2, 0, 59, 999999)
    whole = datetime.datetime(2026, 3, 16, 2, 0, 0)
    data = {
        **{field.name: field.default for field in models.DataSource._meta.sorted_fields},
        **{"id": "ds_1", "tenant_id": "t", "key": "k", "name": "n", "source_config": {}},
        **{"schedule": {}, "last_sync_at": whole, "created_at": moment, "updated_at": moment},
        "secrets": {},
    }
    database = database_of(app)
    with app.app_context(), database.connection_context():
        answer = json.loads(models.insert(database, data).answer)
    assert answer["createdAt"] == "2026-03-16T02:00:59.999Z"
    assert answer["lastSyncAt"] == "2026-03-16T02:00:00.000Z"


def test_pages_follow_the_list_order_and_the_counter(api, app):
    for i in range(30):
        body = {"key": f"k{i}", "name": f"n{i}", "sourceConfig": {"i": i, "x": [1.5, None]}}
        assert api.post(body).status_code == 201
    source, database = models.DataSource, database_of(app)
    with app.app_context(), database.connection_context(), source.bind_ctx(database):
        of_tenant = source.select().where(source.tenant_id == "t_001")
        ordered = list(of_tenant.order_by(source.created_at, source.id))
        first = models.page(database, "t_001", 26)
        assert list(first.id) == [s.id for s in ordered[:26]]
        assert first.row_version == (1,) * 26
        assert first.total == (30,) * 26
        assert [json.loads(answer) for answer in first.answer] == source_schema.dump(
            ordered[:26], many=True
        )
        after = models.position(first, 9)
        assert after == (ordered[9].created_at, ordered[9].id)
        rest = models.page(database, "t_001", 100, after)
        assert list(rest.id) == [s.id for s in ordered[10:]]
        assert models.page(database, "t_002", 100) == models.NO_ROWS
        assert models.count(database, "t_001") == 30
        assert models.count(database, "t_002") == 0


def test_answers_orjson_cannot_encode_are_still_json(api):
    config = {"big": 2**70, "small": -(2**64), "float": 1e16, "text": "é\u2028"}
    created = api.post({"key": "big", "name": "n", "sourceConfig": config})
    assert created.status_code == 201
    assert created.json["sourceConfig"] == config
    assert api.get().json["data"][0]["sourceConfig"] == config


# Answers kept by each worker (store.Answers), by source id and row version.


def page_reads(app, monkeypatch):
    """Whether each SELECT of sources that the app's database runs from now on
    writes answers (the database renders them as JSON: models.answer)."""
    database, seen = database_of(app), []
    run = database.execute_sql

    def spy(sql, params=None):
        if sql.startswith("SELECT") and "data_sources" in sql:
            seen.append("json_" in sql)
        return run(sql, params)

    monkeypatch.setattr(database, "execute_sql", spy)
    return seen


def edit_by_hand(app, key, bump, **fields):
    """Change a row behind the API's back, bumping its row version or not."""
    source, database = models.DataSource, database_of(app)
    if bump:
        fields["row_version"] = source.row_version + 1
    with database.connection_context(), source.bind_ctx(database):
        assert source.update(**fields).where(source.key == key).execute() == 1


def names(client):
    """The names the list answers, in its order."""
    return [source["name"] for source in client.get(API, headers=auth()).json["data"]]


def test_a_page_of_kept_answers_writes_none(api, app, monkeypatch):
    for key in "abc":
        assert api.post({"key": key, "name": key}).status_code == 201
    writes = page_reads(app, monkeypatch)
    first = api.get()
    assert writes == [False, True]  # none kept yet: the page is read again, with its answers
    assert api.get().get_data() == first.get_data()
    assert writes == [False, True, False]  # then one statement, and no answer written


def test_kept_answers_are_served_until_the_row_version_changes(api, app, client):
    for key in "abc":
        assert api.post({"key": key, "name": key}).status_code == 201
    assert names(client) == ["a", "b", "c"]
    edit_by_hand(app, "b", bump=False, name="unseen")
    assert names(client) == ["a", "b", "c"]
    edit_by_hand(app, "b", bump=True, name="seen")
    listed = api.get().json
    assert [source["name"] for source in listed["data"]] == ["a", "seen", "c"]
    assert listed["data"][1]["rowVersion"] == 2


def test_kept_answers_follow_every_write(api):
    for key in "abc":
        assert api.post({"key": key, "name": key}).status_code == 201
    first = api.get()
    assert api.get().get_data() == first.get_data()
    updated = api.put({"key": "b", "name": "B"}).json
    assert api.delete("c").status_code == 204
    assert api.post({"key": "d", "name": "d"}).status_code == 201
    listed = api.get().json
    assert [source["name"] for source in listed["data"]] == ["a", "B", "d"]
    assert listed["data"][1] == updated
    assert listed["pagination"]["total"] == 3


def test_a_budget_of_zero_keeps_no_answer(make_app, monkeypatch):
    app = make_app(DATASOURCES_ANSWER_CACHE_BYTES="0")
    client = app.test_client()
    assert client.post(API, json={"key": "a", "name": "a"}, headers=auth()).status_code == 201
    writes = page_reads(app, monkeypatch)
    assert names(client) == ["a"]
    edit_by_hand(app, "a", bump=False, name="edited")
    assert names(client) == ["edited"]
    edit_by_hand(app, "a", bump=False, name="again")
    assert names(client) == ["again"]
    assert writes == [True, True, True]  # each list writes its answers, in one statement


def test_kept_answers_stay_within_the_budget(make_app):
    app = make_app(DATASOURCES_ANSWER_CACHE_BYTES="2000")
    client, answers = app.test_client(), app.extensions["datasources"].answers
    for i in range(8):
        body = {"key": f"k{i}", "name": "n", "description": "x" * 200}
        assert client.post(API, json=body, headers=auth()).status_code == 201
    cursor, seen = None, []
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(API, query_string=query, headers=auth()).json
        seen += [source["key"] for source in page["data"]]
        assert 0 < answers.size <= answers.budget == 2000
        assert answers.size == sum(map(len, answers.kept.values()))
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"k{i}" for i in range(8)]
    client.get(API, query_string={"limit": 8}, headers=auth())  # past the whole budget
    assert answers.size <= 2000
