"""The house style, checked: ruff's rules pass, and one import style holds."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def ruff(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True
    )


def test_ruff_check_and_format_pass():
    checked = ruff("check", ".")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = ruff("format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_a_flat_or_relative_import_of_our_modules_is_refused():
    probe = REPO / "flat_import_probe.py"
    probe.write_text("import models\nfrom schemas import to_json\nfrom .app import bp\n")
    try:
        result = ruff("check", "--select", "TID", "--output-format", "concise", probe.name)
    finally:
        probe.unlink()
    lines = [line for line in result.stdout.splitlines() if probe.name in line]
    assert [line.split(": ", 1)[1].split(" ", 1)[0] for line in lines] == [
        "TID251",
        "TID251",
        "TID252",
    ], result.stdout
    assert "from datasources import models" in result.stdout


def test_no_module_keeps_a_second_copy_of_its_imports():
    offenders = [
        path.name
        for path in REPO.glob("*.py")
        if "if __package__" in path.read_text() or "sys.path.insert" in path.read_text()
    ]
    assert offenders == []
