"""The model registry: every declared model class, by module and name.

Every :class:`~repocket.model.ActiveRecord` subclass is recorded here when
its class statement runs, by ``(module, name)``.  Pointers declared with a
model *name* and pointer keys read from storage are resolved through it; it
never imports anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from .errors import RepocketActiveRecordDefinitionError
from .keys import Collection

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord

__all__ = ["register_model", "models", "resolve_model", "model_for_collection", "generation"]

_models: dict[tuple[str, str], type[ActiveRecord]] = {}
_by_collection: dict[Collection, type[ActiveRecord]] = {}
_generation = 0


def register_model(cls: type[ActiveRecord]) -> None:
    """Record a model class; a later class with the same module and name
    (or the same collection) replaces it."""
    global _generation
    _models[(cls.__module__, cls.__name__)] = cls
    _by_collection[cls._meta.collection] = cls
    _generation += 1


def generation() -> int:
    """A number that changes whenever a model is registered (for caches of
    facts derived from every model)."""
    return _generation


def models() -> Mapping[tuple[str, str], type[ActiveRecord]]:
    """A read-only view of ``(module, name) -> model class``."""
    return MappingProxyType(_models)


def model_for_collection(collection: Collection) -> type[ActiveRecord] | None:
    """The model class whose records a collection holds, if it is declared
    (its collection's module is ``Meta.namespace`` when it declares one)."""
    return _by_collection.get(collection)


def resolve_model(name: str, near: type | None = None) -> type[ActiveRecord]:
    """Find a model by ``"Name"`` or ``"package.module.Name"``.

    A bare name is looked up first in the module of ``near`` (the class that
    declared the pointer), then anywhere if exactly one model has that name.

    :raises RepocketActiveRecordDefinitionError: no model or several match.
    """
    if "." in name:
        module, _, short = name.rpartition(".")
        found = _models.get((module, short))
        if found is not None:
            return found
    else:
        if near is not None and (near.__module__, name) in _models:
            return _models[(near.__module__, name)]
        matches = [cls for (module, short), cls in _models.items() if short == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RepocketActiveRecordDefinitionError(
                f"pointer target {name!r} is ambiguous: "
                + ", ".join(sorted(f"{m.__module__}.{m.__name__}" for m in matches))
                + "; use the dotted name"
            )
    raise RepocketActiveRecordDefinitionError(f"no model named {name!r} has been declared")
