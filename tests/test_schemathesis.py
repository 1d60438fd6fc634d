"""Schemathesis fuzzes the app in-process (WSGI) against its own OpenAPI
document, on SQLite and PostgreSQL, as an editor with a valid token.

Every check schemathesis has runs on every response: no 5xx, the status code
and body documented, positive data accepted, negative data rejected, and
create -> update/delete sequences through the document's links, and the
ignored-auth probes. A finding only the document's limits explain (see
Seen.inherent) is checked to be that, counted, and printed with `-s`.
"""

import collections
import re

import hypothesis
import pytest
import schemathesis
from conftest import auth, empty_tables
from hypothesis import HealthCheck, Phase
from marshmallow import ValidationError
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

from datasources import connectors, openapi
from datasources.schedules import check_schedule
from datasources.schemas import check_storable

EXAMPLES = 50
STATEFUL = hypothesis.settings(
    max_examples=25,
    stateful_step_count=8,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def node_id(request):
    """schemathesis 4.32's `from_fixture` reads `Node._nodeid`, which pytest 9 no longer has."""
    request.node._nodeid = request.node.nodeid


FREE_FORM = ("sourceConfig", "schedule")


def unstorable(value):
    """Whether schemas.JSONObject refuses `value` for what it holds (a string
    no database stores, nesting past 32), which its schema, free-form to
    stay non-recursive for generators, says only in words."""
    try:
        check_storable(value)
    except ValidationError:
        return True
    return False


def refused_by_connector(body):
    """Whether a known connector's schema refuses the body's config or file
    format: the document cannot tie sourceConfig's schema to connectorKey."""
    catalog = connectors.Catalog(connectors.read_folder(connectors.BUILT_IN))
    errors = catalog.check(
        body.get("connectorKey", ""),
        body.get("sourceConfig", {}),
        body.get("status", "draft"),
        body.get("fileFormat"),
    )
    return bool(errors)


class Seen:
    """What the API answered: every (method, status), so a run that never got
    past validation fails; the sources created and not deleted, by key, as
    last answered; the cursors it wrote; and each finding excused as
    inherent, by reason."""

    def __init__(self):
        self.answered, self.live, self.cursors = set(), {}, set()
        self.calls, self.excused = collections.Counter(), collections.Counter()

    def record(self, case, response):
        self.answered.add((case.method, response.status_code))
        self.calls[case.method] += 1
        if (case.method, response.status_code) in (("POST", 201), ("PUT", 200)):
            self.live[response.json()["key"]] = response.json()
        if case.method == "DELETE" and response.status_code == 204:
            self.live.pop(case.query["key"], None)
        if case.method == "GET" and response.status_code == 200 and case.path.endswith("sources"):
            self.cursors.add(response.json()["pagination"]["nextCursor"])

    def blames_the_generator(self, failure, case, response):
        reason = self.inherent(failure, case, response)
        if reason:
            self.excused[reason] += 1
        return reason is not None

    def inherent(self, failure, case, response):
        """Why a finding is no fault of the API, or None. A link's body fields
        are merged at random, so a PUT may name a key never created: only a
        404 for a live key is the API's fault. JSON Schema cannot say that a
        cursor must be one the API wrote (cursors are signed), nor which
        entity tags `If-Match` may name (the current version's), nor, without
        a recursive schema, what sourceConfig and schedule may hold inside;
        a PUT's connector check is of the source as it will be stored."""
        body = case.body if isinstance(case.body, dict) else {}
        stored = self.live.get(body.get("key")) if case.method == "PUT" else None
        if isinstance(failure, RejectedPositiveData) and response.status_code == 412:
            current = response.json()["current"]
            strong = re.findall(r'(?<!W/)"([^"]*)"', (case.headers or {}).get("If-Match", ""))
            issued = f"{current['id']}.{current['rowVersion']}" in strong
            return None if issued else "an If-Match naming no current version"
        if isinstance(failure, EnsureResourceAvailability):
            key = body.get("key", (case.query or {}).get("key"))
            return "a link named a key never created" if key not in self.live else None
        if isinstance(failure, RejectedPositiveData) and response.status_code == 400:
            cursor = (case.query or {}).get("cursor")
            reasons = {
                "a cursor the API did not write"
                if field == "cursor" and cursor not in self.cursors
                else "a value inside sourceConfig or schedule no database stores"
                if field in FREE_FORM and unstorable(body.get(field))
                else "a cron expression or zone that cannot run"
                if field == "schedule" and check_schedule(body.get("schedule"))
                else "a sourceConfig or fileFormat its connector's schema refuses"
                if field in ("sourceConfig", "fileFormat")
                and refused_by_connector({**(stored or {}), **body})
                else None
                for field in response.json().get("errors") or ["?"]
            }
            return None if None in reasons else " and ".join(sorted(reasons))
        return None

    def summary(self):
        return f"calls {dict(self.calls)}, excused {dict(self.excused)}"


@pytest.fixture
def seen():
    seen = Seen()
    yield seen
    print(f"\nschemathesis: {seen.summary()}")  # shown with -s


@pytest.fixture
def api_schema(app, seen):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.generation.update(max_examples=EXAMPLES, database="none")

    @schema.auth()
    class Editor:
        """An editor's token on each case, where the ignored-auth check's
        probes can take it away (a configured header would ride along)."""

        def get(self, case, context):
            return auth()["Authorization"]

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": data}

    @schema.hook
    def after_call(context, case, response):
        seen.record(case, response)

    @schema.hook
    def filter_failure(context, failure, case, response):
        return not seen.blames_the_generator(failure, case, response)

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case):
    case.call_and_validate()


def test_stateful_sequences_conform(app, api_schema, seen):
    # The connector catalog is read-only and has no links: in sequences it
    # would only take steps from the data sources' (its operations are fuzzed
    # one by one above).
    sources = api_schema.include(tag=openapi.TAG)

    class Workflow(sources.as_state_machine()):
        def setup(self):
            """Each sequence starts on empty tables, so Hypothesis can replay it."""
            empty_tables(app)
            seen.live.clear()

    Workflow.run(settings=STATEFUL)
    reached = {("POST", 201), ("GET", 200)}
    assert reached <= seen.answered, sorted(reached - seen.answered)
    # A PUT and a DELETE that found their source: written, or refused by a
    # generated If-Match or rowVersion (both are random in generated cases).
    for method, done in (("PUT", 200), ("DELETE", 204)):
        found = {(method, status) for status in (done, 409, 412)}
        assert found & seen.answered, sorted(seen.answered)


# What schemathesis and the property tests found, pinned as plain examples.


def test_a_delete_key_the_database_cannot_store_is_a_400(api):
    api.post({"key": "k", "name": "n"})
    response = api.delete("a\x00b")
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "key": ["Contains a control character or invalid Unicode."]
    }
    assert [source["key"] for source in api.get().get_json()["data"]] == ["k"]


def test_json_numbers_read_back_as_they_were_answered(api):
    config = {"big": 7.205759403792155e16, "huge": 1e300, "negzero": -0.0, "small": 1.5e-07}
    created = api.post({"key": "k", "name": "n", "sourceConfig": config}).get_json()
    [listed] = api.get().get_json()["data"]
    assert listed["sourceConfig"] == created["sourceConfig"]
    assert created["sourceConfig"] == {
        "big": 72057594037921552,
        "huge": int(1e300),
        "negzero": 0.0,
        "small": 1.5e-07,
    }
    assert [type(created["sourceConfig"][k]) for k in config] == [int, int, float, float]
    assert str(created["sourceConfig"]["negzero"]) == "0.0"


def test_integral_numbers_it_sent_are_whole_numbers(api):
    created = api.post({"key": "k", "name": "n", "recordCount": 37310.0})
    assert created.status_code == 201 and created.get_json()["recordCount"] == 37310
    stale = api.put({"key": "k", "rowVersion": -42393.0})
    assert stale.status_code == 409 and stale.get_json()["current"]["rowVersion"] == 1
    assert api.put({"key": "k", "rowVersion": 1.0}).get_json()["rowVersion"] == 2
