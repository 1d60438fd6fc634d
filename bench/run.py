"""The Data Sources API benchmark: the real service under gunicorn, driven by
wrk, against a bare Flask ceiling measured in the same run.

    .venv/bin/python bench/run.py                 # SQLite and PostgreSQL
    .venv/bin/python bench/run.py --backend sqlite --seconds 10 --rounds 3
    .venv/bin/python bench/run.py --scale         # 1,000 vs 1,000,000 sources
    .venv/bin/python bench/run.py --scale --backend sqlite --scale-sizes 1000,20000
    .venv/bin/python bench/run.py --soak 10       # 10-minute mixed-load leak check
    .venv/bin/python bench/run.py --backend sqlite --service-env DATASOURCES_ANSWER_CACHE_BYTES=0
    .venv/bin/python bench/run.py --backend sqlite --connection-close   # a connection per request
    .venv/bin/python bench/run.py --connection-close --service-args "-k sync --threads 1"
    .venv/bin/python bench/run.py --connection-close --ceiling-args "-k gthread --threads 2"

Service and ceiling runs alternate (C S1 C S2 ... C), and each scenario's
ratio is taken against the mean of the ceiling runs either side of it.
"""

import argparse
import os
import shlex
import statistics
import sys

import harness
from data import BenchDatabase, token

OUT = os.path.join(harness.BENCH, "out")
LIST_TENANT, WRITE_TENANT = "bench-list", "bench-write"
LIST_SIZE = 1000
API = "/api/v1/data-sources"
SCENARIOS = (
    "list_first",
    "list_deep",
    "list_status",
    "get_one",
    "create",
    "update_rv",
    "update_norv",
    "delete",
    "create_secrets",  # an S3 source with two secrets (issue 10: >= 0.7 of create)
    "update_config",  # a new S3 config without secrets, as update_secrets but for them
    "update_secrets",  # a new S3 config, one secret the same, one new (>= 0.7 of update)
)
# Bare Flask's fastest with a new connection per request: gthread pays for
# keep-alive it cannot use. `--threads 1`, or gunicorn runs gthread for sync.
SYNC = ("--worker-class", "sync", "--threads", "1")


class Bench:
    """One backend's run: a seeded database, the service and the ceiling."""

    def __init__(
        self,
        backend,
        seconds,
        gunicorn_args=(),
        service_env=None,
        service_args=(),
        ceiling_args=(),
        connection_close=False,
        scenarios=SCENARIOS,
    ):
        self.backend, self.seconds = backend, seconds
        self.connection_close, self.scenarios = connection_close, scenarios
        self.wrk_env = {"BENCH_CONNECTION_CLOSE": "1"} if connection_close else {}
        self.database = BenchDatabase(backend, OUT)
        self.database.seed(LIST_TENANT, [f"l-{i}" for i in range(LIST_SIZE)])
        self.database.seed(WRITE_TENANT, [f"u-{i}" for i in range(harness.CONNECTIONS)])
        self.deep_cursor = self.database.cursor_at(LIST_TENANT, LIST_SIZE - 30)
        self.list_token, self.write_token = token(LIST_TENANT, "viewer"), token(WRITE_TENANT)
        self.service = harness.Gunicorn(
            f"service-{backend}",
            "wsgi:app",
            {**self.database.env, **(service_env or {})},
            OUT,
            probe=API,
            headers={"Authorization": f"Bearer {self.list_token}"},
            extra=[*gunicorn_args, *service_args],
        )
        page_path = os.path.join(OUT, "ceiling-page.json")
        with open(page_path, "wb") as page:
            page.write(self.service.get(API, {"Authorization": f"Bearer {self.list_token}"}))
        self.page_bytes = os.path.getsize(page_path)
        self.ceiling = harness.Gunicorn(
            f"ceiling-{backend}",
            "ceiling:app",
            {"BENCH_CEILING_PAGE": page_path},
            OUT,
            pythonpath=harness.BENCH,
            extra=[*gunicorn_args, *(SYNC if connection_close else ()), *ceiling_args],
        )
        self.rss_start = {"service": self.service.rss_mib(), "ceiling": self.ceiling.rss_mib()}
        self.ceiling_rps = None

    def close(self):
        self.service.stop()
        self.ceiling.stop()
        self.database.drop()

    def run_ceiling(self, seconds=None):
        env = {"BENCH_TOKEN": self.list_token, "BENCH_PATH": API, **self.wrk_env}
        result = harness.wrk(self.ceiling, "list.lua", seconds or self.seconds, env)
        self.ceiling_rps = max(self.ceiling_rps or 0, result["rps"])  # the best seen: see delete
        return result

    def run_scenario(self, scenario, tag, seconds=None):
        env = {"BENCH_TOKEN": self.write_token, "BENCH_PATH": API, "BENCH_RUN": tag}
        env.update(self.wrk_env)
        script = "list.lua" if scenario == "get_one" else scenario.split("_")[0] + ".lua"
        if scenario.endswith("_secrets"):
            env["BENCH_SECRETS"] = "1"
        elif scenario == "update_config":
            env["BENCH_CONFIG"] = "1"
        if scenario == "list_first":
            env["BENCH_TOKEN"] = self.list_token
        elif scenario == "list_status":  # a quarter of the tenant (data.py's mix)
            env.update(BENCH_TOKEN=self.list_token, BENCH_PATH=f"{API}?status=active")
        elif scenario == "get_one":
            env.update(BENCH_TOKEN=self.list_token, BENCH_PATH=f"{API}/l-500")
        elif scenario == "list_deep":
            env.update(BENCH_TOKEN=self.list_token, BENCH_PATH=f"{API}?cursor={self.deep_cursor}")
        elif scenario == "update_rv":
            keys = [f"u-{i}" for i in range(harness.CONNECTIONS)]
            env["BENCH_VERSIONS"] = ",".join(map(str, self.database.versions(WRITE_TENANT, keys)))
        elif scenario == "delete":
            # Enough keys for a thread to delete a quarter of what the ceiling
            # could answer: gthread workers serve some connections far more.
            per_thread = int(self.ceiling_rps * (seconds or self.seconds) / 4) + 100
            keys = [
                f"d-{tag}-{t}-{n}"
                for t in range(harness.CONNECTIONS)
                for n in range(1, per_thread + 1)
            ]
            self.database.seed(WRITE_TENANT, keys)
        return harness.wrk(self.service, script, seconds or self.seconds, env)

    def measure(self, rounds):
        """Every scenario `rounds` times, each between two ceiling runs."""
        self.run_ceiling(2)
        self.run_scenario("list_first", "warm", 2)
        runs = {name: [] for name in self.scenarios}
        ceilings = [self.run_ceiling()]
        for number in range(rounds):
            for scenario in self.scenarios:
                result = self.run_scenario(scenario, f"r{number}{scenario}")
                ceilings.append(self.run_ceiling())
                result["ratio"] = result["rps"] / statistics.mean(
                    [ceilings[-2]["rps"], ceilings[-1]["rps"]]
                )
                runs[scenario].append(result)
                print(f"  {self.backend} round {number + 1} {scenario}: {line(result)}", flush=True)
        runs["ceiling"] = ceilings
        return runs


def line(result):
    ratio = f"  ratio {result['ratio']:.2f}" if "ratio" in result else ""
    return (
        f"{result['rps']:7.0f} req/s  p50 {result['p50_us'] / 1000:6.2f} ms  "
        f"p99 {result['p99_us'] / 1000:6.2f} ms  errors {result['error_count']}  "
        f"server CPU {result['cpu_ms']:.2f} ms/req{ratio}"
    )


def summarise(runs):
    """Per scenario: median req/s, ratio and p50 over rounds; worst p99; all errors."""
    rows = {}
    for name, results in runs.items():
        rows[name] = {
            "rps": statistics.median(r["rps"] for r in results),
            "ratio": statistics.median(r.get("ratio", 1.0) for r in results),
            "p50_ms": statistics.median(r["p50_us"] for r in results) / 1000,
            "p99_ms": max(r["p99_us"] for r in results) / 1000,
            "errors": sum(r["error_count"] for r in results),
            "requests": sum(r["requests"] for r in results),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in results),
        }
    return rows


def report(backend, rows, bench, rss_after):
    mode = "Connection: close on every request" if bench.connection_close else "keep-alive"
    print(f"\n### {backend}: 2 workers, 16 connections, {mode}, median of rounds\n")
    print(
        f"service {bench.service.worker_class}, ceiling {bench.ceiling.worker_class} "
        "(bare Flask serving the first list page's bytes; every ratio is to it)\n"
    )
    print(
        "| scenario | req/s | ratio to ceiling | p50 ms | p99 ms (worst) | p99/p50 | errors "
        "| server CPU ms/req |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in (*bench.scenarios, "ceiling"):
        row = rows[name]
        print(
            f"| {name} | {row['rps']:.0f} | {row['ratio']:.2f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['p99_ms'] / row['p50_ms']:.1f} | {row['errors']} | "
            f"{row['cpu_ms']:.2f} |"
        )
    print(f"\nceiling page: {bench.page_bytes} bytes")
    for who in ("service", "ceiling"):
        start = ", ".join(f"{m:.1f}" for m in bench.rss_start[who])
        after = ", ".join(f"{m:.1f}" for m in rss_after[who])
        print(f"{who} worker RSS MiB: after start-up [{start}], after load [{after}]")
    if backend == "sqlite":
        print("\ntargets (SQLite, issue 8):")
        for name in bench.scenarios:
            row = rows[name]
            floor = 0.45 if name.startswith("list") or name == "get_one" else 0.27
            checks = {
                f"ratio >= {floor}": row["ratio"] >= floor,
                "no errors": row["errors"] == 0,
                "p99 <= 3x p50": row["p99_ms"] <= 3 * row["p50_ms"],
            }
            verdict = ", ".join(f"{k}: {'ok' if ok else 'MISSED'}" for k, ok in checks.items())
            print(f"  {name}: {verdict}")
    print("\nsecrets (issue 10: >= 0.7 of the plain write, same run):")
    pairs = [("create_secrets", "create"), ("update_secrets", "update_config")]
    for name, plain in pairs + [("update_secrets", "update_norv")]:
        if name not in rows or plain not in rows:
            continue
        share = rows[name]["rps"] / rows[plain]["rps"]
        print(f"  {name} / {plain}: {share:.2f} {'ok' if share >= 0.7 else 'MISSED'}")


def scenario_list(parser, text):
    """The scenarios named in `text`, comma-separated; a usage error for any
    that is not one of SCENARIOS."""
    scenarios = tuple(text.split(","))
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return scenarios


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", action="store_true", help="1,000 vs 1,000,000 sources")
    parser.add_argument(
        "--scale-sizes",
        default="1000,1000000",
        help="--scale's tenant sizes, comma-separated, e.g. 1000,20000 for a quick try",
    )
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="mixed-load leak check")
    parser.add_argument(
        "--gunicorn-args",
        default="",
        help="extra flags for both servers, e.g. '-k sync --threads 1'",
    )
    parser.add_argument(
        "--service-args",
        default="",
        help="extra flags for the service only, after --gunicorn-args, e.g. '--threads 4'",
    )
    parser.add_argument(
        "--ceiling-args",
        default="",
        help="extra flags for the ceiling only, after the sync flags of --connection-close",
    )
    parser.add_argument(
        "--connection-close",
        action="store_true",
        help="'Connection: close' on every request; the ceiling then runs sync workers",
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the service only, e.g. DATASOURCES_ANSWER_CACHE_BYTES=0",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="a comma-separated subset, e.g. create,delete for a quick A/B",
    )
    args = parser.parse_args()
    scenarios = scenario_list(parser, args.scenarios)
    service_env = dict(pair.split("=", 1) for pair in args.service_env)
    harness.require_wrk()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    if args.scale:
        import scale

        return scale.main(backends, OUT, [int(size) for size in args.scale_sizes.split(",")])
    if args.soak:
        import soak

        return soak.main(backends[0], args.soak, OUT)
    for backend in backends:
        bench = Bench(
            backend,
            args.seconds,
            shlex.split(args.gunicorn_args),
            service_env,
            shlex.split(args.service_args),
            shlex.split(args.ceiling_args),
            args.connection_close,
            scenarios,
        )
        try:
            runs = bench.measure(args.rounds)
            rss_after = {"service": bench.service.rss_mib(), "ceiling": bench.ceiling.rss_mib()}
        finally:
            bench.close()
        report(backend, summarise(runs), bench, rss_after)


if __name__ == "__main__":
    sys.exit(main())
