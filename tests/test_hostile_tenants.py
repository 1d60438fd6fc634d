"""Hostile tenants: another tenant's key is a 404 exactly like a missing one,
free to create, never listed; a tenant named in the body, the query or a
header the configuration does not trust changes nothing."""

import json

import hostile
import pytest
from conftest import API, auth, problem

seeded = hostile.seeded  # fixtures

OPERATIONS = {
    "put": lambda c, key, h: c.put(API, json={"key": key, "name": "stolen"}, headers=h),
    "put-row-version": lambda c, key, h: c.put(API, json={"key": key, "rowVersion": 1}, headers=h),
    "put-stale-version": lambda c, key, h: c.put(
        API, json={"key": key, "rowVersion": 9}, headers=h
    ),
    "delete": lambda c, key, h: c.delete(API, query_string={"key": key}, headers=h),
}


@pytest.mark.parametrize("role", ["editor", "admin"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_another_tenants_key_is_a_404_like_a_missing_one(seeded, operation, role):
    headers = auth("t_002", role)
    foreign = OPERATIONS[operation](seeded.client, "crm", headers)
    missing = OPERATIONS[operation](seeded.client, "nope", headers)
    body, other = problem(foreign, 404), problem(missing, 404)
    assert body == {**other, "detail": other["detail"].replace("nope", "crm")}
    assert "current" not in body and "t_001" not in json.dumps(body)
    assert seeded.state() == seeded.before


def test_another_tenants_key_is_free_to_create_and_list_shows_only_your_own(seeded):
    client = seeded.client
    created = client.post(API, json={"key": "crm", "name": "mine"}, headers=auth("t_002"))
    assert created.status_code == 201 and created.get_json()["tenantId"] == "t_002"
    listed = client.get(API, headers=auth("t_002", "admin")).get_json()
    assert sorted(s["key"] for s in listed["data"]) == ["crm", "theirs"]
    assert listed["pagination"]["total"] == 2
    mine = client.get(API, headers=auth("t_001", "viewer")).get_json()
    assert [s["name"] for s in mine["data"]] == ["CRM"] and mine["pagination"]["total"] == 1


def test_tenant_id_in_the_body_or_query_is_ignored(seeded):
    client = seeded.client
    created = client.post(
        API, json={"key": "new", "name": "n", "tenantId": "t_002"}, headers=auth()
    )
    assert created.get_json()["tenantId"] == "t_001"
    updated = client.put(
        API, json={"key": "theirs", "tenantId": "t_002", "name": "x"}, headers=auth()
    )
    problem(updated, 404)
    listed = client.get(API, headers=auth()).get_json()
    assert sorted(s["key"] for s in listed["data"]) == ["crm", "new"]
    problem(client.get(API + "?tenantId=t_002", headers=auth()), 400, "tenantId")


def test_x_tenant_id_means_nothing_in_jwt_mode(seeded):
    client = seeded.client
    forged = {"X-Tenant-Id": "t_002", "X-Role": "admin", "X-User-Role": "admin"}
    problem(client.get(API, headers=forged), 401)
    problem(client.post(API, json={"key": "new", "name": "n"}, headers=forged), 401)
    headers = {**auth("t_001", "viewer"), **forged}
    listed = client.get(API, headers=headers).get_json()
    assert [s["key"] for s in listed["data"]] == ["crm"]
    problem(client.delete(API, query_string={"key": "theirs"}, headers=headers), 403)
    headers = {**auth("t_001", "editor"), **forged}
    problem(client.delete(API, query_string={"key": "theirs"}, headers=headers), 404)
    assert seeded.state() == seeded.before
