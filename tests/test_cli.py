"""The command line: ``repocket demo`` runs the tutorial on each backend."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

import repocket
from repocket.cli import main
from repocket.connections import configure

from .servers import RedisServer


@pytest.fixture(autouse=True)
def _reset_configuration():
    yield
    configure.reset()


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"repocket, version {repocket.__version__}"


def test_demo_runs_the_tutorial_on_the_memory_backend() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "private memory store" in out
    assert ("{'hash': 'repocket:repocket.demo:User:970773fa-4de1-11e5-86f4-6c4008a70392', "
            "'strings': {}}") in out
    assert ('{"type": "Unicode", "value": "Harry Potter", "module": "repocket.attributes"}'
            in out)
    assert "['Ron Weasley', 'Harry Potter']" in out
    assert ">>> harry.delete()\n1\n" in out
    assert ">>> User.objects.all()\n[]" in out


def test_demo_runs_on_a_real_redis_server_and_cleans_up(redis_server: RedisServer) -> None:
    result = CliRunner().invoke(main, ["demo", "--url", redis_server.url])
    assert result.exit_code == 0, result.output
    assert f"redis at 127.0.0.1:{redis_server.port}" in result.output
    assert "['Ron Weasley', 'Harry Potter']" in result.output
    client = configure.get_connection()
    assert list(client.scan_iter(match="repocket:repocket.demo:*")) == []


def test_demo_keep_leaves_the_records(redis_server: RedisServer) -> None:
    result = CliRunner().invoke(main, ["demo", "--keep", "--url", redis_server.url])
    assert result.exit_code == 0, result.output
    client = configure.get_connection()
    assert client.exists("repocket:repocket.demo:User:970773fa-4de1-11e5-86f4-6c4008a70392")
    configure.storage().clear()


def test_python_dash_m_repocket_runs_the_cli() -> None:
    completed = subprocess.run([sys.executable, "-m", "repocket", "demo"],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "# 2.8 Retrieve multiple items with filter" in completed.stdout


def test_every_command_has_help() -> None:
    for args in (["--help"], ["demo", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output
