"""Marshmallow schemas: every rule a request must meet, and the object's shape.

Field names are the reference's camelCase (`data_key`); models use snake_case.
"""

import datetime
import json
import re

import orjson
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from datasources.schedules import validate_schedule

SYNC_MODES = ("full_refresh", "incremental", "cdc")
STATUSES = ("draft", "active", "paused", "archived")
READ_ONLY = ("id", "tenantId", "createdAt", "updatedAt", "secrets")
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


# RFC 3339, or ISO 8601's calendar date and time in basic or extended form.
# Python's fromisoformat alone ignores characters (`02:00:00\x00Z`, `+00:00.5`
# are read as `02:00:00Z`): only what this grammar matches whole reaches it.
ISO_DATE_TIME = re.compile(
    r"[0-9]{4}-?[0-9]{2}-?[0-9]{2}[Tt ]"
    r"[0-9]{2}(?::?[0-9]{2}(?::?[0-9]{2}(?:[.,][0-9]+)?)?)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2}(?::?[0-9]{2}(?:\.[0-9]{1,6})?)?)?)?",
    re.ASCII,
)


class UTCDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time (naive means UTC), kept as naive UTC to the
    millisecond; written back as `2026-03-16T02:00:00.000Z`."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=datetime.UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not ISO_DATE_TIME.fullmatch(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        moment = super()._deserialize(value.upper(), attr, data, **kwargs)
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


class WholeNumber(fields.Integer):
    """JSON Schema's integer: a JSON number with no fraction, however it is
    written (`37310`, `37310.0`, `1e3`), read as an IEEE double when written
    with a fraction or an exponent. `1.5`, `"5"` and `true` are refused."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is float and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def count(**kwargs):
    return WholeNumber(validate=validate.Range(0, INT64_MAX), **kwargs)


class DataSourceSchema(Schema):
    """The data source object, as read and as created (POST)."""

    id = fields.String(dump_only=True)
    tenant_id = fields.String(data_key="tenantId", dump_only=True)
    key = Text(required=True, validate=validate.Length(1, 255))
    name = Text(required=True, validate=validate.Length(1, 255))
    description = Text(load_default="")
    # Identifiers, each indexed for list filters: 255 characters, as `key`.
    connector_key = Text(data_key="connectorKey", validate=validate.Length(0, 255), load_default="")
    source_config = JSONObject(data_key="sourceConfig", load_default=dict)
    file_format = Text(
        data_key="fileFormat", allow_none=True, validate=validate.Length(0, 255), load_default=None
    )
    sync_mode = fields.String(
        data_key="syncMode", validate=validate.OneOf(SYNC_MODES), load_default="full_refresh"
    )
    schedule = JSONObject(load_default=dict, validate=validate_schedule)
    schema_key = Text(
        data_key="schemaKey", allow_none=True, validate=validate.Length(0, 255), load_default=None
    )
    status = fields.String(validate=validate.OneOf(STATUSES), load_default="draft")
    last_sync_at = UTCDateTime(data_key="lastSyncAt", allow_none=True, load_default=None)
    last_sync_status = Text(data_key="lastSyncStatus", allow_none=True, load_default=None)
    record_count = count(data_key="recordCount", load_default=0)
    row_version = fields.Integer(data_key="rowVersion", dump_only=True)
    created_at = UTCDateTime(data_key="createdAt", dump_only=True)
    updated_at = UTCDateTime(data_key="updatedAt", dump_only=True)
    secrets = fields.Dict(dump_only=True)  # per secret's JSON Pointer: see vault.py

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

    row_version = WholeNumber(data_key="rowVersion", validate=validate.Range(-INT64_MAX, INT64_MAX))
    read_only = READ_ONLY


class Digits(fields.Integer):
    """A query integer in ASCII digits only: `int()` would also take " 5",
    "+5", "1_0" and other scripts' digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class AnyOf(fields.Field):
    """A query filter of one value of `choices` or several, comma-separated;
    loaded as a sorted tuple without repeats."""

    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        values = value.split(",")
        wrong = next((item for item in values if item not in self.choices), None)
        if wrong is not None:
            choices = ", ".join(self.choices)
            raise ValidationError(f"{wrong!r} is not one of {choices} (comma-separated).")
        return tuple(sorted(set(values)))


class ListQuerySchema(Schema):
    """The list's query: paging, then filters (combined with AND; see
    models.matching). A parameter it does not know is a 400: a typo must
    never list everything."""

    class Meta:
        unknown = RAISE

    limit = Digits(load_default=25, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(1, 512))
    key = Text(validate=validate.Length(1, 255))
    status = AnyOf(STATUSES)
    sync_mode = AnyOf(SYNC_MODES, data_key="syncMode")
    connector_key = Text(data_key="connectorKey", validate=validate.Length(0, 255))
    schema_key = Text(data_key="schemaKey", validate=validate.Length(1, 255))
    file_format = Text(data_key="fileFormat", validate=validate.Length(1, 255))
    q = Text(validate=validate.Length(1, 100))
    updated_after = UTCDateTime(data_key="updatedAfter")


class SourceQuerySchema(Schema):
    """The single GET's query."""

    class Meta:
        unknown = RAISE

    include_secrets = fields.Boolean(data_key="includeSecrets")


class DeleteQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    key = Text(  # storable text: `?key=%00` would be a database error
        required=True,
        validate=validate.Length(1, 255),
        error_messages={"required": "Missing key query parameter."},
    )
    row_version = Digits(data_key="rowVersion", validate=validate.Range(0, INT64_MAX))


source_schema = DataSourceSchema()
sources_schema = DataSourceSchema(many=True)
update_source_schema = DataSourceUpdateSchema(
    partial=("name",) + tuple(name for name in DataSourceSchema._declared_fields if name != "key")
)
list_query_schema = ListQuerySchema()
delete_query_schema = DeleteQuerySchema()
source_query_schema = SourceQuerySchema()


KINDS = (
    (UTCDateTime, "time"),
    (fields.Dict, "object"),
    (fields.String, "text"),
    (fields.Integer, "integer"),
)


def json_plan(schema):
    """How `schema` dumps an object, for the SQL that writes answers
    (models.answer): (key, attribute, kind) of each field, in order. A field
    whose dump would change what is stored (an integer as a string, a dict
    with typed keys or values) is refused: SQL would not change it."""
    plan = []
    for name, field in schema.dump_fields.items():
        kind = next((kind for cls, kind in KINDS if isinstance(field, cls)), None)
        converts = getattr(field, "as_string", False) or getattr(field, "value_field", None)
        key = field.data_key or name
        if kind is None or converts or getattr(field, "key_field", None) or not key.isidentifier():
            raise TypeError(f"{name}: no SQL writes this field")
        plan.append((key, field.attribute or name, kind))
    return plan
