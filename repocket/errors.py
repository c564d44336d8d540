"""Every error repocket raises.

One base class, :class:`RepocketError`, so that ``except RepocketError``
catches anything repocket itself signals.  Subclasses also inherit the builtin
exception a caller would naturally expect (``DoesNotExist`` is a
``LookupError``, validation errors are ``ValueError``), so generic code keeps
working.  Errors raised by a storage driver (redis-py, fakeredis, sqlite3...)
are wrapped exactly once, at the storage edge, and the original is kept as
``__cause__``.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "RepocketError",
    "RepocketActiveRecordDefinitionError",
    "ValidationError",
    "UnknownFieldError",
    "DoesNotExist",
    "MultipleObjectsReturned",
    "EnvelopeError",
    "NotConfiguredError",
    "StorageError",
    "StorageConnectionError",
    "BackendError",
    "UnknownBackendError",
    "BackendLoadError",
    "UnsavedRecordError",
    "UniqueViolation",
    "ConflictError",
    "ProtectedError",
    "ConfigurationError",
    "UnsupportedError",
]


class RepocketError(Exception):
    """Base class of every error raised by repocket."""


class RepocketActiveRecordDefinitionError(RepocketError, TypeError):
    """A model class is declared inconsistently.

    Raised while the class statement runs, for example when a model declares
    more than one :class:`~repocket.attributes.AutoUUID`.
    """


class ValidationError(RepocketError, ValueError):
    """A value cannot be used for a field.

    The message names the model, the field and the offending value; the same
    facts are available as attributes for programs.
    """

    def __init__(
        self, message: str, *, model: str | None = None, field: str | None = None, value: Any = None
    ) -> None:
        super().__init__(message)
        self.model = model
        self.field = field
        self.value = value


class UnknownFieldError(ValidationError, builtins.KeyError):
    """A keyword argument or lookup names a field the model does not have.

    It is also a ``KeyError`` because ``record["nope"]`` raises it.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0]) if self.args else ""


class DoesNotExist(RepocketError, LookupError):
    """No stored record matches a lookup.

    Every model gets its own subclass, ``Model.DoesNotExist``, so callers can
    catch a missing ``User`` without also catching a missing ``Project``.
    """


class MultipleObjectsReturned(RepocketError, LookupError):
    """A lookup expected to match one record matched several."""


class EnvelopeError(RepocketError, ValueError):
    """Stored data is not a valid repocket envelope.

    Raised when decoding a stored field that is not JSON, is not an envelope
    object, names a type repocket does not know, or carries a value the type
    cannot read.  The message names the storage key and the field.
    """

    def __init__(self, message: str, *, key: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.field = field


class UnsavedRecordError(RepocketError, ValueError):
    """An operation needs a record that has been saved first.

    For example a :class:`~repocket.attributes.Pointer` to a record that was
    never saved, or ``append_<field>()`` on a new record.
    """


class UniqueViolation(ValidationError):
    """A value of a ``unique=True`` field is already held by another record.

    Raised by ``save()``; nothing is written.  ``claim`` is the storage's
    :class:`~repocket.storage.UniqueClaim`; ``model``, ``field`` and ``value``
    say which field and value, and ``other_id`` which record holds it.
    """

    def __init__(
        self,
        message: str,
        *,
        claim: Any = None,
        other_id: str | None = None,
        model: str | None = None,
        field: str | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message, model=model, field=field, value=value)
        self.claim = claim
        self.other_id = other_id
        #: for a batch write: what was written before or beside the refusal
        self.written: list[Any] = []


class ProtectedError(RepocketError):
    """A delete was refused because records point to the record through a
    ``Pointer(..., on_delete=PROTECT)``; nothing was deleted.

    ``model`` names the holders' model, ``field`` their pointer field and
    ``count`` how many of them there are.
    """

    def __init__(
        self, message: str, *, model: str | None = None, field: str | None = None, count: int = 0
    ) -> None:
        super().__init__(message)
        self.model = model
        self.field = field
        self.count = count


class ConflictError(RepocketError):
    """A write was refused because the stored record is not what the write
    expected, and nothing was written.

    Raised by ``save(if_unchanged=True)`` when the record changed (or was
    deleted) since the instance was loaded or last saved, and by the save
    of a new record whose generated id is already held by a different
    record.  ``key`` names the record.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        #: for a batch write: what was written before or beside the refusal
        self.written: list[Any] = []


class NotConfiguredError(RepocketError, RuntimeError):
    """A model was used before any storage was configured."""


class StorageError(RepocketError):
    """The storage backend failed to carry out an operation.

    The driver's own exception is available as ``__cause__``.
    """


class StorageConnectionError(StorageError, builtins.ConnectionError):
    """The storage server could not be reached; the message names where."""


class BackendError(RepocketError):
    """A storage backend could not be chosen or loaded."""


class UnknownBackendError(BackendError, builtins.LookupError):
    """No backend is registered for a URL scheme; the message lists those that are."""


class BackendLoadError(BackendError, builtins.ImportError):
    """A registered backend failed to import; the cause is kept as ``__cause__``."""


class ConfigurationError(RepocketError, builtins.ValueError):
    """A storage URL or connection setting cannot be used: a port or database
    that is not a number, a bad ``shards`` value, a URL that cannot be parsed.

    Raised when the storage is built, before anything is sent.  The message
    says what is wrong and never contains a password (nor does the
    exception's context: the driver's error it replaces is not chained).
    """


class UnsupportedError(RepocketError, NotImplementedError):
    """The configured backend cannot do what was asked (for example expiring
    records, on a backend whose ``supports_ttl`` is false); nothing was done."""
