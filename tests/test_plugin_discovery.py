"""Backends found through real entry points of real, pip-installed distributions.

The module builds two throwaway distributions in a temporary directory --
``repocket-throwaway``, whose entry points declare a working backend
(``throwaway``), one whose module fails to import (``broken``), a class that
lacks protocol methods (``half``) and a ``twin`` scheme, and
``repocket-throwaway-twin``, which claims ``twin`` as well -- and installs
both with ``pip install --no-deps --target``.  Each test then runs Python in a
subprocess whose ``sys.path`` includes that directory, so that
``importlib.metadata`` sees the distributions as installed ones, and reports
what repocket's registry did as JSON.

Building uses setuptools in pip's isolated build environments (from the
package index, like the rest of the test environment); it takes some
seconds, once for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from repocket.storage import REQUIRED_METHODS

TIMEOUT = 300  # seconds; a bound on a hung install, never a timing assertion

GOOD_MODULE = '''
"""A working backend: the memory backend under another scheme."""
from repocket.backends.memory import MemoryStorage


class ThrowawayStorage(MemoryStorage):
    scheme = "throwaway"
'''

BROKEN_MODULE = '''
"""A backend whose dependency is missing."""
import repocket_throwaway_missing_dependency  # noqa: F401


class BrokenStorage:
    pass
'''

HALF_MODULE = '''
"""A class with two of the protocol's methods."""


class HalfStorage:
    @classmethod
    def from_url(cls, url, **options):
        return cls()

    def save_record(self, write):
        pass
'''

TWIN_MODULE = '''
"""Another distribution's backend for the scheme "twin"."""
from repocket.backends.memory import MemoryStorage


class TwinStorage(MemoryStorage):
    scheme = "twin"
'''


def pyproject(name: str, package: str, entry_points: dict[str, str]) -> str:
    lines = "\n".join(f'{scheme} = "{target}"' for scheme, target in entry_points.items())
    return (
        textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "1.0"
        requires-python = ">=3.8"

        [tool.setuptools]
        packages = ["{package}"]

        [project.entry-points."repocket.backends"]
        """)
        + lines
        + "\n"
    )


def make_project(
    root: Path, name: str, package: str, modules: dict[str, str], entry_points: dict[str, str]
) -> Path:
    project = root / name
    (project / package).mkdir(parents=True)
    (project / "pyproject.toml").write_text(pyproject(name, package, entry_points))
    (project / package / "__init__.py").write_text("")
    for module, source in modules.items():
        (project / package / f"{module}.py").write_text(source)
    return project


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with both distributions installed into it by pip."""
    root = tmp_path_factory.mktemp("plugins")
    throwaway = make_project(
        root,
        "repocket-throwaway",
        "throwaway_backends",
        {"good": GOOD_MODULE, "broken": BROKEN_MODULE, "half": HALF_MODULE},
        {
            "throwaway": "throwaway_backends.good:ThrowawayStorage",
            "broken": "throwaway_backends.broken:BrokenStorage",
            "half": "throwaway_backends.half:HalfStorage",
            "twin": "throwaway_backends.good:ThrowawayStorage",
            # written loosely: spaces around the colon, a name in capitals
            "spaced": "throwaway_backends.good : ThrowawayStorage",
            "Shouty": "throwaway_backends.good:ThrowawayStorage",
        },
    )
    twin = make_project(
        root,
        "repocket-throwaway-twin",
        "throwaway_twin",
        {"storage": TWIN_MODULE},
        {"twin": "throwaway_twin.storage:TwinStorage"},
    )
    target = root / "site"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(throwaway),
            str(twin),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return target


PRELUDE = """\
import json, sys


def imported():
    \"\"\"The throwaway plugins' modules imported so far.\"\"\"
    return sorted(m for m in sys.modules if m.startswith("throwaway_"))


def describe(call):
    \"\"\"Call ``call``, expecting an error; describe the error.\"\"\"
    try:
        call()
    except Exception as exc:
        cause = exc.__cause__
        return {
            "type": type(exc).__name__,
            "is_import_error": isinstance(exc, ImportError),
            "is_lookup_error": isinstance(exc, LookupError),
            "message": str(exc),
            "cause": type(cause).__name__ if cause is not None else None,
            "cause_name": getattr(cause, "name", None),
            "imported": imported(),
        }
    raise AssertionError("no error")


result = None
"""


def run(site: Path, code: str) -> Any:
    """Run ``code`` in a new interpreter that sees the installed plugins; it
    sets ``result``, which comes back through JSON."""
    script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=site,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def test_pip_installed_the_distributions_with_their_entry_points(site: Path) -> None:
    result = run(
        site,
        """
        from importlib import metadata
        result = sorted(
            [ep.dist.metadata["Name"], ep.name, ep.value]
            for ep in metadata.entry_points(group="repocket.backends")
            if ep.dist.metadata["Name"].startswith("repocket-throwaway"))
    """,
    )
    assert result == [
        ["repocket-throwaway", "Shouty", "throwaway_backends.good:ThrowawayStorage"],
        ["repocket-throwaway", "broken", "throwaway_backends.broken:BrokenStorage"],
        ["repocket-throwaway", "half", "throwaway_backends.half:HalfStorage"],
        ["repocket-throwaway", "spaced", "throwaway_backends.good : ThrowawayStorage"],
        ["repocket-throwaway", "throwaway", "throwaway_backends.good:ThrowawayStorage"],
        ["repocket-throwaway", "twin", "throwaway_backends.good:ThrowawayStorage"],
        ["repocket-throwaway-twin", "twin", "throwaway_twin.storage:TwinStorage"],
    ]


def test_an_installed_plugins_scheme_is_discovered_and_works(site: Path) -> None:
    result = run(
        site,
        """
        from repocket import ActiveRecord, attributes
        from repocket.connections import configure
        from repocket.backend_registry import available_backends


        class Note(ActiveRecord):
            text = attributes.Unicode()


        storage = configure.from_url("throwaway://")
        note = Note.create(text="found through its entry point")
        result = {
            "available": dict(available_backends()),
            "class": type(storage).__module__ + ":" + type(storage).__qualname__,
            "text": Note.objects.get(id=note.id).text,
        }
    """,
    )
    assert result["available"]["throwaway"] == "throwaway_backends.good:ThrowawayStorage"
    assert result["available"]["broken"] == "throwaway_backends.broken:BrokenStorage"
    assert result["available"]["half"] == "throwaway_backends.half:HalfStorage"
    assert result["available"]["memory"] == "repocket.backends.memory:MemoryStorage"
    assert result["class"] == "throwaway_backends.good:ThrowawayStorage"
    assert result["text"] == "found through its entry point"


def test_loosely_written_entry_points_are_read_as_the_entry_point_syntax_allows(site: Path) -> None:
    result = run(
        site,
        """
        from repocket.connections import configure
        from repocket.backend_registry import available_backends

        result = {
            "available": {scheme: path for scheme, path in available_backends().items()
                          if scheme in ("spaced", "shouty")},
            "spaced": type(configure.from_url("spaced://")).__name__,
            "shouty": type(configure.from_url("SHOUTY://")).__name__,
        }
    """,
    )
    assert result == {
        "available": {
            "shouty": "throwaway_backends.good:ThrowawayStorage",
            "spaced": "throwaway_backends.good:ThrowawayStorage",
        },
        "spaced": "ThrowawayStorage",
        "shouty": "ThrowawayStorage",
    }


def test_a_plugin_is_imported_only_when_its_scheme_is_asked_for(site: Path) -> None:
    result = run(
        site,
        """
        from repocket.connections import configure
        from repocket.backend_registry import available_backends, get_backend

        result = {"at start": imported()}
        available_backends()
        configure.from_url("memory://")
        result["after listing and using memory"] = imported()
        first = get_backend("throwaway")
        result["after asking for throwaway"] = imported()
        result["cached"] = get_backend("THROWAWAY") is first
    """,
    )
    assert result["at start"] == []
    assert result["after listing and using memory"] == []
    assert result["after asking for throwaway"] == ["throwaway_backends", "throwaway_backends.good"]
    assert result["cached"] is True


def test_an_unknown_scheme_lists_the_installed_schemes(site: Path) -> None:
    result = run(
        site,
        """
        from repocket.connections import configure
        result = describe(lambda: configure.from_url("nosuch://somewhere"))
    """,
    )
    assert result["type"] == "UnknownBackendError" and result["is_lookup_error"]
    assert result["message"].startswith(
        "no repocket backend for URL scheme 'nosuch'; available schemes: "
    )
    listed = result["message"].split("available schemes: ")[1].split(", ")
    assert {
        "broken",
        "half",
        "memory",
        "redis",
        "rediss",
        "shouty",
        "spaced",
        "throwaway",
        "twin",
        "unix",
    } <= set(listed)
    assert listed == sorted(listed)
    assert result["imported"] == []


def test_a_plugin_that_fails_to_import_fails_only_when_asked_for(site: Path) -> None:
    result = run(
        site,
        """
        from repocket.backend_registry import available_backends, get_backend

        listed = "broken" in available_backends()
        others = get_backend("throwaway").__name__
        result = {
            "listed": listed,
            "others work": others,
            "errors": [describe(lambda: get_backend("broken")) for attempt in range(2)],
        }
    """,
    )
    assert result["listed"] is True and result["others work"] == "ThrowawayStorage"
    first, second = result["errors"]
    assert first["type"] == "BackendLoadError" and first["is_import_error"]
    assert first["message"] == (
        "the repocket backend for scheme 'broken' (distribution 'repocket-throwaway', "
        "entry point broken = throwaway_backends.broken:BrokenStorage) failed to load: "
        "ModuleNotFoundError: No module named 'repocket_throwaway_missing_dependency'"
    )
    assert first["cause"] == "ModuleNotFoundError"
    assert first["cause_name"] == "repocket_throwaway_missing_dependency"
    assert second == first  # asked again: the same error again


def test_a_class_missing_protocol_methods_is_refused_naming_them(site: Path) -> None:
    result = run(
        site,
        """
        from repocket.backend_registry import get_backend
        result = describe(lambda: get_backend("half"))
    """,
    )
    assert result["type"] == "BackendLoadError"
    prefix = (
        "the repocket backend for scheme 'half' (distribution 'repocket-throwaway', "
        "entry point half = throwaway_backends.half:HalfStorage) does not implement the "
        "Storage protocol; missing: "
    )
    assert result["message"].startswith(prefix)
    missing = result["message"][len(prefix) :].split(", ")
    assert missing == sorted(set(REQUIRED_METHODS) - {"from_url", "save_record"})
    assert "native_client" in missing and "query_ids" in missing


def test_two_distributions_claiming_one_scheme_are_reported_not_shadowed(site: Path) -> None:
    result = run(
        site,
        """
        from repocket.connections import configure
        from repocket.backend_registry import register_backend

        result = describe(lambda: configure.from_url("twin://"))
        register_backend("twin", "throwaway_twin.storage:TwinStorage")
        result["settled"] = type(configure.from_url("twin://")).__name__
    """,
    )
    assert result["type"] == "BackendLoadError"
    message = result["message"]
    head = "several distributions provide a repocket backend for scheme 'twin': "
    tail = ". Uninstall all but one, or call repocket.storage.register_backend()."
    assert message.startswith(head) and message.endswith(tail)
    claims = set(message[len(head) : -len(tail)].split("; "))
    assert claims == {
        "distribution 'repocket-throwaway', entry point twin = "
        "throwaway_backends.good:ThrowawayStorage",
        "distribution 'repocket-throwaway-twin', entry point twin = "
        "throwaway_twin.storage:TwinStorage",
    }
    assert result["imported"] == []  # neither was imported: no silent winner
    assert result["settled"] == "TwinStorage"
