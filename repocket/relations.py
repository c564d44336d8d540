"""Relations between models: reverse accessors and what deleting a target does.

``Pointer(Author, related_name="posts", on_delete=CASCADE)`` gives every
``Author`` record a ``posts`` attribute -- the query of the records pointing
to it (``author.posts.filter(...)``, ``.count()``, ``.order_by()``,
iteration, and the async methods) -- and says what ``author.delete()`` does
to them:

* :data:`DO_NOTHING` (the default): nothing; their pointer is left naming a
  deleted record and loads as ``None`` (the soft foreign key of 0.0.1);
* :data:`PROTECT`: the delete is refused with
  :class:`~repocket.errors.ProtectedError` while any record points to the
  target, and nothing is deleted;
* :data:`CASCADE`: they are deleted too (applying their own rules in turn);
* :data:`SET_NULL`: their pointer is set to ``None`` (the field must be
  declared ``null=True``).

What is atomic: every record is written or deleted by its own single command,
with its index entries.  A delete first gathers every record it will delete
(following CASCADE through any depth, cycles and self-references included)
and checks every PROTECT rule, writing nothing until all pass; it then sets
SET_NULL pointers (one round trip per batch), deletes the cascaded records
and deletes the target last.  Interrupted half-way (a lost connection), some
holders may be updated or deleted while the target still exists: calling
``delete()`` again finishes the job.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import errors
from .registry import generation, models

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .model import ActiveRecord
    from .resultset import ResultSet

__all__ = [
    "CASCADE",
    "DO_NOTHING",
    "PROTECT",
    "SET_NULL",
    "OnDelete",
    "RelatedRecords",
    "delete_with_relations",
    "relations_to",
]


class OnDelete:
    """What deleting a pointer's target does to the records pointing to it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: leave the holders as they are (their pointer then loads as ``None``)
DO_NOTHING = OnDelete("DO_NOTHING")
#: refuse to delete a record that others point to
PROTECT = OnDelete("PROTECT")
#: delete the holders too
CASCADE = OnDelete("CASCADE")
#: set the holders' pointer to ``None``
SET_NULL = OnDelete("SET_NULL")


class RelatedRecords:
    """The reverse side of a pointer: ``target.<related_name>`` is the query
    of the records whose pointer names ``target``."""

    def __init__(self, holder: type[ActiveRecord], field: str, name: str) -> None:
        self.holder = holder
        self.field = field
        self.name = name  # the related_name it is installed under

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        if instance._values[type(instance)._meta.primary_key] is None:
            raise errors.UnsavedRecordError(
                f"{type(instance).__name__}.{self.name} needs a saved record; save it first"
            )
        result: ResultSet[Any] = self.holder.objects.filter(**{self.field: instance})
        return result

    def __repr__(self) -> str:
        return f"<related {self.holder.__name__}.{self.field}>"


_relations: dict[type, tuple[int, list[tuple[type[ActiveRecord], str, OnDelete]]]] = {}


def relations_to(model: type[ActiveRecord]) -> list[tuple[type[ActiveRecord], str, OnDelete]]:
    """``(holder model, pointer field, on_delete)`` of every declared pointer
    to ``model`` whose rule is not DO_NOTHING (worked out again only when a
    model was declared since: every delete() asks)."""
    cached = _relations.get(model)
    if cached is not None and cached[0] == generation():
        return cached[1]
    found = _find_relations(model)
    _relations[model] = (generation(), found)
    return found


def _find_relations(model: type[ActiveRecord]) -> list[tuple[type[ActiveRecord], str, OnDelete]]:
    found = []
    for holder in list(models().values()):
        for name in holder._meta.pointer_fields:
            field: Any = holder._meta.fields[name]
            rule = field.on_delete
            if rule is DO_NOTHING:
                continue
            try:
                target = field.to_model
            except errors.RepocketActiveRecordDefinitionError:
                continue  # a target declared later, or never: it is not this model
            if target is model:
                found.append((holder, name, rule))
    return found


def install_related(model: type[ActiveRecord]) -> None:
    """Give pointer targets their ``related_name`` accessors: those of
    ``model``'s pointers whose target is known, and those of earlier models'
    pointers that named ``model`` before it was declared."""
    for holder in [model, *models().values()]:
        for name in holder._meta.pointer_fields:
            field: Any = holder._meta.fields[name]
            related = field.related_name
            if not related:
                continue
            try:
                target = field.to_model
            except errors.RepocketActiveRecordDefinitionError:
                continue  # installed when the target is declared
            existing = target.__dict__.get(related)
            if isinstance(existing, RelatedRecords) and (
                existing.holder is holder and existing.field == name
            ):
                continue
            if related in target._meta.fields or (
                existing is not None and not isinstance(existing, RelatedRecords)
            ):
                raise errors.RepocketActiveRecordDefinitionError(
                    f"{holder.__name__}.{name}: related_name={related!r} would hide "
                    f"{target.__name__}.{related}"
                )
            type.__setattr__(target, related, RelatedRecords(holder, name, related))


def delete_with_relations(*records: ActiveRecord) -> int:
    """Delete ``records`` together, applying the on_delete rules of the
    pointers to them (see the module's documentation): a PROTECT rule is
    satisfied by holders deleted in the same call.  Returns the number of
    record keys removed, those of cascaded records included."""
    order: list[ActiveRecord] = []
    seen: set[tuple[type, str]] = {_identity(record) for record in records}
    for record in records:
        _gather(record, order, seen)
    for doomed in order:
        for holder, field, rule in relations_to(type(doomed)):
            if rule is not PROTECT:
                continue
            others = [r for r in _holders(holder, field, doomed) if _identity(r) not in seen]
            if others:
                raise errors.ProtectedError(
                    f"cannot delete {type(doomed).__name__} {doomed.pk}: {len(others)} "
                    f"{holder.__name__} record(s) point to it through {holder.__name__}.{field} "
                    f"(on_delete=PROTECT); nothing was deleted",
                    model=holder.__name__,
                    field=field,
                    count=len(others),
                )
    for doomed in order:
        for holder, field, rule in relations_to(type(doomed)):
            if rule is SET_NULL:
                holder.objects.filter(**{field: doomed}).update(**{field: None})
    removed = 0
    for doomed in order:
        removed += doomed._delete_one()
    return removed


def _gather(record: ActiveRecord, order: list[ActiveRecord], seen: set[tuple[type, str]]) -> None:
    """Add ``record`` and what CASCADE deletes with it to ``order``,
    holders before their targets; ``seen`` stops cycles."""
    stack: list[tuple[ActiveRecord, Iterator[ActiveRecord] | None]] = [(record, None)]
    seen.add(_identity(record))
    while stack:
        current, pending = stack[-1]
        if pending is None:
            pending = iter(
                [
                    holder_record
                    for holder, field, rule in relations_to(type(current))
                    if rule is CASCADE
                    for holder_record in _holders(holder, field, current)
                ]
            )
            stack[-1] = (current, pending)
        child = next((r for r in pending if _identity(r) not in seen), None)
        if child is None:
            stack.pop()
            order.append(current)  # after everything pointing to it
            continue
        seen.add(_identity(child))
        stack.append((child, None))


def _holders(holder: type[ActiveRecord], field: str, target: ActiveRecord) -> list[ActiveRecord]:
    return list(holder.objects.filter(**{field: target}))


def _identity(record: ActiveRecord) -> tuple[type, str]:
    return (type(record), str(record.pk))
