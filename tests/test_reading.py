"""One source by key (GET <prefix>/<key>) and HTTP preconditions (RFC 9110):
ETag on every answer that holds one source, If-None-Match on the single
GET, If-Match on PUT and DELETE, DELETE ?rowVersion=, and
DATASOURCES_REQUIRE_PRECONDITION."""

import concurrent.futures
import functools
import json
import threading
import urllib.parse

import pytest
import requests
from conftest import API, auth, problem, rows
from servers import Gunicorn

ODD_KEYS = [
    "a/b",
    "/leading",
    "trailing/",
    "double//slash",
    "100%",
    "%2F-literally",
    "what?",
    "hash#tag",
    "with space",
    "naïve-ключ-鍵",
    "+plus&amp=eq",
    "..",
    ".",
]


def item(key):
    """The key's path, percent-encoded: `/` too, and dots, which clients
    would otherwise resolve as `.` and `..` segments."""
    return f"{API}/{urllib.parse.quote(key, safe='').replace('.', '%2E')}"


def etag(source):
    return f'"{source["id"]}.{source["rowVersion"]}"'


@pytest.fixture
def source(api):
    created = api.post({"key": "crm", "name": "CRM", "status": "active"})
    assert created.status_code == 201
    return created.json


def test_single_get_answers_the_source_as_the_list_shows_it(api, client, source):
    got = client.get(item("crm"), headers=api.headers)
    assert got.status_code == 200
    assert got.mimetype == "application/json"
    assert got.json == source == api.get().json["data"][0]
    assert got.headers["ETag"] == etag(source)
    assert client.head(item("crm"), headers=api.headers).status_code == 200


def test_single_get_of_a_key_the_tenant_does_not_have_is_a_404(api, client, source):
    other = api.as_("t_002", "editor")
    assert other.post({"key": "theirs", "name": "n"}).status_code == 201
    for key in ("nope", "theirs", "x" * 256, "nul\x00", "CRM"):
        problem(client.get(item(key), headers=api.headers), 404)
    problem(client.get(item("crm"), headers=other.headers), 404)


@pytest.mark.parametrize("key", ODD_KEYS)
def test_every_key_post_accepts_reads_back_by_its_path(api, client, key):
    created = api.post({"key": key, "name": "n"})
    assert created.status_code == 201
    got = client.get(item(key), headers=api.headers)
    assert got.status_code == 200, got.data
    assert got.json == created.json


def test_odd_keys_read_back_through_gunicorn(database_url):
    secret = "reading-secret-" + "r" * 40
    env = {"DATASOURCES_DATABASE_URL": database_url, "DATASOURCES_JWT_SECRET": secret}
    with Gunicorn(env, workers=1) as server:
        headers = auth("t_001", "editor", secret=secret)
        for key in ODD_KEYS:
            created = requests.post(
                server.url + API, json={"key": key, "name": "n"}, headers=headers
            )
            assert created.status_code == 201, created.text
            got = requests.get(server.url + item(key), headers=headers)
            assert got.status_code == 200, (key, got.text)
            assert got.json() == created.json()
        assert "Traceback" not in server.log()


def test_a_path_that_is_not_utf8_names_no_source(api, client):
    assert api.post({"key": "\ufffd", "name": "n"}).status_code == 201
    raw = {"PATH_INFO": f"{API}/\xff"}  # as gunicorn passes `%FF`: one byte, as latin-1
    problem(client.get(f"{API}/x", headers=api.headers, environ_overrides=raw), 404)
    assert client.get(f"{API}/%EF%BF%BD", headers=api.headers).json["key"] == "\ufffd"


def test_put_and_delete_on_a_source_path_are_405_allowing_get(api, client, source):
    for method in ("PUT", "DELETE", "POST", "PATCH"):
        response = client.open(item("crm"), method=method, headers=api.headers)
        problem(response, 405)
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    options = client.options(item("crm"))
    assert (options.status_code, options.headers["Allow"]) == (204, "GET, HEAD, OPTIONS")
    assert options.data == b""
    assert [row["key"] for row in rows(client.application)] == ["crm"]


def test_if_none_match_gives_304_with_the_tag_and_no_body(api, client, source):
    tag = etag(source)
    for given in (tag, f'"other", {tag}', f"W/{tag}", "*"):
        got = client.get(item("crm"), headers={**api.headers, "If-None-Match": given})
        assert got.status_code == 304, given
        assert got.data == b""
        assert got.headers["ETag"] == tag
        assert "Content-Type" not in got.headers
    changed = api.put({"key": "crm", "name": "renamed"})
    got = client.get(item("crm"), headers={**api.headers, "If-None-Match": tag})
    assert got.status_code == 200
    assert got.json["name"] == "renamed"
    assert got.headers["ETag"] == etag(changed.json) != tag


def test_post_and_put_answers_carry_the_etag(api, source):
    assert source["rowVersion"] == 1
    updated = api.put({"key": "crm", "name": "again"})
    assert updated.headers["ETag"] == etag(updated.json)
    assert updated.json["rowVersion"] == 2


def test_put_with_a_matching_if_match_writes(api, source):
    for given in (etag(source), f'"ds_00000000000000000000.1", {etag(source)}', "*"):
        current = api.get().json["data"][0]
        tag = etag(current) if given != "*" else "*"
        given = given.replace(etag(source), tag)
        updated = api.put({"key": "crm", "name": f"n{given[:3]}"}, headers={"If-Match": given})
        assert updated.status_code == 200, updated.json
        assert updated.json["rowVersion"] == current["rowVersion"] + 1


@pytest.mark.parametrize(
    "given",
    ['"999"', '"ds_00000000000000000000.1"', "W/{tag}", '"{id}.2"', "garbage", '""', '"", "x"'],
)
def test_put_with_an_if_match_that_does_not_match_is_a_412_and_changes_nothing(
    api, client, source, given
):
    given = given.format(tag=etag(source), id=source["id"])
    before = rows(client.application)
    refused = api.put({"key": "crm", "name": "lost"}, headers={"If-Match": given})
    body = problem(refused, 412)
    assert body["type"] == "urn:datasources:precondition-failed"
    assert body["current"] == source
    assert rows(client.application) == before


def test_an_old_tag_never_matches_a_source_created_again_under_its_key(api, source):
    assert api.delete("crm").status_code == 204
    again = api.post({"key": "crm", "name": "CRM"}).json
    assert again["rowVersion"] == source["rowVersion"] and again["id"] != source["id"]
    refused = api.put({"key": "crm", "name": "x"}, headers={"If-Match": etag(source)})
    assert problem(refused, 412)["current"] == again


def test_put_with_if_match_and_row_version_needs_both(api, client, source):
    tag = etag(source)
    stale = api.put({"key": "crm", "name": "x", "rowVersion": 7}, headers={"If-Match": tag})
    assert problem(stale, 409)["type"] == "urn:datasources:concurrency-conflict"
    assert problem(stale, 409)["current"] == source
    wrong_tag = api.put(
        {"key": "crm", "name": "x", "rowVersion": 1}, headers={"If-Match": '"ds_x.1"'}
    )
    assert problem(wrong_tag, 412)["current"] == source
    both = api.put({"key": "crm", "name": "x", "rowVersion": 1}, headers={"If-Match": tag})
    assert both.status_code == 200
    assert both.json["rowVersion"] == 2


def test_if_match_on_a_missing_source_is_a_404(api):
    # RFC 9110 13.2.1: preconditions are ignored where the answer without them is not a 2xx.
    for given in ('"ds_00000000000000000000.1"', "*"):
        problem(api.put({"key": "none", "name": "x"}, headers={"If-Match": given}), 404)
        response = api.delete("none", {"If-Match": given})
        problem(response, 404)


def test_too_many_tags_in_if_match_is_a_400_naming_it(api, source):
    tags = ", ".join(f'"ds_{i:020d}.1"' for i in range(9))
    refused = api.put({"key": "crm", "name": "x"}, headers={"If-Match": tags})
    assert problem(refused, 400, "If-Match")["errors"]["If-Match"] == ["At most 8 entity tags."]


def test_delete_with_if_match(api, client, source):
    refused = api.delete("crm", {"If-Match": '"ds_00000000000000000000.1"'})
    assert problem(refused, 412)["current"] == source
    assert len(rows(client.application)) == 1
    deleted = api.delete("crm", {"If-Match": etag(source)})
    assert deleted.status_code == 204
    assert rows(client.application) == []
    assert rows(client.application, "datasources_tenant_counts")[0]["sources"] == 0


def test_delete_with_row_version(api, client, source):
    stale = client.delete(API, query_string={"key": "crm", "rowVersion": "2"}, headers=api.headers)
    body = problem(stale, 409)
    assert body["current"] == source
    assert len(rows(client.application)) == 1
    for bad in ("-1", "1.0", "x", ""):
        query = {"key": "crm", "rowVersion": bad}
        problem(client.delete(API, query_string=query, headers=api.headers), 400, "rowVersion")
    query = {"key": "crm", "rowVersion": "1"}
    assert client.delete(API, query_string=query, headers=api.headers).status_code == 204
    assert rows(client.application) == []


def test_require_precondition_makes_unconditional_writes_a_428(make_app):
    app = make_app(DATASOURCES_REQUIRE_PRECONDITION="true")
    client, headers = app.test_client(), auth("t_001", "editor")
    created = client.post(API, json={"key": "k", "name": "n"}, headers=headers)
    assert created.status_code == 201
    before = rows(app)
    body = problem(client.put(API, json={"key": "k", "name": "x"}, headers=headers), 428)
    assert body["title"] == "Precondition required"
    problem(client.delete(API, query_string={"key": "k"}, headers=headers), 428)
    assert rows(app) == before
    tag = created.headers["ETag"]
    with_tag = client.put(API, json={"key": "k", "name": "x"}, headers={**headers, "If-Match": tag})
    assert with_tag.status_code == 200
    with_version = client.put(API, json={"key": "k", "name": "y", "rowVersion": 2}, headers=headers)
    assert with_version.status_code == 200
    query = {"key": "k", "rowVersion": "3"}
    assert client.delete(API, query_string=query, headers=headers).status_code == 204


def at_once(*calls):
    """The calls' results, the calls started together on threads of their own."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(run, call) for call in calls]]


@pytest.mark.parametrize("backend", ["postgres"])
def test_conditional_delete_races_an_update_across_two_servers(database_url):
    """Two gunicorn servers on one PostgreSQL database: a DELETE with the
    source's tag and an UPDATE with its rowVersion, at once, many times;
    exactly one wins each time, and nothing is half-done."""
    secret = "race-secret-" + "r" * 40
    env = {"DATASOURCES_DATABASE_URL": database_url, "DATASOURCES_JWT_SECRET": secret}
    headers = auth("t_001", "editor", secret=secret)
    with Gunicorn(env, workers=2) as first, Gunicorn(env, workers=2) as second:
        outcomes = []
        for i in range(40):
            key = f"race-{i}"
            created = requests.post(
                first.url + API, json={"key": key, "name": "n"}, headers=headers
            ).json()
            delete = functools.partial(
                requests.delete,
                first.url + API,
                params={"key": key},
                headers={**headers, "If-Match": etag(created)},
            )
            body = {"key": key, "name": "won", "rowVersion": 1}
            update = functools.partial(requests.put, second.url + API, json=body, headers=headers)
            deleted, updated = at_once(delete, update)
            results = {"delete": deleted.status_code, "update": updated.status_code}
            outcomes.append((results["delete"], results["update"]))
            stored = requests.get(second.url + item(key), headers=headers)
            if results["delete"] == 204:
                assert results["update"] in (404, 409), results
                assert stored.status_code == 404
            else:
                assert (results["delete"], results["update"]) == (412, 200), results
                assert stored.json()["name"] == "won"
                assert stored.json()["rowVersion"] == 2
        listed = requests.get(first.url + API, params={"limit": 100}, headers=headers).json()
        assert listed["pagination"]["total"] == len(listed["data"])
        assert "Traceback" not in first.log() + second.log()
    assert {outcome[0] for outcome in outcomes} <= {204, 412}


def test_answers_are_json_and_tags_are_quoted(api, client, source):
    got = client.get(item("crm"), headers=api.headers)
    assert json.loads(got.data)["key"] == "crm"
    assert got.headers["ETag"].startswith('"ds_') and got.headers["ETag"].endswith('.1"')
