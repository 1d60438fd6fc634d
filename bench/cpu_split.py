"""Where the service's CPU goes under load: user and kernel (system) time of
its gunicorn workers per request, scenario by scenario, read from
/proc/<pid>/stat around each wrk run (Linux only).

    .venv/bin/python bench/cpu_split.py create,list_first,delete
    .venv/bin/python bench/cpu_split.py create --service-args "--threads 1"

A write's system time above a list's is SQLite's locking and WAL I/O; a gap
between `bench/cpu_profile.py` (in process) and the user time here is what
serving it under gunicorn, beside other requests, adds.
"""

import argparse
import os
import shlex

from run import SCENARIOS, Bench, scenario_list

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def worker_ticks(bench):
    """The (user, system) clock ticks of the service's workers so far."""
    user = system = 0
    for pid in bench.service.workers():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--service-args", default="", help="extra gunicorn flags")
    args = parser.parse_args()
    scenarios = scenario_list(parser, args.scenarios)
    bench = Bench(
        args.backend, args.seconds, service_args=shlex.split(args.service_args), scenarios=scenarios
    )
    try:
        bench.run_ceiling(2)  # the delete scenario sizes its keys from it
        for scenario in scenarios:
            user_before, system_before = worker_ticks(bench)
            result = bench.run_scenario(scenario, f"cpu-{scenario}")
            user_after, system_after = worker_ticks(bench)
            requests = result["rps"] * args.seconds
            user = (user_after - user_before) * TICK_MS / requests
            system = (system_after - system_before) * TICK_MS / requests
            print(
                f"{scenario}: {result['rps']:.0f} req/s, "
                f"user {user:.2f} ms/req, system {system:.2f} ms/req"
            )
    finally:
        bench.close()


if __name__ == "__main__":
    main()
