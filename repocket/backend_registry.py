"""The registry of storage backends: URL scheme -> :class:`~repocket.storage.Storage` class.

Backends are declared as entry points in the ``repocket.backends`` group
(repocket's own too), loaded when a scheme is first used, or registered with
:func:`register_backend`.  :func:`backend_for_url` builds the storage a URL
names.  (These names are still importable from :mod:`repocket.storage`.)
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .errors import (
    BackendLoadError,
    ConfigurationError,
    RepocketError,
    UnknownBackendError,
)
from .storage import Storage, missing_protocol_methods, redact_secrets, redact_url

__all__ = [
    "ENTRY_POINT_GROUP",
    "register_backend",
    "available_backends",
    "get_backend",
    "backend_for_url",
]

ENTRY_POINT_GROUP = "repocket.backends"


# ---------------------------------------------------------------------------
# Backend registry
# ---------------------------------------------------------------------------


@dataclass
class _Entry:
    target: str | type[Storage]  # as registered: a class or "package.module:Class"
    origin: str  # "register_backend()" or "distribution X, entry point Y"
    conflicts: list[str] = field(default_factory=list)
    loaded: type[Storage] | None = None  # the class, once imported and checked

    @property
    def path(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"


# repocket's own backends are declared as entry points too (setup.py); they
# are listed here as well so that a source checkout that was never installed
# still finds them.  An entry point naming the same target is not a conflict.
_BUILTIN = {
    "redis": "repocket.backends.redis:RedisStorage",
    "rediss": "repocket.backends.redis:RedisStorage",
    "unix": "repocket.backends.redis:RedisStorage",
    "memory": "repocket.backends.memory:MemoryStorage",
    "redis+cluster": "repocket.backends.cluster:RedisClusterStorage",
    "rediss+cluster": "repocket.backends.cluster:RedisClusterStorage",
}
_registry: dict[str, _Entry] = {
    scheme: _Entry(target, "repocket (built in)") for scheme, target in _BUILTIN.items()
}
_entry_points_loaded = False
_lock = threading.RLock()


def _scheme(name: str) -> str:
    # URL schemes are case-insensitive, and urlsplit() gives them in lower case.
    return name.strip().lower()


def _entry_point_target(ep: metadata.EntryPoint) -> str:
    """``module:attr`` of an entry point, without the spaces or extras its
    value may carry (``"pkg.mod : Class [extra]"``)."""
    try:
        return f"{ep.module}:{ep.attr}" if ep.attr else ep.module
    except AttributeError:  # a value the entry point syntax does not allow
        return ep.value.strip()


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        scheme = _scheme(ep.name)
        target = _entry_point_target(ep)
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "<unknown distribution>"
        origin = f"distribution {dist_name!r}, entry point {ep.name} = {ep.value}"
        existing = _registry.get(scheme)
        if existing is None:
            _registry[scheme] = _Entry(target, origin)
        elif existing.target != target and _BUILTIN.get(scheme) != target:
            # Two distributions claim one scheme: refuse to guess which wins.
            existing.conflicts.append(origin)
    _entry_points_loaded = True


def register_backend(scheme: str, backend: str | type[Storage]) -> None:
    """Register a backend class (or ``"package.module:Class"``) for a URL scheme.

    A scheme registered here takes precedence over an entry point of the same
    name (and settles a scheme that several distributions claim); this is
    meant for applications and tests that do not package their backend.
    Schemes are case-insensitive.
    """
    with _lock:
        _load_entry_points()
        _registry[_scheme(scheme)] = _Entry(backend, "register_backend()")


def available_backends() -> Mapping[str, str]:
    """A read-only view of scheme -> the ``"package.module:Class"`` path of its
    backend, as registered (nothing is imported)."""
    with _lock:
        _load_entry_points()
        return MappingProxyType({scheme: entry.path for scheme, entry in sorted(_registry.items())})


def _import_target(scheme: str, entry: _Entry) -> type[Storage]:
    obj: Any = entry.target
    if isinstance(obj, str):
        module_name, _, attr = obj.partition(":")
        try:
            obj = importlib.import_module(module_name.strip())
            for part in attr.strip().split(".") if attr.strip() else ():
                obj = getattr(obj, part)
        except Exception as exc:  # any failure of third-party import code
            raise BackendLoadError(
                f"the repocket backend for scheme {scheme!r} ({entry.origin}) "
                f"failed to load: {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(obj, type):
        raise BackendLoadError(
            f"the repocket backend for scheme {scheme!r} ({entry.origin}) is not a class: {obj!r}"
        )
    missing = missing_protocol_methods(obj)
    if missing:
        raise BackendLoadError(
            f"the repocket backend for scheme {scheme!r} ({entry.origin}) does not "
            f"implement the Storage protocol; missing: {', '.join(missing)}"
        )
    return obj


def get_backend(scheme: str) -> type[Storage]:
    """The backend class registered for ``scheme``, imported on first use.

    :raises UnknownBackendError: no backend has that scheme; the message lists
        the schemes that are available.
    :raises BackendLoadError: the backend failed to import, two distributions
        claim the scheme, or the class lacks protocol methods.
    """
    with _lock:
        _load_entry_points()
        scheme = _scheme(scheme)
        entry = _registry.get(scheme)
        if entry is None:
            known = ", ".join(sorted(_registry)) or "none"
            raise UnknownBackendError(
                f"no repocket backend for URL scheme {scheme!r}; available schemes: {known}"
            )
        if entry.conflicts:
            raise BackendLoadError(
                f"several distributions provide a repocket backend for scheme {scheme!r}: "
                + "; ".join([entry.origin, *entry.conflicts])
                + ". Uninstall all but one, or call repocket.storage.register_backend()."
            )
        if entry.loaded is None:
            entry.loaded = _import_target(scheme, entry)  # imported once, then cached
        return entry.loaded


def backend_for_url(url: str, **options: Any) -> Storage:
    """Build the storage a URL names, e.g. ``redis://localhost:6379/0`` or ``memory://``.

    Messages show the URL only as :func:`redact_url` gives it.

    :raises UnknownBackendError: the URL has no scheme, or no backend has it.
    :raises ConfigurationError: the URL cannot be parsed, or the backend
        refused it (a backend's plain ``ValueError`` becomes one).
    :raises BackendLoadError: see :func:`get_backend`.
    """
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 host
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a valid URL: {redact_secrets(str(exc), url)}"
        ) from None
    if not scheme:
        raise UnknownBackendError(
            f"{redact_url(url)!r} has no scheme; use e.g. 'redis://localhost:6379/0' or 'memory://'"
        )
    backend = get_backend(scheme)
    try:
        return backend.from_url(url, **options)
    except RepocketError:
        raise
    except ValueError as exc:
        # A backend (or its driver) that parses the URL itself may say which
        # part it refused by quoting it; the original is not chained, since a
        # logged traceback would show its message as it was.
        raise ConfigurationError(
            f"{backend.scheme or scheme} storage cannot use {redact_url(url)!r}: "
            f"{redact_secrets(str(exc), url)}"
        ) from None
