"""repocket's pytest plugin, run inside test sessions of its own (pytester)."""

from __future__ import annotations

from importlib import metadata

import pytest

pytest_plugins = ["pytester"]

MODELS = """
from repocket import ActiveRecord, attributes
from repocket.connections import configure


class Note(ActiveRecord):
    text = attributes.Unicode()
"""


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    declared = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert declared.get("repocket") == "repocket.testing.pytest_plugin"


def test_each_test_gets_its_own_empty_memory_storage(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        MODELS
        + """
def test_first(repocket_memory):
    Note.create(text="first")
    assert Note.objects.count() == 1


def test_second(repocket_memory):
    assert Note.objects.count() == 0
"""
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_the_fixture_is_the_configured_memory_storage(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        MODELS
        + """
import fakeredis
from repocket.backends.memory import MemoryStorage


def test_configured(repocket_memory):
    assert isinstance(repocket_memory, MemoryStorage)
    assert configure.storage() is repocket_memory
    assert isinstance(configure.get_connection(), fakeredis.FakeRedis)
    keys = Note.create(text="hello").save()
    assert configure.get_connection().exists(keys["hash"])
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_configuration_is_reset_after_each_test_even_a_failing_one(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        MODELS
        + """
import pytest
from repocket.errors import NotConfiguredError


def test_fails(repocket_memory):
    Note.create(text="left behind")
    assert False, "this test fails on purpose"


def test_after(repocket_memory):
    assert Note.objects.count() == 0


def test_without_the_fixture():
    with pytest.raises(NotConfiguredError):
        configure.storage()
"""
    )
    pytester.runpytest().assert_outcomes(passed=2, failed=1)


def test_the_plugin_is_loaded_without_being_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines(["repocket_memory*", "*fresh, empty, private in-memory*"])


def test_no_repocket_turns_the_plugin_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_it(repocket_memory):\n    pass\n")
    result = pytester.runpytest("-p", "no:repocket")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'repocket_memory' not found*"])


@pytest.mark.parametrize(
    "how",
    [
        ["-p", "repocket"],
        ["-p", "repocket.testing.pytest_plugin"],
    ],
    ids=["entry-point-name", "module"],
)
def test_the_plugin_can_be_named_when_autoloading_is_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: list[str]
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        MODELS
        + """
def test_uses_it(repocket_memory):
    assert Note.create(text="x").save()["hash"].startswith("repocket:")
"""
    )
    pytester.runpytest(*how).assert_outcomes(passed=1)


def test_pytest_plugins_can_name_it_when_autoloading_is_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest('pytest_plugins = ["repocket.testing.pytest_plugin"]\n')
    pytester.makepyfile("def test_uses_it(repocket_memory):\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_without_the_plugin_the_fixture_is_unknown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile("def test_uses_it(repocket_memory):\n    pass\n")
    pytester.runpytest().assert_outcomes(errors=1)
