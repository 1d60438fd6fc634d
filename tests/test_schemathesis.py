"""Schemathesis fuzzes the app in-process (WSGI) against its own OpenAPI
document, on SQLite and PostgreSQL, as an editor with a valid token.

Every check schemathesis has runs on every response: no 5xx, the status code
and body documented, positive data accepted, negative data rejected, and
create -> update/delete sequences through the document's links.
"""

import hypothesis
import pytest
import schemathesis
from conftest import auth, empty_tables
from hypothesis import HealthCheck, Phase
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData

EXAMPLES = 50
STATEFUL = hypothesis.settings(
    max_examples=15,
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


class Seen:
    """What the API answered: every (method, status), so a run that never got
    past validation fails; the keys created and not deleted; the cursors it wrote."""

    def __init__(self):
        self.answered, self.live, self.cursors = set(), set(), set()

    def record(self, case, response):
        self.answered.add((case.method, response.status_code))
        if case.method == "POST" and response.status_code == 201:
            self.live.add(response.json()["key"])
        if case.method == "DELETE" and response.status_code == 204:
            self.live.discard(case.query["key"])
        if case.method == "GET" and response.status_code == 200:
            self.cursors.add(response.json()["pagination"]["nextCursor"])

    def blames_the_generator(self, failure, case, response):
        """A link's body fields are merged at random, so a PUT may name a key
        never created: only a 404 for a live key is the API's fault. And JSON
        Schema cannot say that a cursor must be one the API wrote (cursors are
        signed), nor that an integer must not be written as a float (`1.0`)."""
        if isinstance(failure, EnsureResourceAvailability):
            body = case.body if isinstance(case.body, dict) else {}
            return body.get("key", (case.query or {}).get("key")) not in self.live
        if isinstance(failure, RejectedPositiveData) and response.status_code == 400:
            body = case.body if isinstance(case.body, dict) else {}
            cursor = (case.query or {}).get("cursor")
            return all(
                (field == "cursor" and cursor not in self.cursors)
                or (isinstance(body.get(field), float) and body[field].is_integer())
                for field in response.json().get("errors") or ["?"]
            )
        return False


@pytest.fixture
def seen():
    return Seen()


@pytest.fixture
def api_schema(app, seen):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.update(headers=auth())
    schema.config.generation.update(max_examples=EXAMPLES, database="none")

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
    class Workflow(api_schema.as_state_machine()):
        def setup(self):
            """Each sequence starts on empty tables, so Hypothesis can replay it."""
            empty_tables(app)
            seen.live.clear()

    Workflow.run(settings=STATEFUL)
    reached = {("POST", 201), ("PUT", 200), ("DELETE", 204), ("GET", 200)}
    assert reached <= seen.answered, sorted(reached - seen.answered)


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
