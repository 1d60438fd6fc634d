"""Instructions per request of one scenario, in process, counted by valgrind.

    .venv/bin/python bench/instructions.py create        # also: list, deep, update, ...
    .venv/bin/python bench/instructions.py create --requests 400

On a shared two-core machine a time moves by 10-20% between runs, which
hides most changes worth making; the instructions a request executes move by
about 0.1%. The service of bench/cpu_profile.py (SQLite in a temp folder)
runs under callgrind twice, once with `--requests` more requests than the
other, and the difference is divided by them, so start-up and seeding cancel
out. It counts user-space work only: the kernel's part (each commit's WAL
writes, file locks) is `bench/cpu_split.py`'s system time. Needs valgrind
(Debian's package `valgrind`); two runs of 200 creates take some two minutes.
"""

import argparse
import os
import re
import subprocess
import sys

import cpu_profile

WARM_UP = 20
COLLECTED = re.compile(r"Collected : (\d+)")


def serve(scenario, requests):
    """The measured process: a seeded service, then `requests` requests."""
    sys.stdout = open(os.devnull, "w")  # the request log
    service = cpu_profile.Service()
    service.seed(50)
    for _ in range(WARM_UP + requests):
        service.request(scenario)


def instructions(scenario, requests):
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        os.path.abspath(__file__),
        scenario,
        "--serve",
        str(requests),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(COLLECTED.search(done.stderr).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=cpu_profile.SCENARIOS)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve(args.scenario, args.serve)
    fewer, more = instructions(args.scenario, 0), instructions(args.scenario, args.requests)
    print(f"{args.scenario}: {(more - fewer) / args.requests:,.0f} instructions per request")


if __name__ == "__main__":
    main()
