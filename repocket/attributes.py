"""Field types of repocket models.

Attributes are descriptors: declared on a model class they collect their own
name (``__set_name__``), keep each instance's value in that instance's value
dict, and return themselves when read from the class (so ``User.name`` can be
introspected).

Each attribute owns one conversion pair, like peewee's
``db_value``/``python_value``:

* :meth:`Attribute.to_json` turns a Python value into the JSON-safe value
  stored in the envelope's ``"value"`` (``bytes`` are allowed there: the
  envelope stores them as text or base64);
* :meth:`Attribute.from_json` turns it back.

:meth:`Attribute.cast` converts what a user assigns into the field's
``__base_type__``; a value that cannot be converted raises
:class:`~repocket.errors.ValidationError` naming ``Model.field`` and the value.

Fields and ``None``: a field that was never given holds its ``default``
(called, when callable, once per instance), else ``None`` when it is declared
``null=True``, else its *empty value*: ``""`` for :class:`Unicode`, ``b""``
for :class:`Bytes` and :class:`ByteStream`, and ``None`` for every other type.
With ``null=False`` (the default), *assigning* ``None`` is refused with a
ValidationError; declare ``null=True`` for a field whose value may be set to
``None``.
"""

from __future__ import annotations

import ast
import datetime as _dt
import decimal
import json
import json as _json
import math
import os
import re
import struct
import sys
import time
import uuid as _uuid
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, overload

from . import serialization
from .errors import RepocketActiveRecordDefinitionError, UnsavedRecordError, ValidationError
from .pointers import PendingPointer
from .relations import DO_NOTHING, SET_NULL, OnDelete
from .text import short_repr

if TYPE_CHECKING:  # pragma: no cover - typing only
    from typing_extensions import Self, TypedDict, TypeVar, Unpack

    from .model import ActiveRecord

    # The type of a field's values, as a type checker sees them.  It defaults
    # to Any, so that a bare ``Attribute`` annotation still means any field.
    _T = TypeVar("_T", default=Any)
    _M = TypeVar("_M", bound=ActiveRecord)

    class _Options(TypedDict, total=False):
        """The keyword arguments of :class:`Attribute` besides ``null``."""

        default: Any
        encoding: str
        index: bool | str | None
        unique: bool

else:
    from typing import TypeVar

    # typing's TypeVar takes no default before Python 3.13; only type
    # checkers read the default, so the runtime one goes without
    _T = TypeVar("_T")

__all__ = [
    "Attribute",
    "Unicode",
    "Bytes",
    "Integer",
    "Boolean",
    "Float",
    "Decimal",
    "DateTime",
    "UUID",
    "AutoUUID",
    "JSON",
    "Pointer",
    "ByteStream",
]

_NOT_GIVEN: Any = object()


class Attribute(Generic[_T]):
    """Base class of every field type.

    Generic in the type of the field's values, for type checkers: read from
    a record, ``Integer()`` gives an ``int``, ``Integer(null=True)`` an
    ``int | None`` (see "Type checking" in the models documentation).

    :param null: whether ``None`` may be assigned to the field.
    :param default: the value of a field that was not given; a callable is
        called once per new instance.
    :param encoding: the text encoding used to turn ``str`` into ``bytes``
        for byte fields.
    :param index: ``None`` (the default) gives the field its type's default
        indexes (see :attr:`default_indexes`); ``False`` turns indexing off;
        ``True`` asks for the default indexes explicitly; ``"prefix"`` (on
        :class:`Unicode`) also indexes prefixes for ``__startswith`` lookups.
    :param unique: refuse, atomically at save time, a value that another
        record of the model already holds (:class:`~repocket.errors.UniqueViolation`).
    """

    __base_type__: ClassVar[type] = str
    #: whether the field's values can be sorted (``order_by``); a type
    #: whose values have no order (JSON documents) sets it False, and
    #: ordering by such a field is refused when the query is built.
    orderable: ClassVar[bool] = True
    #: index kinds a field of this type gets by default: ``"eq"`` (equality,
    #: ``__in``, ``__ne``), ``"range"`` (``__gt``... and ordering), ``"prefix"``.
    default_indexes: ClassVar[frozenset[str]] = frozenset({"eq"})
    #: index kinds this type can have at all.
    supported_indexes: ClassVar[frozenset[str]] = frozenset({"eq"})
    #: the JSON type of stored values that ``from_json`` returns unchanged
    #: (the loader then skips calling it); ``None`` when there is none.
    json_type: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        serialization.register_type(cls)

    def __init__(
        self,
        null: bool = False,
        default: Any = None,
        encoding: str = "utf-8",
        index: bool | str | None = None,
        unique: bool = False,
    ) -> None:
        self.null = null
        self.default = default
        self.encoding = encoding
        self.unique = unique
        self.name: str = ""
        self.owner: type | None = None
        self.indexes = self._choose_indexes(index)
        if unique and index is None and "eq" in self.supported_indexes:
            self.indexes |= {"eq"}  # a unique field is found by its value
        if unique and "eq" not in self.indexes:
            why = "cannot have" if "eq" not in self.supported_indexes else "turns off"
            raise RepocketActiveRecordDefinitionError(
                f"{type(self).__name__}(unique=True) needs an equality index, "
                f"which this field {why}"
            )

    def _choose_indexes(self, index: bool | str | None) -> frozenset[str]:
        if index is None:
            return self.default_indexes
        if index is False:
            return frozenset()
        if index is True:
            chosen = self.default_indexes or self.supported_indexes
        elif isinstance(index, str):
            chosen = self.default_indexes | {index}
        else:
            raise RepocketActiveRecordDefinitionError(
                f"index= takes None, True, False or an index kind, not {index!r}"
            )
        unsupported = chosen - self.supported_indexes
        if unsupported or not chosen:
            raise RepocketActiveRecordDefinitionError(
                f"{a_or_an(type(self).__name__)} field cannot have "
                f"{', '.join(sorted(unsupported)) or 'an'} index; it supports: "
                f"{', '.join(sorted(self.supported_indexes)) or 'none'}"
            )
        return frozenset(chosen)

    # -- descriptor protocol ------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.owner = owner

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...
    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._values[self.name]

    def __set__(self, instance: Any, value: _T) -> None:
        instance._values[self.name] = self.clean(value, type(instance).__name__)

    def __repr__(self) -> str:
        where = f"{self.owner.__name__}.{self.name}" if self.owner and self.name else "unbound"
        return f"<{type(self).__name__} {where}>"

    # -- documented 0.0.1 API -------------------------------------------------

    @classmethod
    def get_base_type(cls) -> type:
        """Returns the ``__base_type__``: the Python type of the field's values."""
        return cls.__base_type__

    @classmethod
    def cast(cls, value: Any) -> Any:
        """Casts the attribute value as the defined ``__base_type__``.

        :raises ValueError: or ``TypeError``, when the value cannot be cast.
        """
        if isinstance(value, cls.__base_type__):
            return value
        return cls.__base_type__(value)

    def to_python(self, value: Any, simple: bool = False) -> Any:
        """Returns a json-safe, serialized version of the attribute.

        :param simple: ``True`` returns just the JSON-safe value; ``False``
            returns the whole envelope (``{"type", "value", "module"}``).
        """
        data = serialization.envelope(self, value)
        return data["value"] if simple else data

    def to_string(self, value: Any) -> str:
        """Utility method that knows how to safely convert the value into a string.

        Returns the envelope JSON text, exactly what storage holds.
        """
        return serialization.dumps(self, value)

    # -- conversion pair ------------------------------------------------------

    @classmethod
    def to_json(cls, value: Any) -> Any:
        """The JSON-safe form of a (cast) value; ``bytes`` are allowed."""
        return value

    @classmethod
    def from_json(cls, value: Any) -> Any:
        """The Python value of a JSON-safe form produced by :meth:`to_json`."""
        return cls.cast(value)

    # -- used by the model layer ----------------------------------------------

    def empty_value(self) -> Any:
        """What a field holds when it was never given and has no default."""
        return None

    def initial_value(self) -> Any:
        """The value of a new instance's field: the default, else ``None`` for
        a ``null=True`` field, else the empty value.

        A value default was checked when the model class was defined
        (:meth:`check_default`); what a callable default returns is checked
        here, as an assigned value is.

        :raises ValidationError: a callable default returned a value the
            field cannot hold.
        """
        default = self.default
        if default is None:
            return None if self.null else self.empty_value()
        if callable(default):
            model_name = self.owner.__name__ if self.owner is not None else type(self).__name__
            return self.clean(default(), model_name)
        return self.cast(default)

    def check_default(self, model_name: str) -> None:
        """Refuse, when the model class is defined, a default the field cannot hold.

        A callable default is only called for new instances, so what it
        returns is checked then (see :meth:`initial_value`).

        :raises RepocketActiveRecordDefinitionError: naming ``model_name.field``
            and the default.
        """
        default = self.default
        if default is None or callable(default):
            return
        try:
            self.clean(default, model_name)
        except ValidationError as exc:
            raise RepocketActiveRecordDefinitionError(
                f"{model_name}.{self.name} = {type(self).__name__}(default="
                f"{short_repr(default)}): the field cannot hold its default: {exc}"
            ) from exc

    def clean(self, value: Any, model_name: str) -> Any:
        """Validate and cast a value assigned to this field of ``model_name``.

        :raises ValidationError: naming ``model_name.field`` and the value.
        """
        if value is None:
            if self.null:
                return None
            raise ValidationError(
                f"{model_name}.{self.name} does not accept None (declare it with null=True)",
                model=model_name,
                field=self.name,
                value=value,
            )
        try:
            return self.cast(value)
        except RepocketActiveRecordDefinitionError:
            # a TypeError too, but it says the model is wrong, not the value
            # (a Pointer naming no model): it must not read as a bad value
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise ValidationError(
                f"{model_name}.{self.name} ({type(self).__name__}) cannot take "
                f"{short_repr(value)}: {exc}",
                model=model_name,
                field=self.name,
                value=value,
            ) from exc

    def key_text(self, value: Any, model_name: str) -> str:
        """The text of a value of this primary-key field as record keys
        hold it (:meth:`clean` first, so a bad value raises the same error).

        :raises ValidationError: naming ``model_name.field`` and the value.
        """
        return str(self.clean(value, model_name))

    def on_save(self, value: Any) -> Any:
        """The value to store at save time; :class:`DateTime` stamps ``auto_now``."""
        return value

    # -- index support -----------------------------------------------------------

    def index_term(self, value: Any) -> str | None:
        """The text under which an equality index files ``value``.

        Values that compare equal in Python get the same text; ``None`` for
        a value that equals nothing (a NaN).
        """
        data = serialization.envelope(self, value)
        text = json.dumps(data["value"], ensure_ascii=True, allow_nan=False)
        return text + ";base64" if "encoding" in data else text

    def sort_score(self, value: Any) -> tuple[str, float, bool] | None:
        """Where a range index places ``value``: ``(index suffix, score, exact)``.

        ``exact`` is False when the float score does not equal the value
        (such records are compared exactly after loading).  ``None`` when the
        value has no place (a NaN).
        """
        return None


class Unicode(Attribute[_T]):
    """Handles unicode-safe values ``__base_type__ = str``.

    Accepts ``str``, and ``bytes`` in the field's encoding.

    A ``str`` holding surrogate code points (not valid Unicode text) cannot be
    kept exactly as JSON text: JSON reads ``"\\ud83d\\ude00"`` as one character,
    so two separate surrogates would come back joined.  Such a string is
    stored as base64 of its UTF-8 bytes (``surrogatepass``), marked
    ``"encoding": "base64"`` in the envelope like non-UTF-8 bytes.
    """

    __base_type__ = str
    supported_indexes = frozenset({"eq", "prefix"})
    json_type = str

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: Unicode[str], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: Unicode[str | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @classmethod
    def cast(cls, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8")
        raise TypeError(f"expected str or UTF-8 bytes, got {type(value).__name__}")

    def clean(self, value: Any, model_name: str) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)) and self.encoding != "utf-8":
            try:
                value = bytes(value).decode(self.encoding)
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    f"{model_name}.{self.name} (Unicode) cannot take {short_repr(value)}: {exc}",
                    model=model_name,
                    field=self.name,
                    value=value,
                ) from exc
        return super().clean(value, model_name)

    @classmethod
    def to_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # surrogates: JSON text cannot keep them apart; the envelope
                # stores these (non-UTF-8) bytes in base64
                return value.encode("utf-8", "surrogatepass")
        return value

    def index_term(self, value: Any) -> str | None:
        # the JSON text of the string, as the generic rule gives it, without
        # building the envelope (base64-stored strings take the generic rule)
        if type(value) is str and value.isascii():
            return _encode_text(value)
        return super().index_term(value)

    @classmethod
    def from_json(cls, value: Any) -> str:
        if isinstance(value, bytes):  # a base64-marked value, see to_json
            return value.decode("utf-8", "surrogatepass")
        return cls.cast(value)

    def empty_value(self) -> str:
        return ""


class Bytes(Attribute[_T]):
    """Handles raw byte strings ``__base_type__ = bytes``.

    A ``str`` is encoded with the field's encoding.  Stored as text when the
    bytes are valid UTF-8, otherwise as base64 marked in the envelope.
    """

    __base_type__ = bytes
    #: not indexed unless asked (``index=True`` or ``unique=True``): bytes
    #: are often secrets (password hashes, tokens), and an index would copy
    #: them into key names.
    default_indexes: ClassVar[frozenset[str]] = frozenset()

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: Bytes[bytes], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: Bytes[bytes | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @classmethod
    def cast(cls, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        raise TypeError(f"expected bytes or str, got {type(value).__name__}")

    def clean(self, value: Any, model_name: str) -> Any:
        if isinstance(value, str) and self.encoding != "utf-8":
            value = value.encode(self.encoding)
        return super().clean(value, model_name)

    @classmethod
    def from_json(cls, value: Any) -> bytes:
        return cls.cast(value)

    def empty_value(self) -> bytes:
        return b""


class ByteStream(Bytes[_T]):
    """Handles bytes that will be stored as a string in redis ``__base_type__ = bytes``.

    The value lives in its own key (``<record key>:field:<name>``) rather
    than in the record's hash, so that ``append_<name>(data)`` can grow it
    with one ``APPEND`` without rewriting the record.  ``save()`` writes a
    stream only when it was assigned since the record was loaded or saved,
    so saving never overwrites bytes that another process appended.
    """

    default_indexes: ClassVar[frozenset[str]] = frozenset()
    supported_indexes: ClassVar[frozenset[str]] = frozenset()

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: ByteStream[bytes], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: ByteStream[bytes | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    def __set__(self, instance: Any, value: _T) -> None:
        super().__set__(instance, value)
        instance._dirty_streams.add(self.name)


_MAX_FLOAT = 1.7976931348623157e308
_encode_text = _json.encoder.encode_basestring_ascii


def _number_term(value: decimal.Decimal) -> str | None:
    """Canonical text of a number: equal numbers (5, 5.0, Decimal('5.00')) share it."""
    if value.is_nan():
        return None  # a NaN equals nothing
    if value.is_infinite():
        return "-Infinity" if value < 0 else "Infinity"
    if value == 0:
        return "0"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0")
    exponent += len(digits) - len(text)
    return f"{'-' if sign else ''}{text}E{exponent}"


def _number_score(value: decimal.Decimal | int | float) -> tuple[str, float, bool]:
    """A float score for a range index, and whether it equals the value exactly."""
    if (isinstance(value, decimal.Decimal) and value.is_nan()) or (
        isinstance(value, float) and math.isnan(value)
    ):
        return ("", -math.inf, False)  # sorts with None, matches no range lookup
    try:
        score = float(value)
    except OverflowError:
        score = math.inf if value > 0 else -math.inf
    if math.isinf(score):
        # -inf is kept for None and NaN; infinities sort at the extremes
        return ("", _MAX_FLOAT if score > 0 else -_MAX_FLOAT, False)
    exact = (
        decimal.Decimal(score) == value if isinstance(value, decimal.Decimal) else score == value
    )
    return ("", score, exact)


class Integer(Attribute[_T]):
    """Handles int ``__base_type__ = int``.

    Any size is stored exactly, up to the number of decimal digits Python
    converts to and from text (``sys.get_int_max_str_digits()``, 4300 by
    default): the envelope holds an integer as a JSON number, so a larger
    one is refused when assigned.
    """

    __base_type__ = int
    json_type = int
    # the range index answers equality too (a one-score range, confirmed on
    # loading where a score is inexact): one sorted set per field, instead of
    # a set per distinct value as well
    default_indexes = frozenset({"range"})
    supported_indexes = frozenset({"eq", "range"})

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: Integer[int], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: Integer[int | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @classmethod
    def cast(cls, value: Any) -> int:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return _storable_int(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            return int(value)
        if isinstance(value, decimal.Decimal):
            if not value.is_finite() or value != value.to_integral_value():
                raise ValueError(f"{value!r} is not a whole number")
            limit = sys.get_int_max_str_digits()
            if limit and value.adjusted() >= limit:  # checked before int(): 1E+999999999
                raise ValueError(
                    f"{short_repr(value)} has more than {limit} digits, "
                    f"the most an integer field stores"
                )
            return int(value)
        if isinstance(value, (str, bytes)):
            return int(value)
        raise TypeError(f"expected an integer, got {type(value).__name__}")

    @classmethod
    def from_json(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str, bytes)):
            raise TypeError(f"expected a JSON integer, got {type(value).__name__}")
        return cls.cast(value)

    def index_term(self, value: Any) -> str | None:
        if type(value) is int:  # _number_term's text, without a Decimal
            digits = str(abs(value))
            significant = digits.rstrip("0") or "0"
            if significant == "0":
                return "0"
            sign = "-" if value < 0 else ""
            return f"{sign}{significant}E{len(digits) - len(significant)}"
        return _number_term(decimal.Decimal(value))

    def sort_score(self, value: Any) -> tuple[str, float, bool] | None:
        if type(value) is int and -_EXACT_INT <= value <= _EXACT_INT:
            return ("", float(value), True)  # every such int is a float exactly
        return _number_score(value)


class Boolean(Attribute[_T]):
    """Handles bool ``__base_type__ = bool``: ``True`` or ``False``.

    Stored as its own envelope type (``{"type": "Boolean", "value": true,
    ...}``), so it reads back as a ``bool`` (an :class:`Integer` given
    ``True`` stores and returns ``1``).  Equality-indexed by default:
    ``filter(active=True)``.  Accepts ``True``/``False`` and the integers
    ``1``/``0``; anything else (``"yes"``, ``2``, ``None`` without
    ``null=True``) raises :class:`~repocket.errors.ValidationError`.  A field
    never given, with no default, holds ``False``.
    """

    __base_type__ = bool
    json_type = bool

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: Boolean[bool], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: Boolean[bool | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @classmethod
    def cast(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if type(value) is int and value in (0, 1):
            return bool(value)
        raise TypeError(f"expected True or False (or 1 or 0), got {short_repr(value)}")

    @classmethod
    def from_json(cls, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected a JSON true or false, got {type(value).__name__}")
        return value

    def empty_value(self) -> bool:
        return False

    def index_term(self, value: Any) -> str | None:
        return "true" if value else "false"


#: integers up to this magnitude are exactly representable as floats
_EXACT_INT = 2**53


def _storable_int(value: int) -> int:
    """``value``, if the envelope can write it as a JSON number (decimal text)."""
    limit = sys.get_int_max_str_digits()
    if limit and value.bit_length() > 3 * limit:  # below that, it has < limit digits
        try:
            str(value)
        except ValueError:
            raise ValueError(
                f"an integer of {value.bit_length()} bits has more than "
                f"{limit} digits, the most an integer field stores"
            ) from None
    return value


_CANONICAL_NAN_BITS = struct.unpack("<Q", struct.pack("<d", math.nan))[0]
_NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
_NAN_BITS = re.compile(r"NaN:0x([0-9a-f]{16})")


class Float(Attribute[_T]):
    """Handles float ``__base_type__ = float``.

    Finite floats are stored as JSON numbers (Python writes the shortest text
    that reads back to the same bits).  JSON has no infinities or NaNs, so
    those are stored as the strings ``"Infinity"``, ``"-Infinity"``, ``"NaN"``,
    or ``"NaN:0x<hex bits>"`` for a NaN with a sign or payload, keeping every
    float bit for bit.
    """

    __base_type__ = float
    json_type = float
    # the range index answers equality too (a one-score range, confirmed on
    # loading where a score is inexact): one sorted set per field, instead of
    # a set per distinct value as well
    default_indexes = frozenset({"range"})
    supported_indexes = frozenset({"eq", "range"})

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: Float[float], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: Float[float | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @classmethod
    def cast(cls, value: Any) -> float:
        if isinstance(value, float):
            return value
        if isinstance(value, (int, decimal.Decimal, str)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"expected a number, got {type(value).__name__}")

    @classmethod
    def to_json(cls, value: float) -> Any:
        if math.isfinite(value):
            return value
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        bits = struct.unpack("<Q", struct.pack("<d", value))[0]
        return "NaN" if bits == _CANONICAL_NAN_BITS else f"NaN:{bits:#018x}"

    @classmethod
    def from_json(cls, value: Any) -> float:
        if isinstance(value, str):
            if value in _NON_FINITE:
                return _NON_FINITE[value]
            match = _NAN_BITS.fullmatch(value)
            bits = int(match.group(1), 16) if match else -1
            if not 0 <= bits < 2**64:
                raise ValueError(f"{value!r} is not a stored float")
            result: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
            if not math.isnan(result):
                raise ValueError(f"{value!r} does not hold the bits of a NaN")
            return result
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a JSON number, got {type(value).__name__}")
        return float(value)

    def index_term(self, value: Any) -> str | None:
        return _number_term(decimal.Decimal(value))

    def sort_score(self, value: Any) -> tuple[str, float, bool] | None:
        return _number_score(value)


class Decimal(Attribute[_T]):
    """Handles Decimal ``__base_type__ = decimal.Decimal``.

    Stored as its exact text, so every digit (and the exponent) is kept.
    """

    __base_type__ = decimal.Decimal
    # the range index answers equality too (a one-score range, confirmed on
    # loading where a score is inexact): one sorted set per field, instead of
    # a set per distinct value as well
    default_indexes = frozenset({"range"})
    supported_indexes = frozenset({"eq", "range"})

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: Decimal[decimal.Decimal],
            null: Literal[False] = False,
            **options: Unpack[_Options],
        ) -> None: ...
        @overload
        def __init__(
            self: Decimal[decimal.Decimal | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @classmethod
    def cast(cls, value: Any) -> decimal.Decimal:
        if isinstance(value, decimal.Decimal):
            return value
        if isinstance(value, float):
            # repr() is the shortest text of the float: what a person typed.
            return decimal.Decimal(repr(value))
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            try:
                return decimal.Decimal(value)
            except decimal.InvalidOperation:
                raise ValueError(f"{value!r} is not a decimal number") from None
        raise TypeError(f"expected a decimal number, got {type(value).__name__}")

    @classmethod
    def to_json(cls, value: decimal.Decimal) -> str:
        return str(value)

    @classmethod
    def from_json(cls, value: Any) -> decimal.Decimal:
        if not isinstance(value, str):
            raise TypeError(f"expected decimal text, got {type(value).__name__}")
        return cls.cast(value)

    def clean(self, value: Any, model_name: str) -> Any:
        """Cast an assigned value; a signalling NaN is refused.

        ``Decimal('sNaN')`` raises ``InvalidOperation`` whenever it is
        compared, even for equality, so a record holding one would break
        ``filter(amount__ne=...)``, ``exclude()`` and ``matches()``.  A quiet
        ``NaN`` is accepted (it equals nothing, as in Python).  Stored data
        is still read as it was written (see :meth:`from_json`).
        """
        if type(value) is decimal.Decimal and not value.is_snan():
            return value  # what the general path returns for it, sooner
        cleaned = super().clean(value, model_name)
        if cleaned is not None and cleaned.is_snan():
            raise ValidationError(
                f"{model_name}.{self.name} (Decimal) cannot take {short_repr(value)}: a "
                f"signalling NaN cannot be compared, even for equality; use "
                f"Decimal('NaN') or None",
                model=model_name,
                field=self.name,
                value=value,
            )
        return cleaned

    def index_term(self, value: Any) -> str | None:
        return _number_term(value)

    def sort_score(self, value: Any) -> tuple[str, float, bool] | None:
        return _number_score(value)


class DateTime(Attribute[_T]):
    """A date and time, aware or naive, kept to the microsecond.

    Stored as ISO 8601 text; an aware value keeps its UTC offset (a named zone
    is stored as its offset at that moment).

    :param auto_now: stamp the current time (aware, UTC) on every ``save()``.
    """

    __base_type__ = _dt.datetime
    # the range index answers equality too (a one-score range, confirmed on
    # loading where a score is inexact): one sorted set per field, instead of
    # a set per distinct value as well
    default_indexes = frozenset({"range"})
    supported_indexes = frozenset({"eq", "range"})

    @overload
    def __init__(
        self: DateTime[_dt.datetime],
        auto_now: bool = False,
        null: Literal[False] = False,
        **options: Unpack[_Options],
    ) -> None: ...
    @overload
    def __init__(
        self: DateTime[_dt.datetime | None],
        auto_now: bool = False,
        *,
        null: bool,
        **options: Unpack[_Options],
    ) -> None: ...
    @overload
    def __init__(
        self: DateTime[_dt.datetime | None],
        auto_now: bool,
        null: bool,
        **options: Unpack[_Options],
    ) -> None: ...
    def __init__(self, auto_now: bool = False, null: bool = False, **kwargs: Any) -> None:
        super().__init__(null=null, **kwargs)
        self.auto_now = auto_now

    @classmethod
    def cast(cls, value: Any) -> _dt.datetime:
        if isinstance(value, _dt.datetime):
            return value
        if isinstance(value, str):
            return _parse_iso_datetime(value)
        raise TypeError(f"expected a datetime or ISO 8601 text, got {type(value).__name__}")

    @classmethod
    def to_json(cls, value: _dt.datetime) -> str:
        if value.tzinfo is not None:
            offset = value.utcoffset()
            value = value.replace(tzinfo=_dt.timezone(offset) if offset is not None else None)
        return value.isoformat()

    @classmethod
    def from_json(cls, value: Any) -> _dt.datetime:
        if not isinstance(value, str):
            raise TypeError(f"expected ISO 8601 text, got {type(value).__name__}")
        return _parse_iso_datetime(value)

    def on_save(self, value: Any) -> Any:
        if self.auto_now:
            return _dt.datetime.now(_dt.timezone.utc)
        return value

    def index_term(self, value: Any) -> str | None:
        # Aware values are equal when they are the same instant, whatever
        # their offsets; a naive value never equals an aware one.
        moment: _dt.datetime = value
        if moment.utcoffset() is None:
            return "naive:" + moment.isoformat()
        # the instant as microseconds since 1970: subtracting aware datetimes
        # works on timedeltas, so it cannot overflow near year 1 or 9999 the
        # way astimezone() can
        return f"aware:{(moment - _EPOCH) // _dt.timedelta(microseconds=1)}"

    def sort_score(self, value: Any) -> tuple[str, float, bool] | None:
        """Microseconds since 1970 (naive values read as UTC), tagged aware/naive.

        Exact for about 285 years either side of 1970.
        """
        aware = value.utcoffset() is not None
        moment = value if aware else value.replace(tzinfo=_dt.timezone.utc)
        micros = (moment - _EPOCH) // _dt.timedelta(microseconds=1)
        return ("aware" if aware else "naive", float(micros), abs(micros) <= 2**53)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

# isoformat() writes a UTC offset of less than one second as "+00:00:00.000001",
# which Python 3.11's fromisoformat() reads back as UTC, dropping it.
_SUBSECOND_OFFSET = re.compile(r"([+-])00:00:00\.(\d{1,6})\Z")


if sys.version_info >= (3, 11):
    _fromisoformat = _dt.datetime.fromisoformat
else:  # pragma: no cover - Python 3.10 reads no "Z" for UTC, which 3.11 does

    def _fromisoformat(text: str) -> _dt.datetime:
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return _dt.datetime.fromisoformat(text)


def _parse_iso_datetime(text: str) -> _dt.datetime:
    """``datetime.fromisoformat``, keeping offsets of less than one second."""
    value = _fromisoformat(text)
    match = _SUBSECOND_OFFSET.search(text) if "00:00:00." in text else None
    if match and value.tzinfo is not None:
        micros = int(match.group(2).ljust(6, "0")) * (-1 if match.group(1) == "-" else 1)
        value = value.replace(tzinfo=_dt.timezone(_dt.timedelta(microseconds=micros)))
    return value


class UUID(Attribute[_T]):
    """A UUID ``__base_type__ = uuid.UUID``; accepts a UUID or its text."""

    __base_type__ = _uuid.UUID

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: UUID[_uuid.UUID], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: UUID[_uuid.UUID | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    def key_text(self, value: Any, model_name: str) -> str:
        # ids come back as text by the thousand (get_many): text already in
        # the canonical form, which str(UUID(text)) would give back, is taken
        # as it is
        if value.__class__ is str and _canonical_uuid(value):
            return value
        if value.__class__ is _uuid.UUID:
            return str(value)
        return super().key_text(value, model_name)

    @classmethod
    def cast(cls, value: Any) -> _uuid.UUID:
        if isinstance(value, _uuid.UUID):
            return value
        if isinstance(value, str):
            return _uuid.UUID(value)
        raise TypeError(f"expected a UUID or its text, got {type(value).__name__}")

    @classmethod
    def to_json(cls, value: _uuid.UUID) -> str:
        return str(value)

    @classmethod
    def from_json(cls, value: Any) -> _uuid.UUID:
        if not isinstance(value, str):
            raise TypeError(f"expected UUID text, got {type(value).__name__}")
        return _uuid_from_text(value)


class AutoUUID(UUID[_T]):
    """Automatically assigns a UUID as the value. ``__base_type__ = uuid.UUID``.

    The model's primary key: a model declares at most one, and a model that
    declares none gets ``id = AutoUUID()``.  The value is assigned by the
    first ``save()`` when none was given.

    Generated ids are time-ordered random UUIDs (version 7, RFC 9562: 48
    bits of Unix milliseconds, then 74 random bits from ``os.urandom``), so
    they are unique across threads, processes and forks -- 0.0.1's
    ``uuid1()`` shared its clock sequence with forked children, whose ids
    could collide.  The primary key is never an index term: a record is
    found by its id through its key.
    """

    # the id is the record's key: no index entry is needed, or allowed
    default_indexes: ClassVar[frozenset[str]] = frozenset()
    supported_indexes: ClassVar[frozenset[str]] = frozenset()

    if TYPE_CHECKING:  # the value type follows ``null``

        @overload
        def __init__(
            self: AutoUUID[_uuid.UUID], null: Literal[False] = False, **options: Unpack[_Options]
        ) -> None: ...
        @overload
        def __init__(
            self: AutoUUID[_uuid.UUID | None], null: bool, **options: Unpack[_Options]
        ) -> None: ...
        def __init__(self, null: bool = False, **options: Unpack[_Options]) -> None: ...

    @staticmethod
    def generate() -> _uuid.UUID:
        """A new primary key value: a UUID version 7."""
        return uuid7()

    @staticmethod
    def generate_many(count: int) -> list[_uuid.UUID]:
        """``count`` new primary key values (for ``bulk_create``)."""
        return uuid7_many(count)


class JSON(Attribute[Any]):
    """Stores python data as JSON text, and reads it back.

    Accepts ``None``, ``bool``, ``int``, ``float`` (finite), ``str``, lists,
    tuples (read back as lists) and dicts with ``str`` keys, nested freely.

    Stored JSON text is read at any size.  A value that repocket 0.0.1 stored
    as a Python literal (``str(data)``, e.g. ``"{u'yay': u'json baby'}"``)
    is read only up to 64 KiB (:attr:`REPR_FALLBACK_LIMIT`, 65,536
    characters): parsing a literal costs hundreds of bytes of memory per
    character, so a larger one raises :class:`~repocket.errors.EnvelopeError`
    naming the key and field instead.  To read larger 0.0.1 values (and
    rewrite them as JSON by saving), raise ``JSON.REPR_FALLBACK_LIMIT``.
    """

    #: the longest 0.0.1 Python-literal value (in characters) that is read
    REPR_FALLBACK_LIMIT: ClassVar[int] = 64 * 1024

    __base_type__ = object
    default_indexes: ClassVar[frozenset[str]] = frozenset()
    supported_indexes: ClassVar[frozenset[str]] = frozenset()
    #: documents (dicts, lists) have no order
    orderable: ClassVar[bool] = False

    @classmethod
    def cast(cls, value: Any) -> Any:
        _check_json(value, "value")
        # Normalise (tuples -> lists, fresh containers) so that what the
        # instance holds is exactly what a load returns.
        return _json.loads(_json.dumps(value, allow_nan=False))

    @classmethod
    def to_json(cls, value: Any) -> str:
        return _json.dumps(value, allow_nan=False)

    def to_python(self, value: Any, simple: bool = False) -> Any:
        """The document itself when ``simple`` (already JSON data; a copy, so
        changing it leaves the record alone), else the envelope, which holds
        the JSON text, as storage does."""
        if simple:
            return None if value is None else _json.loads(_json.dumps(value))
        return super().to_python(value, simple=False)

    @classmethod
    def from_json(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected JSON text, got {type(value).__name__}")
        try:
            return _json.loads(value, parse_constant=_refuse_constant, parse_float=_finite_float)
        except _json.JSONDecodeError as exc:
            # repocket 0.0.1 stored str(data) -- "{u'yay': u'json baby'}" --
            # instead of JSON.  ast.literal_eval reads Python literals only
            # (it never runs code); the result must still be JSON data.
            # It parses the whole text into a syntax tree first (14.6 s and
            # 2 GB for 5 MB), so whoever can write to the database could
            # exhaust the reader's memory: the size is bounded.
            if len(value) > cls.REPR_FALLBACK_LIMIT:
                raise ValueError(
                    f"it is not JSON ({exc}), and at {len(value)} characters it is "
                    f"longer than the {cls.REPR_FALLBACK_LIMIT} characters read as a "
                    f"repocket 0.0.1 Python literal (JSON.REPR_FALLBACK_LIMIT)"
                ) from None
            try:
                data = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise exc from None
            _check_json(data, "value")
            # read as JSON data reads: a tuple (which JSON text cannot hold)
            # comes back as a list, as JSON.cast gives it
            return _json.loads(_json.dumps(data))


def _finite_float(text: str) -> float:
    """A JSON number as a float; one beyond float range (``1e999``) is refused,
    as JSON data holds no infinities."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a float")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_json(value: Any, path: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            _check_json(item, f"{path}[{key!r}]")
        return
    raise TypeError(f"{path} is a {type(value).__name__}, which JSON cannot hold")


class Pointer(Attribute[_T]):
    """Think of it as a soft foreign key.

    Holds another record; stores the target's hash key.  Loading a record
    loads the records its pointers name in one more round trip for the whole
    batch.  A pointer whose target has been deleted loads as ``None`` (and a
    warning is logged) rather than failing.

    :param to_model: the target model class, or its name (for models declared
        later, or pointing at themselves).
    :param related_name: gives the target's records an attribute of that
        name: the query of the records pointing to them
        (``author.posts.filter(...)``).
    :param on_delete: what deleting a target does to the records pointing
        to it: ``DO_NOTHING`` (the default), ``PROTECT``, ``CASCADE`` or
        ``SET_NULL`` (which needs ``null=True``); see :mod:`repocket.relations`.
    """

    __base_type__ = object

    # A target class gives its records' type (or None: a deleted target loads
    # as None, whatever ``null`` says); a target named by a string, only Any.
    @overload
    def __init__(
        self: Pointer[_M | None],
        to_model: type[_M],
        null: bool = False,
        *,
        related_name: str | None = None,
        on_delete: OnDelete = DO_NOTHING,
        **options: Unpack[_Options],
    ) -> None: ...
    @overload
    def __init__(
        self: Pointer[Any],
        to_model: str,
        null: bool = False,
        *,
        related_name: str | None = None,
        on_delete: OnDelete = DO_NOTHING,
        **options: Unpack[_Options],
    ) -> None: ...
    def __init__(
        self,
        to_model: type[ActiveRecord] | str,
        null: bool = False,
        *,
        related_name: str | None = None,
        on_delete: OnDelete = DO_NOTHING,
        **kwargs: Any,
    ) -> None:
        super().__init__(null=null, **kwargs)
        self._to_model = to_model
        if not isinstance(on_delete, OnDelete):
            raise RepocketActiveRecordDefinitionError(
                f"Pointer(on_delete=...) takes CASCADE, SET_NULL, PROTECT or DO_NOTHING "
                f"(from repocket), not {on_delete!r}"
            )
        if on_delete is SET_NULL and not null:
            raise RepocketActiveRecordDefinitionError(
                "Pointer(on_delete=SET_NULL) needs null=True: the pointer is set to None"
            )
        if related_name is not None and (
            not related_name.isidentifier() or related_name.startswith("_")
        ):
            raise RepocketActiveRecordDefinitionError(
                f"Pointer(related_name={related_name!r}) must be a public Python name"
            )
        self.related_name = related_name
        self.on_delete = on_delete

    @property
    def to_model(self) -> type[ActiveRecord]:
        """The target model class (resolved by name on first use if needed)."""
        if isinstance(self._to_model, str):
            from .registry import resolve_model

            try:
                self._to_model = resolve_model(self._to_model, near=self.owner)
            except RepocketActiveRecordDefinitionError as exc:
                where = f"{self.owner.__name__}.{self.name}" if self.owner else "a Pointer"
                raise RepocketActiveRecordDefinitionError(
                    f"{where} = Pointer({self._to_model!r}): {exc}"
                ) from None
        return self._to_model

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...
    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance._values[self.name]
        if isinstance(value, PendingPointer):
            value = value.resolve(self, type(instance).__name__)
            instance._values[self.name] = value
        return value

    def cast(self, value: Any) -> Any:  # type: ignore[override]
        """Accept an instance of the target model; raise for anything else.

        (0.0.1 looked the target up here; repocket loads pointers in batches
        with the record that holds them instead.)
        """
        target = self.to_model
        if isinstance(value, PendingPointer):
            return value
        if not isinstance(value, target):
            raise TypeError(
                f"expected {a_or_an(target.__name__)} instance, got {type(value).__name__}"
            )
        return value

    @classmethod
    def to_json(cls, value: Any) -> str:
        if isinstance(value, PendingPointer):
            return value.key
        return str(value._record_key())

    @classmethod
    def from_json(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a record key, got {type(value).__name__}")
        return value

    def check_default(self, model_name: str) -> None:
        """As :meth:`Attribute.check_default`, once the target can be resolved:
        a target named by a string may be declared after this model (or be
        this model), so such a default is checked when first used."""
        if not isinstance(self._to_model, str):
            super().check_default(model_name)

    def index_term(self, value: Any) -> str | None:
        """A pointer is filed under its target's record key (``value`` may be the key)."""
        return json.dumps(value if isinstance(value, str) else self.to_json(value))

    def check_saved(self, value: Any, model_name: str) -> None:
        """Refuse to store a pointer to a record that has never been saved."""
        if value is None or isinstance(value, PendingPointer):
            return
        if not value._persisted:
            raise UnsavedRecordError(
                f"{model_name}.{self.name} points to an unsaved "
                f"{type(value).__name__} ({value!r}); save it first"
            )


_canonical_uuid = re.compile(
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
).fullmatch


def _uuid_from_text(text: str) -> _uuid.UUID:
    """``uuid.UUID(text)`` for the canonical 36-character form, built without
    ``UUID.__init__``'s general parsing (records are loaded by the thousand);
    the same digits are accepted, as ``UUID()`` reads them with ``int(, 16)``."""
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        digits = text.replace("-", "")
        if len(digits) == 32:
            value = _new_uuid(_uuid.UUID)
            _set_slot(value, "int", int(digits, 16))
            _set_slot(value, "is_safe", _UNKNOWN_SAFETY)
            return value
    return _uuid.UUID(text)


_new_uuid = object.__new__
_set_slot = object.__setattr__
# read once: an enum member read through its class costs a Python call
_UNKNOWN_SAFETY = _uuid.SafeUUID.unknown


def uuid7() -> _uuid.UUID:
    """A time-ordered random UUID (RFC 9562 version 7).

    The random bits come from ``os.urandom`` at every call, so forked
    processes never share generator state.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    made = _new_uuid(_uuid.UUID)  # UUID(int=value), without __init__'s checks
    _set_slot(made, "int", value)
    _set_slot(made, "is_safe", _UNKNOWN_SAFETY)
    return made


def uuid7_many(count: int) -> list[_uuid.UUID]:
    """``count`` time-ordered random UUIDs (as :func:`uuid7`), from one
    ``os.urandom`` call: a system call per id costs more than the id."""
    millis = (time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF
    entropy = os.urandom(10 * count)
    made = []
    for start in range(0, 10 * count, 10):
        rand = int.from_bytes(entropy[start : start + 10], "big")
        value = millis << 80 | rand & ((1 << 80) - 1)
        value = value & ~(0xF << 76) | 0x7 << 76  # version 7
        value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
        one = _new_uuid(_uuid.UUID)
        _set_slot(one, "int", value)
        _set_slot(one, "is_safe", _UNKNOWN_SAFETY)
        made.append(one)
    return made


def a_or_an(word: str) -> str:
    """``word`` with its indefinite article: "an Integer", "a Unicode", "an Author"."""
    # a leading "u" is taken as sounding "you" (Unicode, UUID, User)
    vowel_sound = word[:1].lower() in ("a", "e", "i", "o")
    return f"{'an' if vowel_sound else 'a'} {word}"
