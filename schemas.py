"""Marshmallow schemas: every rule a request must meet, and the object's shape.

Field names are the reference's camelCase (`data_key`); models use snake_case.
"""

import datetime
import functools
import json
import re

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

SYNC_MODES = ("full_refresh", "incremental", "cdc")
STATUSES = ("draft", "active", "paused", "archived")
READ_ONLY = ("id", "tenantId", "createdAt", "updatedAt")
INT64_MAX = 2**63 - 1
MAX_DEPTH = 32

# Text no database may refuse: C0 controls but tab/newline/return, and the
# lone surrogates JSON's \u escapes can produce (neither UTF-8 nor PostgreSQL
# text can hold them).
UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def to_json(data):
    """JSON bytes in the given key order, whatever a host's JSON settings:
    orjson (a tenth of json's time on a page), or json for what orjson
    refuses (integers past 64 bits, which a sourceConfig may hold)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode()


def check_storable(value, depth=0):
    """Raise unless every string in `value`, keys included, can be stored."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"Nested deeper than {MAX_DEPTH} levels.")
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            raise ValidationError("Contains a control character or invalid Unicode.")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, depth + 1)
            check_storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_storable(item, depth + 1)


class Text(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        check_storable(text)
        return text


def canonical_numbers(value):
    """PostgreSQL's jsonb reads back `1e+16` as 10000000000000000 and `-0.0`
    as 0.0; store them so on every backend, and a write's answer equals
    every later read. (Floats from 1e16 up are whole numbers.)"""
    if isinstance(value, float):
        return int(value) if abs(value) >= 1e16 else value + 0.0
    if isinstance(value, dict):
        return {key: canonical_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [canonical_numbers(item) for item in value]
    return value


class JSONObject(fields.Dict):
    def _deserialize(self, value, attr, data, **kwargs):
        mapping = super()._deserialize(value, attr, data, **kwargs)
        check_storable(mapping)
        return canonical_numbers(mapping)


class UTCDateTime(fields.AwareDateTime):
    """Any ISO 8601 date-time (naive means UTC), kept as naive UTC to the
    millisecond; written back as `2026-03-16T02:00:00.000Z`."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=datetime.UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(datetime.UTC)
        except OverflowError as exc:
            raise ValidationError("Out of the representable date range.") from exc
        micro = moment.microsecond - moment.microsecond % 1000
        return moment.replace(tzinfo=None, microsecond=micro)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else format_time(value)


def format_time(moment):
    return f"{moment.isoformat(timespec='milliseconds')}Z"


def count(**kwargs):
    return fields.Integer(strict=True, validate=validate.Range(0, INT64_MAX), **kwargs)


class DataSourceSchema(Schema):
    """The data source object, as read and as created (POST)."""

    id = fields.String(dump_only=True)
    tenant_id = fields.String(data_key="tenantId", dump_only=True)
    key = Text(required=True, validate=validate.Length(1, 255))
    name = Text(required=True, validate=validate.Length(1, 255))
    description = Text(load_default="")
    connector_key = Text(data_key="connectorKey", load_default="")
    source_config = JSONObject(data_key="sourceConfig", load_default=dict)
    file_format = Text(data_key="fileFormat", allow_none=True, load_default=None)
    sync_mode = fields.String(
        data_key="syncMode", validate=validate.OneOf(SYNC_MODES), load_default="full_refresh"
    )
    schedule = JSONObject(load_default=dict)
    schema_key = Text(data_key="schemaKey", allow_none=True, load_default=None)
    status = fields.String(validate=validate.OneOf(STATUSES), load_default="draft")
    last_sync_at = UTCDateTime(data_key="lastSyncAt", allow_none=True, load_default=None)
    last_sync_status = Text(data_key="lastSyncStatus", allow_none=True, load_default=None)
    record_count = count(data_key="recordCount", load_default=0)
    row_version = fields.Integer(data_key="rowVersion", dump_only=True)
    created_at = UTCDateTime(data_key="createdAt", dump_only=True)
    updated_at = UTCDateTime(data_key="updatedAt", dump_only=True)

    read_only = READ_ONLY + ("rowVersion",)

    @pre_load
    def drop_read_only(self, data, **kwargs):
        """What a client read back may be sent back: read-only fields are ignored."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in self.read_only}
        return data


class DataSourceUpdateSchema(DataSourceSchema):
    """PUT: `key` names the source; every other field is optional and only
    the fields given change. `rowVersion` asks for optimistic concurrency."""

    row_version = fields.Integer(
        data_key="rowVersion", strict=True, validate=validate.Range(-INT64_MAX, INT64_MAX)
    )
    read_only = READ_ONLY


class Digits(fields.Integer):
    """A query integer in ASCII digits only: `int()` would also take " 5",
    "+5", "1_0" and other scripts' digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class ListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = Digits(load_default=25, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(1, 512))


class DeleteQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    key = Text(  # storable text: `?key=%00` would be a database error
        required=True,
        validate=validate.Length(1, 255),
        error_messages={"required": "Missing key query parameter."},
    )


source_schema = DataSourceSchema()
sources_schema = DataSourceSchema(many=True)
update_source_schema = DataSourceUpdateSchema(
    partial=("name",) + tuple(name for name in DataSourceSchema._declared_fields if name != "key")
)
list_query_schema = ListQuerySchema()
delete_query_schema = DeleteQuerySchema()


def time_text(value):
    """`format_time` of a datetime, or of SQLite's text of one
    (`2026-03-16 02:00:00.123456`), without parsing it."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            return f"{value[:10]}T{value[11:23]}Z"
        value = datetime.datetime.fromisoformat(value)
    return format_time(value)


def json_object(value):
    """A JSON object as a dict, or as its JSON text, which is sent unparsed."""
    return orjson.Fragment(value) if isinstance(value, str) else dict(value)


def dumper(schema, columns=None):
    """`schema.dump`, several times faster, of a mapping of attribute names (a
    model's `__data__`) or, given `columns`, of a database row of the schema's
    attributes in its order, whose text and integers the driver has already
    typed. The schema still decides every key, its order and its type; a field
    of a type not listed here is serialised by the field itself.
    tests/test_fast_dump.py proves it equal to `schema.dump`."""
    plan = []
    for name, field in schema.dump_fields.items():
        if isinstance(field, UTCDateTime):
            convert = time_text
        elif isinstance(field, fields.String):
            convert = str
        elif isinstance(field, fields.Integer) and not field.as_string:
            convert = int
        elif type(field) in (fields.Dict, JSONObject) and not field.key_field:
            convert = json_object if not field.value_field else None
        else:
            convert = None
        if convert is None:
            convert = functools.partial(field._serialize, attr=name, obj=None)
        key = field.data_key if field.data_key is not None else name
        plan.append((key, field.attribute or name, convert))

    def dump(data):
        out = {}
        for key, attribute, convert in plan:
            value = data.get(attribute)
            out[key] = None if value is None else convert(value)
        return out

    if columns is None:
        return dump
    if list(columns) != [attribute for _, attribute, _ in plan]:
        raise ValueError(f"columns {columns!r} are not the schema's attributes in its order")
    keys = [key for key, _, _ in plan]
    typed = [
        (i, key, convert) for i, (key, _, convert) in enumerate(plan) if convert not in (str, int)
    ]

    def dump_row(row):
        out = dict(zip(keys, row, strict=True))
        for i, key, convert in typed:
            if row[i] is not None:
                out[key] = convert(row[i])
        return out

    return dump_row


dump_source = dumper(source_schema)
