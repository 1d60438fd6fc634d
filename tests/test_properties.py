"""Hypothesis properties schemathesis cannot see, on SQLite and PostgreSQL:
any valid object round-trips exactly, and any sequence of creates, updates
and deletes from one client leaves the database equal to a model of them."""

import datetime

import hypothesis
from conftest import API, REFERENCE_DEFAULTS, auth, empty_tables, rows
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from datasources import connectors, vault
from datasources.schemas import INT64_MAX, STATUSES, SYNC_MODES
from datasources.settings import Settings

SETTINGS = hypothesis.settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEADERS = auth()
SERVER_MADE = ("id", "tenantId", "rowVersion", "createdAt", "updatedAt", "secrets")
CATALOG = connectors.load(Settings())

# Storable text: no C0 control character but tab, newline and return; no lone surrogate.
UNSTORABLE = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"]
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters=UNSTORABLE))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
moments = st.datetimes(
    min_value=datetime.datetime(2, 1, 1),
    max_value=datetime.datetime(9998, 12, 31),
    timezones=st.none() | st.timezones() | st.just(datetime.UTC),
)
# Manual runs only, or a standard cron expression in an IANA zone (schedules.py).
schedules = st.just({}) | st.fixed_dictionaries(
    {"cron": st.sampled_from(["0 2 * * *", "*/15 * * * *", "30 1 * * MON-FRI", "0 0 1 JAN *"])},
    optional={"timezone": st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"])},
)
FIELDS = {
    "name": text.filter(lambda s: 0 < len(s) <= 255),
    "description": text,
    "connectorKey": text,
    "sourceConfig": st.dictionaries(text, json_values, max_size=4),
    "fileFormat": st.none() | text,
    "syncMode": st.sampled_from(SYNC_MODES),
    "schedule": schedules,
    "schemaKey": st.none() | text,
    "status": st.sampled_from(STATUSES),
    "lastSyncAt": st.none() | moments.map(datetime.datetime.isoformat),
    "lastSyncStatus": st.none() | text,
    # JSON Schema's integer: written with a fraction too (37310.0), read as that whole number.
    "recordCount": st.integers(0, INT64_MAX) | st.integers(0, 2**53).map(float),
}
DEFAULTS = REFERENCE_DEFAULTS
keys = text.filter(lambda s: 0 < len(s) <= 255)
some_fields = st.fixed_dictionaries({}, optional=FIELDS)
objects = st.fixed_dictionaries(
    {"key": keys, "name": FIELDS["name"]}, optional={k: v for k, v in FIELDS.items() if k != "name"}
)


def utc_millis(value):
    """`lastSyncAt` as the API writes it: UTC, milliseconds, `Z` (naive means UTC)."""
    if value is None:
        return None
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    moment = moment.astimezone(datetime.UTC)
    return (
        f"{moment.year:04d}-"
        + moment.strftime("%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


def expected(sent):
    """What the API must return for the fields a client sent."""
    fields = {**DEFAULTS, **sent}
    fields["lastSyncAt"] = utc_millis(fields["lastSyncAt"])
    fields["recordCount"] = int(fields["recordCount"])
    return masked(fields)


def masked(fields):
    """`fields` with their config's secrets answered masked."""
    config = fields["sourceConfig"] = vault.copy(fields["sourceConfig"])
    for place in CATALOG.secret_pointers(fields["connectorKey"], config):
        vault.put(config, place, vault.MASK)
    return fields


def same_json(sent, got):
    """Equal as JSON values: same types, a float equal to the number read back."""
    if isinstance(sent, bool) or sent is None or isinstance(sent, str):
        return type(sent) is type(got) and sent == got
    if isinstance(sent, float):
        return isinstance(got, int | float) and not isinstance(got, bool) and float(got) == sent
    if isinstance(sent, int):
        return type(got) is int and sent == got
    if isinstance(sent, list):
        return isinstance(got, list) and len(sent) == len(got) and all(map(same_json, sent, got))
    return (
        isinstance(got, dict)
        and sent.keys() == got.keys()
        and all(same_json(value, got[key]) for key, value in sent.items())
    )


def assert_holds(want, body):
    client_fields = {k: v for k, v in body.items() if k not in SERVER_MADE}
    differ = {
        k: (v, client_fields.get(k))
        for k, v in want.items()
        if not same_json(v, client_fields.get(k))
    }
    assert want.keys() == client_fields.keys() and not differ, differ


def test_any_valid_object_round_trips(app, client):
    @SETTINGS
    @given(sent=objects)
    def round_trip(sent):
        empty_tables(app)
        created = client.post(API, json=sent, headers=HEADERS)
        assert created.status_code == 201, created.get_json()
        assert_holds(expected(sent), created.get_json())
        [listed] = client.get(API, headers=HEADERS).get_json()["data"]
        assert listed == created.get_json()

    round_trip()


# What a date-time may hold besides its digits; any other character, anywhere, is a 400.
DATE_TIME_SYNTAX = set("0123456789-:T .,Z+tz")


def test_a_date_time_with_any_other_character_is_refused(app, client):
    @SETTINGS
    @given(
        moment=moments.map(datetime.datetime.isoformat),
        char=st.characters(exclude_characters=DATE_TIME_SYNTAX),
        data=st.data(),
    )
    def refused(moment, char, data):
        at = data.draw(st.integers(0, len(moment)))
        sent = {"key": "k", "name": "n", "lastSyncAt": moment[:at] + char + moment[at:]}
        response = client.post(API, json=sent, headers=HEADERS)
        assert response.status_code == 400, (sent, response.get_json())
        assert list(response.get_json()["errors"]) == ["lastSyncAt"]

    refused()
    assert rows(app) == []


def test_read_only_fields_sent_back_change_nothing(app, client):
    @SETTINGS
    @given(sent=objects, changes=some_fields)
    def send_back(sent, changes):
        empty_tables(app)
        first = client.post(API, json=sent, headers=HEADERS).get_json()
        updated = client.put(API, json={**first, **changes}, headers=HEADERS)
        assert updated.status_code == 200, updated.get_json()
        body = updated.get_json()
        assert_holds(expected({**sent, **changes}), body)
        assert {k: body[k] for k in ("id", "tenantId", "createdAt")} == {
            k: first[k] for k in ("id", "tenantId", "createdAt")
        }
        assert body["rowVersion"] == 2

    send_back()


class OneClient(RuleBasedStateMachine):
    """Creates, updates (with a current, a stale or no rowVersion) and deletes
    on a few keys; the model is a dict of what each live source must hold."""

    app = client = None  # set by the test

    def __init__(self):
        super().__init__()
        empty_tables(self.app)
        self.model = {}  # key -> (fields, rowVersion), in creation order

    @rule(key=st.sampled_from("abc"), fields=objects)
    def create(self, key, fields):
        fields = {**fields, "key": key}
        response = self.client.post(API, json=fields, headers=HEADERS)
        if key in self.model:
            assert response.status_code == 409
            return
        assert response.status_code == 201, response.get_json()
        self.model[key] = (expected(fields), 1)

    @rule(key=st.sampled_from("abc"), changes=some_fields, version=st.sampled_from([None, 0, -1]))
    def update(self, key, changes, version):
        """`version`: none sent, the current one (0) or a stale one (-1)."""
        body = {"key": key, **changes}
        if key in self.model and version is not None:
            body["rowVersion"] = self.model[key][1] + version
        response = self.client.put(API, json=body, headers=HEADERS)
        if key not in self.model:
            assert response.status_code == 404
            return
        fields, row_version = self.model[key]
        if version == -1:
            assert response.status_code == 409
            assert_holds(fields, response.get_json()["current"])
            return
        assert response.status_code == 200, response.get_json()
        fields = {**fields, **changes, "lastSyncAt": fields["lastSyncAt"]}
        if "lastSyncAt" in changes:
            fields["lastSyncAt"] = utc_millis(changes["lastSyncAt"])
        fields = masked(fields)  # a change may bring a secret
        self.model[key] = (fields, row_version + 1)
        assert_holds(fields, response.get_json())

    @rule(key=st.sampled_from("abc"))
    def delete(self, key):
        response = self.client.delete(API, query_string={"key": key}, headers=HEADERS)
        assert response.status_code == (204 if self.model.pop(key, None) else 404)

    @invariant()
    def the_database_equals_the_model(self):
        listed, cursor = [], None
        while True:
            query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = self.client.get(API, query_string=query, headers=HEADERS).get_json()
            listed += page["data"]
            assert page["pagination"]["total"] == len(self.model)
            cursor = page["pagination"]["nextCursor"]
            if cursor is None:
                break
        assert [source["key"] for source in listed] == list(self.model)
        for source in listed:
            fields, row_version = self.model[source["key"]]
            assert source["rowVersion"] == row_version
            assert_holds(fields, source)
        stored = rows(self.app)
        assert sorted(row["key"] for row in stored) == sorted(self.model)


def test_any_sequence_leaves_the_database_equal_to_the_model(app, client):
    OneClient.app, OneClient.client = app, client
    run_state_machine_as_test(
        OneClient,
        settings=hypothesis.settings(SETTINGS, max_examples=15, stateful_step_count=12),
    )
