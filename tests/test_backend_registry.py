"""Choosing a backend class by URL scheme (repocket.backend_registry)."""

from __future__ import annotations

import sys
import types

import pytest

from repocket import backend_registry as storage_module
from repocket.backend_registry import (
    available_backends,
    backend_for_url,
    get_backend,
    register_backend,
)
from repocket.backends.memory import MemoryStorage
from repocket.backends.redis import RedisStorage
from repocket.errors import BackendLoadError, UnknownBackendError


@pytest.fixture(autouse=True)
def _restore_registry(monkeypatch):
    # Both together: entry points read into the copy must be read again into
    # the original afterwards.
    monkeypatch.setattr(storage_module, "_registry", dict(storage_module._registry))
    monkeypatch.setattr(storage_module, "_entry_points_loaded", storage_module._entry_points_loaded)


def test_builtin_schemes_are_available() -> None:
    schemes = available_backends()
    assert {"redis", "rediss", "unix", "memory"} <= set(schemes)
    assert get_backend("redis") is RedisStorage
    assert get_backend("memory") is MemoryStorage


def test_builtin_backends_are_declared_as_entry_points() -> None:
    from importlib.metadata import entry_points

    declared = {ep.name: ep.value for ep in entry_points(group="repocket.backends")}
    assert declared["redis"] == "repocket.backends.redis:RedisStorage"
    assert declared["memory"] == "repocket.backends.memory:MemoryStorage"


def test_register_backend_by_class() -> None:
    register_backend("mymem", MemoryStorage)
    assert isinstance(backend_for_url("mymem://"), MemoryStorage)


def test_register_backend_by_path_imports_lazily() -> None:
    module = types.ModuleType("repocket_lazy_plugin")
    module.Storage = MemoryStorage  # type: ignore[attr-defined]
    register_backend("lazy", "repocket_lazy_plugin:Storage")
    sys.modules["repocket_lazy_plugin"] = module
    try:
        assert get_backend("lazy") is MemoryStorage
    finally:
        del sys.modules["repocket_lazy_plugin"]


def test_a_backend_that_fails_to_import_names_the_scheme_and_keeps_the_cause() -> None:
    register_backend("broken", "repocket_no_such_module_anywhere:Storage")
    with pytest.raises(BackendLoadError) as info:
        get_backend("broken")
    assert "'broken'" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_a_class_missing_protocol_methods_is_refused_naming_them() -> None:
    class Half:
        @classmethod
        def from_url(cls, url):
            return cls()

        def save_record(self, write):
            pass

    register_backend("half", Half)  # type: ignore[arg-type]
    with pytest.raises(BackendLoadError) as info:
        get_backend("half")
    missing = str(info.value).split("missing:")[1]
    assert "load_records" in missing and "native_client" in missing
    assert "save_record" not in missing and "from_url" not in missing


def test_an_unknown_scheme_lists_the_available_ones() -> None:
    with pytest.raises(UnknownBackendError, match=r"memory.*redis"):
        get_backend("nosuch")


def test_a_url_without_scheme_is_refused() -> None:
    with pytest.raises(UnknownBackendError, match="no scheme"):
        backend_for_url("/var/run/redis.sock")


def test_schemes_are_case_insensitive() -> None:
    register_backend("MyMem", MemoryStorage)
    assert "mymem" in available_backends()
    assert get_backend("MYMEM") is MemoryStorage
    assert isinstance(backend_for_url("MyMem://"), MemoryStorage)


def test_available_backends_shows_the_registered_path_before_and_after_import() -> None:
    module = types.ModuleType("repocket_reexporting_plugin")
    module.Storage = MemoryStorage  # type: ignore[attr-defined]
    register_backend("reexported", "repocket_reexporting_plugin:Storage")
    sys.modules["repocket_reexporting_plugin"] = module
    try:
        assert available_backends()["reexported"] == "repocket_reexporting_plugin:Storage"
        assert get_backend("reexported") is MemoryStorage
        assert available_backends()["reexported"] == "repocket_reexporting_plugin:Storage"
    finally:
        del sys.modules["repocket_reexporting_plugin"]


def test_the_registry_is_still_importable_from_repocket_storage() -> None:
    import repocket.backend_registry
    import repocket.storage

    for name in ("register_backend", "available_backends", "get_backend", "backend_for_url"):
        assert getattr(repocket.storage, name) is getattr(repocket.backend_registry, name)
    with pytest.raises(AttributeError):
        _ = repocket.storage.no_such_name  # type: ignore[attr-defined]
