"""Load with nothing lost: the real server (gunicorn, several workers; on
PostgreSQL also two servers on one database, as two sidecars) under many
concurrent clients mixing list, create, update with and without rowVersion and
delete, racing on shared keys, while pagers walk the list. Afterwards the
database must hold exactly what the answers said.

Bounded by a request count, not a duration; each run prints its figures
(`pytest -s tests/test_load.py` shows them).
"""

import collections
import concurrent.futures
import random
import sqlite3
import threading
import time

import psycopg
import pytest
import requests
from conftest import API, SECRET, auth
from servers import Gunicorn

CLIENTS = 16  # threads sending requests at once
OPERATIONS = 120  # requests per client
TENANTS = ["t_load_a", "t_load_b"]
VERSIONED = [f"versioned-{n}" for n in range(4)]  # only ever updated with rowVersion
STABLE = [f"stable-{n}" for n in range(30)]  # never touched: every walk finds each once
HOT = [f"hot-{n}" for n in range(4)]  # created, updated, deleted by everyone at once
TIMEOUT = 30
EXPECTED = {
    "list": {200},
    "create": {201},
    "delete": {204},
    "update_versioned": {200, 409},
    "update_hot": {200, 404},
    "create_hot": {201, 409},
    "delete_hot": {204, 404},
}


class Tally:
    """What the clients saw, shared by their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = collections.Counter()
        self.unexpected = []
        self.created = collections.defaultdict(set)  # tenant -> own keys answered 201
        self.deleted = collections.defaultdict(set)  # tenant -> own keys answered 204
        self.versioned_200 = collections.Counter()  # (tenant, key) -> conditional 200s
        self.walk_errors = []

    def record(self, operation, response):
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code not in EXPECTED[operation]:
                self.unexpected.append((operation, response.status_code, response.text[:200]))


def client(number, urls, tally, stop):
    """One client's mixed operations, on one tenant, against the servers in turn."""
    rng = random.Random(number)
    tenant = TENANTS[number % len(TENANTS)]
    session = requests.Session()
    session.headers.update(auth(tenant))
    views = {}  # versioned key -> the object as this client last saw it
    own = []
    for step in range(OPERATIONS):
        url = urls[(number + step) % len(urls)] + API
        roll = rng.random()
        if roll < 0.15:
            operation, response = "list", session.get(url, params={"limit": rng.choice([5, 25])})
        elif roll < 0.35:
            key = f"own-{number}-{step}"
            operation, response = "create", session.post(url, json={"key": key, "name": key})
            if response.status_code == 201:
                own.append(key)
                with tally.lock:
                    tally.created[tenant].add(key)
        elif roll < 0.45 and own:
            key = own.pop(rng.randrange(len(own)))
            operation, response = "delete", session.delete(url, params={"key": key})
            if response.status_code == 204:
                with tally.lock:
                    tally.deleted[tenant].add(key)
        elif roll < 0.75:
            key = rng.choice(VERSIONED)
            seen = views.get(key) or {"recordCount": 0, "rowVersion": 1}
            body = {"key": key, "recordCount": seen["recordCount"] + 1}
            body["rowVersion"] = seen["rowVersion"]
            operation, response = "update_versioned", session.put(url, json=body)
            if response.status_code == 200:
                views[key] = response.json()
                with tally.lock:
                    tally.versioned_200[tenant, key] += 1
            elif response.status_code == 409:
                views[key] = response.json()["current"]
        elif roll < 0.85:
            body = {"key": rng.choice(HOT), "description": f"by {number} at {step}"}
            operation, response = "update_hot", session.put(url, json=body)
        elif roll < 0.95:
            key = rng.choice(HOT)
            operation, response = "create_hot", session.post(url, json={"key": key, "name": key})
        else:
            key = rng.choice(HOT)
            operation, response = "delete_hot", session.delete(url, params={"key": key})
        tally.record(operation, response)
    stop.set()


def walk(session, url, limit):
    """One walk through a tenant's list; its sources in order and the totals seen."""
    sources, totals, cursor = [], [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = session.get(url, params=params, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        page = response.json()
        sources += page["data"]
        totals.append(page["pagination"]["total"])
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            return sources, totals


def pager(urls, tally, stop):
    """Walks the list while the clients write: no source twice in a walk, every
    stable source exactly once. (A key may recur: a hot key deleted and created
    again during the walk is a new source, at the end of the list.)"""
    session, walks = requests.Session(), 0
    while not stop.is_set() or walks == 0:
        tenant = TENANTS[walks % len(TENANTS)]
        session.headers.update(auth(tenant))
        sources, _ = walk(session, urls[walks % len(urls)] + API, limit=10)
        ids = collections.Counter(source["id"] for source in sources)
        keys = collections.Counter(source["key"] for source in sources)
        repeated = [source_id for source_id, count in ids.items() if count > 1]
        missing = [key for key in STABLE if keys[key] != 1]
        if repeated or missing:
            tally.walk_errors.append((tenant, repeated, missing))
        walks += 1
    return walks


def seed(url):
    for tenant in TENANTS:
        session = requests.Session()
        session.headers.update(auth(tenant))
        for key in STABLE + VERSIONED:
            assert session.post(url + API, json={"key": key, "name": key}).status_code == 201


def run_load(urls, query):
    """Drive the servers at `urls`; check the database through `query(sql)`."""
    seed(urls[0])
    tally, stops = Tally(), [threading.Event() for _ in range(CLIENTS)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS + 2) as pool:
        pagers = [pool.submit(pager, urls, tally, stops[i]) for i in range(2)]
        clients = [pool.submit(client, i, urls, tally, stops[i]) for i in range(CLIENTS)]
        for future in clients:
            future.result()
        walks = sum(future.result() for future in pagers)
    duration = time.monotonic() - started

    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    lost = lost_updates(tally, query)
    requests_sent = sum(tally.statuses.values())
    print(
        f"\nload: {requests_sent} requests + {walks} list walks, {CLIENTS} clients, "
        f"{len(urls)} server(s), {duration:.1f} s, {requests_sent / duration:.0f} req/s, "
        f"5xx: {server_errors}, lost updates: {lost}, statuses: {dict(tally.statuses)}"
    )
    assert server_errors == 0 and tally.unexpected == []
    assert lost == 0
    assert tally.walk_errors == []
    assert query("SELECT tenant_id, key FROM data_sources GROUP BY 1, 2 HAVING count(*) > 1") == []
    for tenant in TENANTS:
        check_tenant(urls[0], query, tenant, tally)


def lost_updates(tally, query):
    """Conditional 200s not reflected in the stored rowVersion and recordCount."""
    lost = 0
    for tenant in TENANTS:
        rows = query(
            f"SELECT key, row_version, record_count FROM data_sources "
            f"WHERE tenant_id = '{tenant}' AND key LIKE 'versioned-%'"
        )
        for key, row_version, record_count in rows:
            successes = tally.versioned_200[tenant, key]
            lost += abs(1 + successes - row_version) + abs(successes - record_count)
    return lost


def check_tenant(url, query, tenant, tally):
    session = requests.Session()
    session.headers.update(auth(tenant))
    sources, totals = walk(session, url + API, limit=7)
    keys = [source["key"] for source in sources]
    stored = [key for (key,) in query(f"SELECT key FROM data_sources WHERE tenant_id = '{tenant}'")]
    [(counted,)] = query(
        f"SELECT sources FROM datasources_tenant_counts WHERE tenant_id = '{tenant}'"
    )
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(stored)
    assert set(totals) == {len(stored)} and counted == len(stored)
    alive = tally.created[tenant] - tally.deleted[tenant]
    assert alive == {key for key in keys if key.startswith("own-")}
    assert set(STABLE + VERSIONED) <= set(keys)


def querier(database_url):
    """`query(sql)` -> rows, straight from the database."""
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")

        def query(sql):
            with sqlite3.connect(path) as conn:
                return [tuple(row) for row in conn.execute(sql).fetchall()]

        return query

    def query(sql):
        with psycopg.connect(database_url) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]

    return query


def environment(database_url):
    return {"DATASOURCES_DATABASE_URL": database_url, "DATASOURCES_JWT_SECRET": SECRET}


def test_load_on_one_server(database_url):
    with Gunicorn(environment(database_url), workers=3) as server:
        run_load([server.url], querier(database_url))
        log = server.log()
    assert "Traceback" not in log and "database is locked" not in log


@pytest.mark.parametrize("backend", ["postgres"])
def test_load_on_two_servers_sharing_postgresql(database_url):
    env = environment(database_url)
    with Gunicorn(env, workers=2) as first, Gunicorn(env, workers=2) as second:
        run_load([first.url, second.url], querier(database_url))
