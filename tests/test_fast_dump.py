"""`schemas.dumper` (the fast path of every answer) equals marshmallow's dump
of the same source: same keys, same order, same values, same JSON bytes, from
a model's data or from a row of the list's page query."""

import datetime
import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields

import models
from schemas import (
    SYNC_MODES,
    UTCDateTime,
    dump_source,
    dumper,
    source_schema,
    sources_schema,
    time_text,
)

text = st.text(max_size=40)
maybe_text = st.none() | text
moments = st.datetimes(
    min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
sources = st.builds(
    models.DataSource,
    id=text,
    tenant_id=text,
    key=text,
    name=text,
    description=text,
    connector_key=text,
    source_config=st.dictionaries(text, json_values, max_size=4),
    file_format=maybe_text,
    sync_mode=st.sampled_from(SYNC_MODES),
    schedule=st.dictionaries(text, json_values, max_size=4),
    schema_key=maybe_text,
    status=text,
    last_sync_at=st.none() | moments,
    last_sync_status=maybe_text,
    record_count=st.integers(0, 2**63 - 1),
    row_version=st.integers(-(2**63), 2**63 - 1),
    created_at=moments,
    updated_at=moments,
)


@settings(max_examples=300, deadline=None)
@given(sources)
def test_fast_dump_equals_the_schema_dump(source):
    fast, slow = dump_source(source.__data__), source_schema.dump(source)
    assert list(fast) == list(slow)
    assert json.dumps(fast) == json.dumps(slow)


def test_a_page_dumps_to_the_same_json_bytes():
    moment = datetime.datetime(2026, 3, 1, 12, 0, 0, 999999)
    page = [
        models.DataSource(
            id=f"ds_{i}",
            tenant_id="t_001",
            key=f"k{i}",
            name="n",
            created_at=moment,
            updated_at=moment,
            source_config={"query": "SELECT 1", "n": [1, 2.5, None]},
        )
        for i in range(25)
    ]
    fast = [dump_source(source.__data__) for source in page]
    assert json.dumps(fast) == json.dumps(sources_schema.dump(page))
    assert fast[0]["createdAt"] == "2026-03-01T12:00:00.999Z"


def test_fields_it_does_not_know_are_serialised_by_the_field():
    class Other(Schema):
        amount = fields.Decimal(as_string=True)
        count = fields.Integer(as_string=True, data_key="countAsText")
        tags = fields.Dict(keys=fields.String(), values=fields.Integer())
        flag = fields.Boolean()
        when = UTCDateTime(data_key="at")
        missing = fields.String()

    data = {
        "amount": 1.5,
        "count": 7,
        "tags": {"a": "3"},
        "flag": 1,
        "when": datetime.datetime(2026, 1, 2, 3, 4, 5),
    }
    fast = dumper(Other())(data)
    assert fast == Other().dump(data) | {"missing": None}
    assert fast == {
        "amount": "1.5",
        "countAsText": "7",
        "tags": {"a": 3},
        "flag": True,
        "at": "2026-01-02T03:04:05.000Z",
        "missing": None,
    }


def as_sqlite_row(source):
    """The row SQLite's driver gives for `source`: JSON and times as text."""
    row = []
    for field in models.DataSource._meta.sorted_fields:
        value = source.__data__.get(field.name)
        if isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, datetime.datetime):
            value = str(value)  # sqlite3's adapter: `2026-03-16 02:00:00.123456`
        row.append(value)
    return tuple(row)


@settings(max_examples=300, deadline=None)
@given(sources)
def test_a_row_dumps_to_the_schema_dump(source):
    dump_row = dumper(source_schema, models.columns)
    fast, slow = dump_row(as_sqlite_row(source)), source_schema.dump(source)
    assert list(fast) == list(slow)
    assert json.loads(orjson.dumps(fast)) == json.loads(json.dumps(slow))


def test_time_text_reads_sqlite_text_and_datetimes():
    assert time_text("2026-03-16 02:00:00.123999") == "2026-03-16T02:00:00.123Z"
    assert time_text("2026-03-16 02:00:00") == "2026-03-16T02:00:00.000Z"
    assert time_text("0001-01-01 00:00:00.000001") == "0001-01-01T00:00:00.000Z"
    assert time_text(datetime.datetime(2026, 3, 16, 2, 0, 0, 999999)) == "2026-03-16T02:00:00.999Z"


def test_page_rows_dump_as_the_peewee_models_do(api, app):
    for i in range(30):
        config = {"i": i, "x": [1.5, None], "big": 2**70 + i, "text": "é\u2028", "n": {"a": []}}
        body = {"key": f"k{i}", "name": f"n{i}", "sourceConfig": config}
        body["lastSyncAt"] = None if i % 2 else "2026-03-16T02:00:00.123Z"
        body["schedule"] = {"cron": "0 * * * *", "tz": "UTC"} if i % 3 else {}
        assert api.post(body).status_code == 201
    source = models.DataSource
    in_order = source.select().where(source.tenant_id == "t_001")
    in_order = in_order.order_by(source.created_at, source.id)
    dump_row = dumper(source_schema, models.columns)
    with app.app_context(), models.db.connection_context():
        first = source.page("t_001", 26)
        assert len(first) == 26
        ordered = list(in_order)
        expected = source_schema.dump(ordered, many=True)
        assert json.loads(orjson.dumps([dump_row(row) for row in first])) == expected[:26]
        after = source.position(first[9])
        assert after == (ordered[9].created_at, ordered[9].id)
        rest = source.page("t_001", 100, after)
        assert json.loads(orjson.dumps([dump_row(row) for row in rest])) == expected[10:]
        assert models.TenantCount.of("t_001") == 30
        assert models.TenantCount.of("t_002") == 0


def test_answers_orjson_cannot_encode_are_still_json(api):
    config = {"big": 2**70, "small": -(2**64), "float": 1e16, "text": "é\u2028"}
    created = api.post({"key": "big", "name": "n", "sourceConfig": config})
    assert created.status_code == 201
    assert created.json["sourceConfig"] == config
    assert api.get().json["data"][0]["sourceConfig"] == config
