"""List filters and search: each alone and combined, their totals (kept
counters through inserts, updates and deletes), paging with a cursor bound
to its filters, and the 400s of bad or unknown parameters."""

import collections
import datetime
import itertools
import operator
import time

import pytest
from conftest import problem, rows
from playhouse.migrations import Runner

from datasources import connections, models

STATUSES = ("draft", "active", "paused", "archived")
MODES = ("full_refresh", "incremental", "cdc")
CONNECTORS = ("files", "stream", "")


def seed(api, count=24):
    """`count` sources cycling through statuses, sync modes and connectors;
    the sources as created, oldest first."""
    created = []
    mix = itertools.cycle(itertools.product(STATUSES, MODES, CONNECTORS))
    for i in range(count):
        status, mode, connector = next(mix)
        body = {
            "key": f"src-{i:02d}",
            "name": ("Customer export" if i % 3 == 0 else "Orders feed") + f" #{i}",
            "status": status,
            "syncMode": mode,
            "connectorKey": connector,
            "schemaKey": "crm_raw" if i % 4 == 0 else None,
            "fileFormat": "csv" if i % 5 == 0 else None,
        }
        response = api.post(body)
        assert response.status_code == 201, response.json
        created.append(response.json)
    return created


def listed(api, query):
    response = api.get(f"?limit=100&{query}" if query else "?limit=100")
    assert response.status_code == 200, response.json
    return response.json


def expect(sources, **rule):
    keep = []
    for source in sources:
        if all(test(source) for test in rule.values()):
            keep.append(source)
    return keep


@pytest.fixture
def sources(api):
    return seed(api)


CASES = {
    "key=src-03": {"key": lambda s: s["key"] == "src-03"},
    "status=active": {"status": lambda s: s["status"] == "active"},
    "status=paused,draft": {"status": lambda s: s["status"] in ("paused", "draft")},
    "status=paused,paused": {"status": lambda s: s["status"] == "paused"},
    "syncMode=cdc": {"mode": lambda s: s["syncMode"] == "cdc"},
    "syncMode=cdc,incremental": {"mode": lambda s: s["syncMode"] != "full_refresh"},
    "connectorKey=files": {"connector": lambda s: s["connectorKey"] == "files"},
    "connectorKey=": {"connector": lambda s: s["connectorKey"] == ""},
    "schemaKey=crm_raw": {"schema": lambda s: s["schemaKey"] == "crm_raw"},
    "fileFormat=csv": {"format": lambda s: s["fileFormat"] == "csv"},
    "q=customer": {"q": lambda s: "customer" in s["name"].lower()},
    "q=CUSTOMER%20EXPORT%20%2312": {"q": lambda s: s["name"] == "Customer export #12"},
    "q=src-1": {"q": lambda s: "src-1" in s["key"]},
    "q=%231": {"q": lambda s: "#1" in s["name"]},
    "q=%25": {"q": lambda s: "%" in s["key"] + s["name"]},
    "q=_": {"q": lambda s: "_" in s["key"] + s["name"]},
    "q=nothing-like-it": {"q": lambda s: False},
    "status=active&connectorKey=stream": {
        "status": lambda s: s["status"] == "active",
        "connector": lambda s: s["connectorKey"] == "stream",
    },
    "fileFormat=csv&status=draft,paused": {
        "format": lambda s: s["fileFormat"] == "csv",
        "status": lambda s: s["status"] in ("draft", "paused"),
    },
    "syncMode=incremental,cdc&status=active&connectorKey=&fileFormat=csv": {
        "mode": lambda s: s["syncMode"] != "full_refresh",
        "status": lambda s: s["status"] == "active",
        "connector": lambda s: s["connectorKey"] == "",
        "format": lambda s: s["fileFormat"] == "csv",
    },
    "status=paused,paused&syncMode=cdc": {
        "status": lambda s: s["status"] == "paused",
        "mode": lambda s: s["syncMode"] == "cdc",
    },
    "status=draft,active&syncMode=cdc&q=orders": {
        "status": lambda s: s["status"] in ("draft", "active"),
        "mode": lambda s: s["syncMode"] == "cdc",
        "q": lambda s: "orders" in s["name"].lower(),
    },
}


@pytest.mark.parametrize("query", list(CASES))
def test_each_filter_lists_exactly_what_matches_with_its_total(api, sources, query):
    expected = expect(sources, **CASES[query])
    answer = listed(api, query)
    assert [s["key"] for s in answer["data"]] == [s["key"] for s in expected]
    assert answer["data"] == expected
    assert answer["pagination"]["total"] == len(expected)


def test_updated_after_is_strictly_after_to_the_millisecond(api, sources):
    time.sleep(0.005)
    changed = api.put({"key": "src-05", "name": "changed"}).json
    assert listed(api, f"updatedAfter={changed['updatedAt']}")["data"] == []
    before = datetime.datetime.fromisoformat(changed["updatedAt"].replace("Z", "+00:00"))
    earlier = (before - datetime.timedelta(milliseconds=1)).isoformat().replace("+00:00", "Z")
    answer = listed(api, f"updatedAfter={earlier}")
    assert [s["key"] for s in answer["data"]] == ["src-05"]
    assert answer["pagination"]["total"] == 1
    everything = listed(api, "updatedAfter=2000-01-01T00:00:00%2B02:00")
    assert everything["pagination"]["total"] == len(sources)


def test_totals_follow_updates_and_deletes(api, client, sources):
    active = len(expect(sources, s=lambda s: s["status"] == "active"))
    assert listed(api, "status=active")["pagination"]["total"] == active
    paused = [s for s in sources if s["status"] == "paused"]
    for source in paused[:3]:
        assert api.put({"key": source["key"], "status": "active"}).status_code == 200
    assert api.put({"key": sources[1]["key"], "name": "renamed only"}).status_code == 200
    current = api.get(f"/{sources[2]['key']}").get_json()
    same = {k: current[k] for k in ("key", "status", "syncMode", "connectorKey")}
    assert api.put(same).status_code == 200  # the counted values sent back as they are
    assert api.delete(paused[3]["key"]).status_code == 204
    assert listed(api, "status=active")["pagination"]["total"] == active + 3
    assert listed(api, "status=paused")["pagination"]["total"] == len(paused) - 4
    assert listed(api, "status=active,paused")["pagination"]["total"] == active + len(paused) - 1
    combination = operator.itemgetter("status", "sync_mode", "connector_key", "file_format")
    counted = {
        combination(row): row["sources"]
        for row in rows(client.application, "datasources_combination_counts")
        if row["tenant_id"] == "t_001" and row["sources"]
    }
    stored = collections.Counter(
        combination({**row, "file_format": row["file_format"] or ""})
        for row in rows(client.application)
    )
    assert counted == stored


COMBINATION = "status, sync_mode, connector_key, COALESCE(file_format, '')"
INSERT = (
    "INSERT INTO data_sources (id, tenant_id, key, name, description, connector_key, "
    "source_config, sync_mode, schedule, status, file_format, record_count, row_version, "
    "created_at, updated_at) VALUES ({})"
)
TENANT_COUNTS = (
    "INSERT INTO datasources_tenant_counts (tenant_id, sources) "
    "SELECT tenant_id, COUNT(*) FROM data_sources GROUP BY tenant_id"
)


def counts_agree(database, table, grouped):
    """Whether the counter table holds, for each tenant, the rows' GROUP BY
    `grouped` (leaving out counters at zero)."""
    counted = database.execute_sql(
        f"SELECT * FROM {table} WHERE sources <> 0 ORDER BY 1, 2, 3, 4"
    ).fetchall()
    sql = f"SELECT tenant_id, {grouped}, COUNT(*) FROM data_sources GROUP BY tenant_id, {grouped}"
    return sorted(counted) == sorted(database.execute_sql(sql).fetchall()) != []


def test_0005_counts_by_combination_and_tenant_in_triggers_and_down_undoes_it(
    fresh_database_url,
):
    database = connections.connect_url(fresh_database_url)
    mix = itertools.product(("t_a", "t_b"), STATUSES, MODES, CONNECTORS, ("csv", None))
    moment = datetime.datetime(2026, 3, 1, 12)
    insert = INSERT.format(", ".join([database.param] * 15))
    with database.connection_context():
        runner = Runner(database, models.MIGRATIONS, table_name=models.MIGRATION_TABLE)
        runner.up(target="0004_lighter_writes")
        for i, (tenant, status, mode, connector, file_format) in enumerate(mix):
            for copy in range(1 + i % 3):
                key = f"s-{i}-{copy}"
                values = (f"ds_{key}", tenant, key, key, "", connector, "{}", mode, "{}", status)
                database.execute_sql(insert, (*values, file_format, 0, 1, moment, moment))
        database.execute_sql(TENANT_COUNTS)  # as the store kept them before 0005
        assert runner.up(target="0005_counters_by_trigger") == ["0005_counters_by_trigger"]
        assert counts_agree(database, "datasources_combination_counts", COMBINATION)
        database.execute_sql(
            "UPDATE data_sources SET status = 'paused' WHERE key LIKE " + database.param, ("s-1%",)
        )
        database.execute_sql(
            "UPDATE data_sources SET file_format = NULL WHERE key LIKE " + database.param, ("s-2%",)
        )
        database.execute_sql("DELETE FROM data_sources WHERE key LIKE " + database.param, ("s-3%",))
        assert counts_agree(database, "datasources_combination_counts", COMBINATION)
        tenants = "SELECT tenant_id, COUNT(*) FROM data_sources GROUP BY 1"
        counted = "SELECT tenant_id, sources FROM datasources_tenant_counts"
        assert sorted(database.execute_sql(counted)) == sorted(database.execute_sql(tenants))
        assert runner.down() == ["0005_counters_by_trigger"]
        for facet in ("status", "sync_mode", "connector_key"):
            counted = database.execute_sql(
                "SELECT tenant_id, value, sources FROM datasources_facet_counts "
                f"WHERE facet = '{facet}' AND sources <> 0"
            ).fetchall()
            grouped = f"SELECT tenant_id, {facet}, COUNT(*) FROM data_sources GROUP BY 1, 2"
            assert sorted(counted) == sorted(database.execute_sql(grouped).fetchall())
        database.execute_sql("DELETE FROM data_sources WHERE key LIKE " + database.param, ("s-4%",))
        assert runner.up(target="0005_counters_by_trigger") == ["0005_counters_by_trigger"]
        assert counts_agree(database, "datasources_combination_counts", COMBINATION)
    database.close()


OPTIONAL = ("schema_key", "file_format")
INDEX_SQL = {
    "sqlite": "SELECT sql FROM sqlite_master WHERE name = ?",
    "postgres": "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
}


def test_0006_indexes_schema_key_and_file_format_only_where_set(fresh_database_url, backend):
    database = connections.connect_url(fresh_database_url)
    with database.connection_context():
        runner = Runner(database, models.MIGRATIONS, table_name=models.MIGRATION_TABLE)
        runner.up(target="0005_counters_by_trigger")

        def definitions():
            found = {}
            for column in OPTIONAL:
                name = f"data_sources_tenant_{column}"
                (found[column],) = database.execute_sql(INDEX_SQL[backend], (name,)).fetchone()
            return found

        assert not any("NOT NULL" in sql for sql in definitions().values())
        assert runner.up() == ["0006_optional_columns_indexed_when_set"]
        for column, sql in definitions().items():
            assert sql.endswith(
                f"WHERE {column} IS NOT NULL"
                if backend == "sqlite"
                else f"WHERE ({column} IS NOT NULL)"
            ), sql
        if backend == "postgres":  # a few rows: the planner would rather scan the table
            database.execute_sql("SET enable_seqscan = off")
        for column, value in (("schema_key", "crm_raw"), ("file_format", "csv")):
            sql, params = models.PAGES[True, True, ((column, 0),)].sql(
                database,
                tenant="t_001",
                limit=26,
                after_time=None,
                after_id=None,
                **{column: value},
            )
            explain = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
            plan = " ".join(str(row) for row in database.execute_sql(explain + sql, params))
            assert f"data_sources_tenant_{column}" in plan, plan
        assert runner.down() == ["0006_optional_columns_indexed_when_set"]
        assert not any("NOT NULL" in sql for sql in definitions().values())
    database.close()


def test_search_follows_renames_and_deletes(api, sources):
    assert api.put({"key": "src-01", "name": "Zebra crossing"}).status_code == 200
    assert [s["key"] for s in listed(api, "q=zebra")["data"]] == ["src-01"]
    assert listed(api, "q=orders%20feed%20%231")["data"][0]["key"] != "src-01"
    assert api.delete("src-01").status_code == 204
    assert listed(api, "q=zebra")["pagination"]["total"] == 0


def test_filters_never_cross_tenants(api, sources):
    other = api.as_("t_002")
    assert other.post({"key": "src-03", "name": "Customer export"}).status_code == 201
    theirs = other.get("?q=customer&status=draft")
    assert [s["tenantId"] for s in theirs.json["data"]] == ["t_002"]
    assert theirs.json["pagination"]["total"] == 1
    assert listed(api, "key=src-03")["data"][0]["tenantId"] == "t_001"


def test_pages_of_a_filtered_list_follow_the_cursor(api, sources):
    expected = [s["key"] for s in sources if s["status"] in ("active", "paused")]
    seen, query = [], "?limit=4&status=active,paused"
    while True:
        page = api.get(query).json
        assert page["pagination"]["total"] == len(expected)
        seen += [s["key"] for s in page["data"]]
        if not page["pagination"]["hasMore"]:
            break
        query = f"?limit=4&status=active,paused&cursor={page['pagination']['nextCursor']}"
    assert seen == expected


def test_a_cursor_is_bound_to_its_filters(api, sources):
    cursor = api.get("?limit=2&status=active").json["pagination"]["nextCursor"]
    same_filters = api.get(f"?limit=2&status=active&cursor={cursor}")
    assert same_filters.status_code == 200
    for other in ("status=paused", "status=active,paused", "", "status=active&q=customer"):
        refused = api.get(f"?limit=2&{other}&cursor={cursor}")
        assert problem(refused, 400, "cursor")["errors"]["cursor"][0].startswith(
            "Not a valid cursor"
        )
    unfiltered = api.get("?limit=2").json["pagination"]["nextCursor"]
    problem(api.get(f"?limit=2&status=active&cursor={unfiltered}"), 400, "cursor")


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=running", "status"),
        ("status=active,", "status"),
        ("status=", "status"),
        ("syncMode=FULL_REFRESH", "syncMode"),
        ("q=", "q"),
        ("q=" + "x" * 101, "q"),
        ("q=%00", "q"),
        ("key=", "key"),
        ("key=" + "k" * 256, "key"),
        ("schemaKey=", "schemaKey"),
        ("fileFormat=", "fileFormat"),
        ("connectorKey=%01", "connectorKey"),
        ("updatedAfter=yesterday", "updatedAfter"),
        ("updatedAfter=2026-13-01T00:00:00Z", "updatedAfter"),
        ("statuz=active", "statuz"),
        ("Status=active", "Status"),
        ("status=active&status=paused", "status"),
    ],
)
def test_bad_or_unknown_filters_are_400s_naming_the_parameter(api, sources, query, field):
    problem(api.get(f"?{query}"), 400, field)


def test_an_unknown_parameter_on_delete_is_a_400_and_deletes_nothing(api, client, sources):
    response = client.delete(
        "/api/v1/data-sources", query_string={"key": "src-00", "force": "1"}, headers=api.headers
    )
    problem(response, 400, "force")
    assert len(rows(client.application)) == len(sources)
