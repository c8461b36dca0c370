"""A command run through the warm fork server does what the same command does in a fresh process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from billstate_devkit.warm import warm_command

BASH = shutil.which("bash") or "/bin/bash"

# json.tool's entry point as the command, against a script that calls it as console_scripts
# do: stdin, stdout, stderr, files, cwd, exit statuses, a message as the exit code (the
# interpreter's own exit path), output larger than a pipe holds.
SCRIPTS = [
    'echo \'{"b": 1, "a": [1, 2]}\' | {cmd} --sort-keys',
    "echo '{not json' | {cmd}",
    "{cmd} {here}/nope.json",
    "{cmd} --no-such-option",
    "{cmd} {here}/big.json | tail -c 20",
    "cd {here} && {cmd} big.json --compact | wc -c",
]


@pytest.fixture(scope="module")
def here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("warm-test")
    rows = ",".join(f'{{"row": {n}, "text": "{"x" * 40}"}}' for n in range(20_000))
    (where / "big.json").write_text(f"[{rows}]")
    fresh = where / "fresh"
    fresh.write_text(
        f"#!{sys.executable}\nimport sys\nfrom json.tool import main\nsys.exit(main())\n"
    )
    fresh.chmod(0o755)
    return where


@pytest.fixture(scope="module")
def warm(here: Path) -> Iterator[Path]:
    with warm_command(here / "server", "jsontool", "json.tool:main", ("json.tool",)) as cmd:
        yield cmd


def _bash(script: str) -> tuple[int, str, str]:
    done = subprocess.run(  # noqa: S603  (this test's own scripts)
        [BASH, "-c", script], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_same_as_a_fresh_process(script: str, here: Path, warm: Path) -> None:
    def made(cmd: str) -> str:
        return script.replace("{cmd}", cmd).replace("{here}", str(here))

    assert _bash(made(str(warm))) == _bash(made(str(here / "fresh")))
