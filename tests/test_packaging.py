"""The distributions install and run in a fresh virtual environment.

``python -m build`` makes the sdist, then the wheel from the unpacked sdist
(so a file missing from the sdist breaks the wheel too), in isolated build
environments; the wheel is installed into a new virtual environment, whose
dependencies come from the package index, and its ``repocket`` command runs
the demo there.  It takes a minute or so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import repocket

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds; a bound on a hung install, never a timing assertion


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Without the variables of the environment running this test, so that the
    # new environment sees only what it installed.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    completed = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{' '.join(map(str, args))} failed:\n{completed.stdout}\n{completed.stderr}"
    )
    return completed


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=ROOT)
    yield out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed; returns its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    (wheel,) = dist.glob("repocket-*.whl")
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", wheel)
    return bin_dir


def test_build_makes_an_sdist_and_a_wheel_of_this_version(dist: Path) -> None:
    names = sorted(path.name for path in dist.iterdir())
    version = repocket.__version__
    assert names == [f"repocket-{version}-py3-none-any.whl", f"repocket-{version}.tar.gz"]


def test_the_wheel_holds_the_package_and_its_metadata(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"repocket-{repocket.__version__}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {
        "repocket/__init__.py",
        "repocket/py.typed",
        "repocket/cli.py",
        "repocket/testing/pytest_plugin.py",
        "repocket/testing/suite/__init__.py",
        "repocket/testing/suite/protocol.py",
        "repocket/testing/models.py",
        "repocket/backends/memory.py",
    } <= names
    assert not any(name.startswith("tests/") for name in names)
    assert "repocket = repocket.cli:main" in entry_points
    assert "repocket = repocket.testing.pytest_plugin" in entry_points
    assert "memory = repocket.backends.memory:MemoryStorage" in entry_points


def test_the_sdist_holds_the_docs_tests_and_license(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    prefix = f"repocket-{repocket.__version__}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
    assert {
        "LICENSE",
        "README.rst",
        "CHANGELOG.rst",
        "pyproject.toml",
        "setup.py",
        "docs/conf.py",
        "docs/index.rst",
        "tests/conftest.py",
        "repocket/py.typed",
    } <= names


def test_the_installed_command_runs_the_demo(installed: Path) -> None:
    completed = run(installed / "repocket", "demo")
    out = completed.stdout
    assert "# storage: private memory store" in out
    assert "['Ron Weasley', 'Harry Potter']" in out
    assert ">>> harry.delete()\n1\n" in out
    assert ">>> list(User.objects.all())\n[]" in out


def test_the_installed_command_reports_its_version(installed: Path) -> None:
    completed = run(installed / "repocket", "--version")
    assert completed.stdout.strip() == f"repocket, version {repocket.__version__}"


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path) -> None:
    completed = run(
        installed / "python", "-c", "import repocket; print(repocket.__file__)", cwd=installed
    )
    assert not Path(completed.stdout.strip()).is_relative_to(ROOT)
