"""Hostile query strings and cursors: a cursor we did not sign for this
tenant, a list or delete parameter out of its strict form, is a 400 naming
it and changes nothing; plain encodings still work, and every valid tenant
pages to its end. (Plainer cases live in test_api.py.)"""

import hashlib

import hostile
import pytest
from conftest import API, SECRET, auth, problem
from itsdangerous import Signer

seeded, shared, shared_app = hostile.seeded, hostile.shared, hostile.shared_app  # fixtures

# Cursors.


def signed_cursor(position, tenant="t_001", secret=SECRET, salt=None, digest=hashlib.sha256):
    salt = salt or f"datasources-cursor:{tenant}"
    return Signer(secret, salt=salt, digest_method=digest).sign(position).decode()


JAN_1 = "1767225600000000"  # 2026-01-01T00:00:00 in µs since 1970
FORGED = {
    "garbage": "garbage",
    "dot": ".",
    "unsigned": f"{JAN_1}.ds_x",
    "unsigned-prefix": f"{JAN_1}.ds_x.",
    "other-secret": signed_cursor(f"{JAN_1}.ds_x", secret="x" * 40),
    "other-salt": signed_cursor(f"{JAN_1}.ds_x", salt="other"),
    "other-digest": signed_cursor(f"{JAN_1}.ds_x", digest=hashlib.sha1),
    "other-tenant": signed_cursor(f"{JAN_1}.ds_x", tenant="t_002"),
    "tenant-prefix": signed_cursor(f"{JAN_1}.ds_x", tenant="t_00"),
    "too-long": "a" * 5000,
    "non-ascii": "ÿÿÿ.ÿÿÿ",
    "nul": "abc\x00def",
    "no-id": signed_cursor(JAN_1),
    "empty-id": signed_cursor(f"{JAN_1}."),
    "no-time": signed_cursor(".ds_x"),
    "time-garbage": signed_cursor("yesterday.ds_x"),
    "time-iso": signed_cursor("2026-01-01T00:00:00.ds_x"),
    "time-plus": signed_cursor(f"+{JAN_1}.ds_x"),
    "time-space": signed_cursor(f" {JAN_1}.ds_x"),
    "time-arabic-digits": signed_cursor("١٧٦٧٢٢٥٦٠٠.ds_x"),
    "time-out-of-range": signed_cursor("99999999999999999999.ds_x"),
    "time-too-long": signed_cursor("1" * 30 + ".ds_x"),
    "id-too-long": signed_cursor(f"{JAN_1}.ds_" + "x" * 100),
    "id-nul": signed_cursor(f"{JAN_1}.ds_\x00"),
    "id-newline": signed_cursor(f"{JAN_1}.ds_\n"),
}


@pytest.mark.parametrize("cursor", list(FORGED.values()), ids=list(FORGED))
def test_bad_or_forged_cursors_are_400(seeded, cursor):
    response = seeded.client.get(API, query_string={"cursor": cursor}, headers=auth())
    assert list(problem(response, 400, "cursor")["errors"]) == ["cursor"]
    assert seeded.state() == seeded.before


def test_a_well_formed_cursor_signed_with_the_secret_pages(seeded):
    cursor = signed_cursor("946684800000000.a")  # 2000-01-01, before every source
    response = seeded.client.get(API, query_string={"cursor": cursor}, headers=auth())
    assert [s["key"] for s in response.get_json()["data"]] == ["crm"]


@pytest.mark.parametrize(
    "tenant",
    [
        "t" * 255,
        "".join(map(chr, range(0x4E00, 0x4E00 + 255))),
        "".join(map(chr, range(0x1F300, 0x1F3FF))),
    ],
    ids=["ascii-255", "cjk-255", "astral-255"],
)
def test_every_valid_tenant_can_page(client, tenant):
    for key in "abc":
        assert (
            client.post(API, json={"key": key, "name": key}, headers=auth(tenant)).status_code
            == 201
        )
    seen, cursor = [], None
    while True:
        query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get(API, query_string=query, headers=auth(tenant, "viewer"))
        assert page.status_code == 200, page.data
        seen += [s["key"] for s in page.get_json()["data"]]
        cursor = page.get_json()["pagination"]["nextCursor"]
        if cursor is None:
            break
    assert seen == ["a", "b", "c"]


# Query values.


@pytest.mark.parametrize(
    "query, field",
    [
        ("?limit=", "limit"),
        ("?limit=%20", "limit"),
        ("?limit=%205", "limit"),
        ("?limit=5%20", "limit"),
        ("?limit=%2B5", "limit"),
        ("?limit=1_0", "limit"),
        ("?limit=%D9%A5", "limit"),  # ARABIC-INDIC DIGIT FIVE
        ("?limit=%EF%BC%95", "limit"),  # FULLWIDTH DIGIT FIVE
        ("?limit=0x10", "limit"),
        ("?limit=1e1", "limit"),
        ("?limit=5.0", "limit"),
        ("?limit=-0", "limit"),
        ("?limit=NaN", "limit"),
        ("?limit=%00", "limit"),
        ("?limit=%FF", "limit"),
        ("?limit=" + "9" * 5000, "limit"),
        ("?limit=99999999999999999999999", "limit"),
        ("?limit=5&limit=6", "limit"),
        ("?limit=5&limit=5", "limit"),
        ("?cursor=a&cursor=b", "cursor"),
        ("?cursor=%00", "cursor"),
        ("?x=1&y", "x"),  # unknown parameters: a typo never lists everything
        ("?x=1&x=2", "x"),
    ],
)
def test_bad_list_query_values_are_400(shared, query, field):
    problem(shared.client.get(API + query, headers=auth()), 400, field)
    assert shared.state() == shared.before


@pytest.mark.parametrize("query, limit", [("?limit=%35", 5), ("?limit=007", 7)])
def test_plain_query_encodings_work(seeded, query, limit):
    response = seeded.client.get(API + query, headers=auth())
    assert response.status_code == 200 and response.get_json()["pagination"]["limit"] == limit


@pytest.mark.parametrize(
    "query, status",
    [
        ("?key=crm&key=theirs", 400),
        ("?key=theirs&key=crm", 400),
        ("?key=%00", 400),
        ("?key=crm%00", 400),
        ("?key=" + "k" * 256, 400),
        ("?key=%FF", 400),  # not UTF-8 once decoded: "%FF" is not what was sent
        ("?key=%ED%A0%80", 400),
        ("?key=crm%0D%0ASet-Cookie:%20a=b", 404),
        ("?key=CRM", 404),
        ("?key=crm%20", 404),
        ("?KEY=crm", 400),
        ("?key[]=crm", 400),
    ],
)
def test_bad_delete_query_values(seeded, query, status):
    response = seeded.client.delete(API + query, headers=auth())
    body = problem(response, status, "key" if status == 400 else None)
    assert "Set-Cookie" not in response.headers
    assert "\n" not in body["detail"]
    assert seeded.state() == seeded.before
