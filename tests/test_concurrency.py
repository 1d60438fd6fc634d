"""Concurrency through the real server: gunicorn with several workers, many
client threads, on SQLite and PostgreSQL. The database decides every race."""

import collections
import concurrent.futures
import threading

import pytest
import requests
from conftest import API, SECRET, auth
from servers import Gunicorn

TIMEOUT = 30


@pytest.fixture
def server(database_url):
    env = {"DATASOURCES_DATABASE_URL": database_url, "DATASOURCES_JWT_SECRET": SECRET}
    with Gunicorn(env, workers=3) as running:
        yield running


def run_together(count, work):
    """Call work(i) for i in range(count) on `count` threads released at once;
    their results in order."""
    barrier = threading.Barrier(count)

    def start(i):
        barrier.wait()
        return work(i)

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(start, range(count)))


def listing(session, url):
    """Every source of tenant t_001, paging through the API."""
    found, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = session.get(url, params=params, timeout=TIMEOUT).json()
        found += page["data"]
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            return found, page["pagination"]["total"]


def test_racing_creates_of_one_key_give_one_201_and_409s(server):
    url, headers = server.url + API, auth()

    def create(i):
        body = {"key": f"key-{i // 4}", "name": f"racer {i}"}  # 4 racers per key
        return body["key"], requests.post(url, json=body, headers=headers, timeout=TIMEOUT)

    by_key = collections.defaultdict(list)
    for key, response in run_together(32, create):
        assert response.status_code in (201, 409), response.text
        if response.status_code == 409:
            assert response.headers["Content-Type"] == "application/problem+json"
        by_key[key].append(response.status_code)
    assert {key: sorted(codes) for key, codes in by_key.items()} == {
        f"key-{k}": [201, 409, 409, 409] for k in range(8)
    }
    session = requests.Session()
    session.headers.update(headers)
    found, total = listing(session, url)
    assert sorted(s["key"] for s in found) == [f"key-{k}" for k in range(8)] and total == 8


def test_writers_with_row_version_lose_no_update(server):
    """Each writer adds 1 to recordCount by read-modify-write with rowVersion,
    retrying on 409 from the conflict's `current`: the sum is exact."""
    url, headers = server.url + API, auth()
    created = requests.post(url, json={"key": "shared", "name": "n"}, headers=headers).json()
    writers, increments = 6, 10

    def write(i):
        session, current, conflicts = requests.Session(), created, 0
        session.headers.update(headers)
        for _ in range(increments):
            while True:
                body = {
                    "key": "shared",
                    "recordCount": current["recordCount"] + 1,
                    "rowVersion": current["rowVersion"],
                }
                response = session.put(url, json=body, timeout=TIMEOUT)
                if response.status_code == 200:
                    current = response.json()
                    break
                assert response.status_code == 409, response.text
                assert response.json()["detail"] == "rowVersion mismatch."
                current, conflicts = response.json()["current"], conflicts + 1
        return conflicts

    conflicts = run_together(writers, write)
    [final] = requests.get(url, headers=headers, timeout=TIMEOUT).json()["data"]
    assert final["recordCount"] == writers * increments
    assert final["rowVersion"] == 1 + writers * increments
    assert sum(conflicts) > 0  # the writers did race


def test_many_writers_on_one_sqlite_file_never_see_database_is_locked(tmp_path):
    env = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'ds.db'}",
        "DATASOURCES_JWT_SECRET": SECRET,
    }
    with Gunicorn(env, workers=3) as server:
        url, headers = server.url + API, auth()

        def write(i):
            session = requests.Session()
            session.headers.update(headers)
            codes = []
            for n in range(15):
                key = f"w{i}-{n}"
                codes.append(session.post(url, json={"key": key, "name": key}).status_code)
                body = {"key": key, "name": "renamed", "rowVersion": 1}
                codes.append(session.put(url, json=body, timeout=TIMEOUT).status_code)
                if n % 3 == 0:
                    codes.append(session.delete(url, params={"key": key}).status_code)
            return codes

        codes = [code for codes in run_together(8, write) for code in codes]
        log = server.log()
    assert collections.Counter(codes) == {201: 120, 200: 120, 204: 40}
    assert "database is locked" not in log and "database unavailable" not in log


def test_an_update_without_row_version_racing_delete_and_create_is_200_or_404(server):
    """Without rowVersion there is no version to conflict with: a source
    deleted and created again around the update gives 200 or 404, never 409."""
    url, headers = server.url + API, auth()

    def work(i):
        session, codes = requests.Session(), collections.Counter()
        session.headers.update(headers)
        for n in range(40):
            if i % 2:
                codes[session.delete(url, params={"key": "flip"}, timeout=TIMEOUT).status_code] += 1
                body = {"key": "flip", "name": "n"}
                codes[session.post(url, json=body, timeout=TIMEOUT).status_code] += 1
            else:
                body = {"key": "flip", "description": f"{i}-{n}"}
                codes[("put", session.put(url, json=body, timeout=TIMEOUT).status_code)] += 1
        return codes

    codes = sum(run_together(8, work), collections.Counter())
    assert set(codes) <= {204, 404, 201, 409, ("put", 200), ("put", 404)}, codes
    assert codes[("put", 200)] > 0 and codes[("put", 404)] > 0  # the race did happen
