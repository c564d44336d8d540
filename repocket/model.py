"""ActiveRecord: the base class of repocket models.

A model is a class whose attributes are :mod:`repocket.attributes` fields::

    class User(ActiveRecord):
        name = attributes.Unicode()
        email = attributes.Bytes()

The metaclass collects the fields in definition order (inherited ones first),
gives a model without an :class:`~repocket.attributes.AutoUUID` an implicit
``id = AutoUUID()``, creates the model's own ``DoesNotExist`` and
``MultipleObjectsReturned`` subclasses, adds an ``append_<name>()`` method per
:class:`~repocket.attributes.ByteStream`, and records the class in
:mod:`repocket.registry`.

The model layer talks to storage only through :class:`repocket.storage.Storage`.
"""

from __future__ import annotations

import asyncio
import reprlib
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from . import errors, serialization
from .asyncbridge import run_sync
from .attributes import (
    Attribute,
    AutoUUID,
    Bytes,
    ByteStream,
    Float,
    Integer,
    Pointer,
    Unicode,
    a_or_an,
)
from .connections import configure
from .decoding import compile_decoder, compile_encoder
from .indexes import entries_for, field_entries
from .keys import Collection
from .manager import ManagerDescriptor
from .pointers import PendingPointer, pointer_key
from .query import Lookup, lookup_matches, prepare_value
from .registry import register_model
from .relations import delete_with_relations, install_related, relations_to
from .storage import FieldSwap, RecordWrite, StoredRecord

__all__ = ["ActiveRecord", "ActiveRecordMeta", "Metadata", "MAX_INCREMENT_ATTEMPTS", "MAX_TTL"]

#: The longest time to live a record may be given, in seconds (100 years).
MAX_TTL = 100 * 365 * 24 * 3600

#: How often ``increment()`` computes the addition again when other writers
#: keep changing the value in between.
MAX_INCREMENT_ATTEMPTS = 1000

T = TypeVar("T", bound="ActiveRecord")


class Metadata:
    """What a model is, in one place: ``Model._meta``.

    Built once by the metaclass; the model layer reads everything it needs
    about a model from here, and prepares here what each load and save
    would otherwise work out again per record.

    :ivar fields: field name -> attribute, in definition order.
    :ivar primary_key: the name of the model's :class:`AutoUUID` field.
    :ivar collection: where storage keeps the model's records.
    :ivar stream_fields: names of the ByteStream fields.
    :ivar pointer_fields: names of the Pointer fields.
    :ivar hash_fields: names of the fields stored in the record's hash
        (every field but the streams).
    :ivar save_hooks: names of the fields whose value changes at save time
        (``DateTime(auto_now=True)``).
    """

    __slots__ = (
        "collection",
        "decode",
        "defaulted",
        "encode",
        "fields",
        "hash_fields",
        "indexed",
        "initial",
        "manager",
        "model",
        "namespace",
        "pointer_fields",
        "primary_key",
        "save_hooks",
        "stream_fields",
        "ttl",
    )

    def __init__(
        self,
        model: type,
        fields: Mapping[str, Attribute],
        primary_key: str,
        namespace: str | None = None,
        shards: int | None = None,
    ) -> None:
        self.model = model
        self.fields = fields
        self.primary_key = primary_key
        #: the model's ``objects`` (made on first use; see ManagerDescriptor)
        self.manager: Any = None
        #: the module part of the model's keys: ``Meta.namespace``, else the
        #: module the class is declared in
        self.namespace = namespace or model.__module__
        self.collection = Collection(self.namespace, model.__name__, shards)
        #: ``Meta.ttl``: the seconds each save gives a record to live (None: forever)
        self.ttl: float | None = None
        self.stream_fields = tuple(n for n, f in fields.items() if isinstance(f, ByteStream))
        self.pointer_fields = tuple(n for n, f in fields.items() if isinstance(f, Pointer))
        self.hash_fields = tuple(n for n in fields if n not in self.stream_fields)
        self.save_hooks = tuple(
            n for n, f in fields.items() if type(f).on_save is not Attribute.on_save
        )
        #: (name, attribute) of every field with an index
        self.indexed = tuple((n, f) for n, f in fields.items() if f.indexes)
        # a new instance's values before it is given any: every field, in
        # order, holding its initial value where that is the same immutable
        # constant for every instance (None, "", b""); the others ("defaulted":
        # a default, or a type's own initial value) are computed per instance
        self.defaulted = tuple((n, f) for n, f in fields.items() if not _constant_initial(f))
        self.initial = {
            n: None if f.null or (n, f) in self.defaulted else f.empty_value()
            for n, f in fields.items()
        }
        #: the stored hash fields' decoder and encoder (see :mod:`repocket.decoding`)
        hashed = {n: fields[n] for n in self.hash_fields}
        self.decode = compile_decoder(hashed, model.__name__, primary_key)
        self.encode = compile_encoder(hashed, model.__name__, primary_key)

    def key_of(self, record_id: str) -> str:
        """The key of the model's record ``record_id`` in the current storage."""
        return configure.storage().record_key(self.collection, record_id)


_CONSTANT_EMPTY = frozenset({Attribute.empty_value, Unicode.empty_value, Bytes.empty_value})


def _constant_initial(field: Attribute) -> bool:
    """Whether a new instance's value of ``field`` is always the same
    immutable constant: no default, and repocket's own empty value."""
    kind = type(field)
    return (
        field.default is None
        and kind.initial_value is Attribute.initial_value
        and (field.null or kind.empty_value in _CONSTANT_EMPTY)
    )


# Names of the model API; a field with one of these names would hide it.
_RESERVED = frozenset(
    {
        "save",
        "delete",
        "increment",
        "pk",
        "create",
        "asave",
        "adelete",
        "aincrement",
        "acreate",
        "expire",
        "ttl",
        "persist",
        "aexpire",
        "attl",
        "apersist",
        "matches",
        "to_dict",
        "objects",
        "DoesNotExist",
        "MultipleObjectsReturned",
    }
)


class ActiveRecordMeta(type):
    """Builds model classes: collects fields and wires up the per-model API."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> ActiveRecordMeta:
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if not any(isinstance(base, ActiveRecordMeta) for base in bases):
            return cls  # ActiveRecord itself declares no fields

        fields: dict[str, Attribute] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(base.__dict__.get("_fields", {}))
        for attr_name, value in namespace.items():
            if isinstance(value, Attribute):
                fields[attr_name] = value
        mcs._check_names(name, fields)
        for field in fields.values():
            field.check_default(name)

        primary = [
            field_name for field_name, field in fields.items() if isinstance(field, AutoUUID)
        ]
        if len(primary) > 1:
            raise errors.RepocketActiveRecordDefinitionError(
                f"{name} declares more than one AutoUUID ({', '.join(primary)}); "
                f"a model has exactly one primary key"
            )
        if not primary:
            if "id" in fields:
                raise errors.RepocketActiveRecordDefinitionError(
                    f"{name}.id is {a_or_an(type(fields['id']).__name__)}, but a model without "
                    f"an AutoUUID gets an implicit 'id = AutoUUID()'; declare "
                    f"id = attributes.AutoUUID() or rename the field"
                )
            implicit = AutoUUID()
            implicit.__set_name__(cls, "id")
            type.__setattr__(cls, "id", implicit)
            fields = {"id": implicit, **fields}
            primary = ["id"]

        model: Any = cls  # the per-model attributes ActiveRecord declares
        meta = Metadata(
            cls,
            MappingProxyType(fields),
            primary[0],
            mcs._namespace(cls, name),
            mcs._shards(cls, name),
        )
        meta_ttl = getattr(getattr(cls, "Meta", None), "ttl", None)
        if meta_ttl is not None:
            try:
                meta.ttl = _checked_ttl(cls, meta_ttl)
            except errors.ValidationError as exc:
                raise errors.RepocketActiveRecordDefinitionError(
                    f"{name}.Meta.ttl: {exc}"
                ) from None
        model._meta = meta
        model._fields = meta.fields
        model._primary_key = meta.primary_key
        model._collection = meta.collection
        model._stream_fields = meta.stream_fields
        model._pointer_fields = meta.pointer_fields
        # a plain dict: __setattr__ reads it on every assignment
        model._field_setters = {
            field_name: field
            for field_name, field in fields.items()
            if _class_attribute(cls, field_name) is field
        }

        model.DoesNotExist = mcs._error_class(cls, bases, "DoesNotExist", errors.DoesNotExist)
        model.MultipleObjectsReturned = mcs._error_class(
            cls, bases, "MultipleObjectsReturned", errors.MultipleObjectsReturned
        )

        for stream in model._stream_fields:
            method_name = f"append_{stream}"
            if method_name not in namespace:
                setattr(cls, method_name, _make_appender(stream))
            if f"a{method_name}" not in namespace:
                setattr(cls, f"a{method_name}", _make_async_appender(stream))

        register_model(cls)  # type: ignore[arg-type]
        install_related(cls)  # type: ignore[arg-type]
        return cls

    @staticmethod
    def _namespace(cls: type, model_name: str) -> str | None:
        """``class Meta: namespace = "app.models"`` (inherited from a base
        model's Meta only if the class declares none)."""
        options = getattr(cls, "Meta", None)
        namespace = getattr(options, "namespace", None)
        if namespace is None:
            return None
        if (
            not isinstance(namespace, str)
            or not namespace
            or any(c in namespace for c in ":{}*?[]\\ ")
        ):
            raise errors.RepocketActiveRecordDefinitionError(
                f"{model_name}.Meta.namespace must be a non-empty name without ':', "
                f"braces, glob characters or spaces (like a module path, 'app.models'), "
                f"not {namespace!r}"
            )
        return namespace

    @staticmethod
    def _shards(cls: type, model_name: str) -> int | None:
        """``class Meta: shards = S``: how many shards the model's index data
        is split into, whatever the storage's default."""
        shards = getattr(getattr(cls, "Meta", None), "shards", None)
        if shards is None:
            return None
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 16384:
            raise errors.RepocketActiveRecordDefinitionError(
                f"{model_name}.Meta.shards must be a whole number from 1 to 16384, not {shards!r}"
            )
        return shards

    @staticmethod
    def _check_names(model_name: str, fields: Mapping[str, Attribute]) -> None:
        for field_name in fields:
            if field_name.startswith("_") or field_name in _RESERVED:
                raise errors.RepocketActiveRecordDefinitionError(
                    f"{model_name}.{field_name}: field names may not start with '_' "
                    f"or be one of {', '.join(sorted(_RESERVED))}"
                )

    @staticmethod
    def _error_class(
        cls: type, bases: tuple[type, ...], attr: str, root: type[Exception]
    ) -> type[Exception]:
        parent = next(
            (
                getattr(base, attr)
                for base in bases
                if isinstance(base, ActiveRecordMeta) and hasattr(base, attr)
            ),
            root,
        )
        return type(
            attr,
            (parent,),
            {
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.{attr}",
                "__doc__": f"No {cls.__name__} record matches the lookup."
                if attr == "DoesNotExist"
                else f"Several {cls.__name__} records match the lookup.",
            },
        )


def _class_attribute(cls: type, name: str) -> Any:
    """What ``cls`` defines as ``name`` (through its bases), without calling
    any descriptor; ``_ABSENT`` when nothing."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return _ABSENT


_ABSENT: Any = object()


def _checked_ttl(model: type, seconds: Any) -> float:
    """A time to live in seconds: a positive int or float.

    :raises ValidationError: anything else (``bool``, 0, a negative number, NaN).
    """
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 < seconds <= MAX_TTL
    ):
        raise errors.ValidationError(
            f"a {model.__name__} record's time to live must be a positive number of "
            f"seconds, at most {MAX_TTL:,} (100 years), not {seconds!r}",
            model=model.__name__,
            value=seconds,
        )
    return float(seconds)


def _make_async_appender(field_name: str) -> Callable[[ActiveRecord, Any], Awaitable[str]]:
    async def aappend(self: ActiveRecord, data: Any) -> str:
        return await run_sync(getattr(self, f"append_{field_name}"), data)

    aappend.__name__ = f"aappend_{field_name}"
    aappend.__doc__ = f"``append_{field_name}()``, for async code."
    return aappend


def _make_appender(field_name: str) -> Callable[[ActiveRecord, Any], str]:
    def append(self: ActiveRecord, data: Any) -> str:
        return self._append_to_stream(field_name, data)

    append.__name__ = f"append_{field_name}"
    append.__doc__ = (
        f"Append bytes to the ``{field_name}`` ByteStream in storage (one APPEND) "
        f"and to this instance; returns the stream's key."
    )
    return append


class ActiveRecord(metaclass=ActiveRecordMeta):
    """base model class, this is how you declare your active record.

    ::

        class User(ActiveRecord):
            id = attributes.AutoUUID()
            github_access_token = attributes.Bytes()
            name = attributes.Unicode()
            email = attributes.Unicode()
            github_metadata = attributes.JSON()

        user = User(name="Harry", github_metadata={"yay": "this is json baby!"})
        keys = user.save()        # {"hash": "repocket:app.models:User:<id>", "strings": {}}
        User.objects.get(id=user.id) == user   # True

    Instances compare equal when they are of the same model and every field
    holds the same value (as stored).  They are mutable and so unhashable.
    Comparing with anything that is not a model gives ``NotImplemented`` (so
    ``==`` is ``False``).
    """

    _meta: ClassVar[Metadata]
    _fields: ClassVar[Mapping[str, Attribute]] = MappingProxyType({})
    _primary_key: ClassVar[str]
    _collection: ClassVar[Collection]
    _stream_fields: ClassVar[tuple[str, ...]] = ()
    _pointer_fields: ClassVar[tuple[str, ...]] = ()
    #: name -> field, for every field that is still the class attribute of
    #: its name (not hidden by a subclass): assigning it calls the field
    _field_setters: ClassVar[Mapping[str, Attribute]] = {}
    DoesNotExist: ClassVar[type[errors.DoesNotExist]]
    MultipleObjectsReturned: ClassVar[type[errors.MultipleObjectsReturned]]

    objects: ClassVar[ManagerDescriptor] = ManagerDescriptor()

    # per instance: field name -> value; the streams assigned since the last
    # load or save; whether the record is stored; the stored field texts as
    # last loaded or saved (for if_unchanged); and whether a create's outcome
    # is unknown (see __init__)
    _values: dict[str, Any]
    _dirty_streams: set[str]
    _persisted: bool
    _stored: Mapping[str, str | bytes] | None
    _create_pending: bool

    if TYPE_CHECKING:  # pragma: no cover - typing only
        # The implicit ``id`` and the ``append_<name>()`` methods are added
        # when each model class is created; a type checker cannot see them.
        id: Any

        def __getattr__(self, name: str) -> Any: ...

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __init__(self, **kw: Any) -> None:
        cls = type(self)
        unknown = [] if kw.keys() <= cls._fields.keys() else [n for n in kw if n not in cls._fields]
        if unknown:
            raise errors.UnknownFieldError(
                f"{cls.__name__} has no field {', '.join(map(repr, unknown))}; "
                f"its fields are: {', '.join(cls._fields)}",
                model=cls.__name__,
                field=unknown[0],
                value=kw[unknown[0]],
            )
        meta = cls._meta
        values = dict(meta.initial)
        dirty: set[str] = set()
        for name, field in meta.defaulted:
            if name not in kw:
                values[name] = field.initial_value()
                if name in cls._stream_fields and values[name]:
                    dirty.add(name)
        # The instance's own state, written to its dict past __setattr__
        # (whose check these names would only pass, at a cost per name).
        # ``_create_pending``: a create whose outcome is unknown (the save
        # failed after sending): saving again must be the same write, so that
        # a retry of a create that did apply is recognised instead of storing
        # a second record.
        state = {
            "_values": values,
            "_dirty_streams": dirty,
            "_persisted": False,
            "_stored": None,
            "_create_pending": False,
        }
        if cls.__init__ is not ActiveRecord.__init__:
            state = {**self.__dict__, **state}  # a subclass's __init__ may have set some
        _set_instance_dict(self, state)
        if kw:
            setters = cls._field_setters
            model_name = cls.__name__
            for name, field in cls._fields.items():  # in field order, as errors are
                if name in kw:
                    if name not in setters:
                        setattr(self, name, kw[name])
                    elif type(field).__set__ is _PLAIN_SET:
                        # what Attribute.__set__ does, without its call
                        values[name] = field.clean(kw[name], model_name)
                    else:
                        field.__set__(self, kw[name])  # what setattr() would call

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign a field (validated by the field), or refuse a name that is
        not one.

        A misspelt field (``post.tittle = "New"``) raises
        :class:`~repocket.errors.UnknownFieldError` naming the model's
        fields, as ``Post(tittle="New")`` does, instead of quietly adding an
        attribute that is never saved.  What stays assignable, as Python
        allows it:

        * fields;
        * private names (starting with ``_``), for an instance's own state;
        * names the class defines as a data descriptor (a ``property``, with
          Python's own error when it has no setter), as another descriptor
          that is not a method (``functools.cached_property``), or as a plain
          value (``per_page = 20``: an instance may override a class default).

        Assigning over a method (``save``, ``to_dict``, ``append_<stream>``,
        your own methods, class and static methods), a class
        (``DoesNotExist``), ``objects`` or any other callable the class
        defines is refused too: it would hide the model's API on that one
        instance, which is almost always a mistake.  To replace a method in a
        test, patch the class (``mock.patch.object(Post, "save")``).

        :raises UnknownFieldError: naming the model, the name and the value.
        """
        # Fields first, by their descriptor straight away: the common case
        # costs one dict lookup more than it would without this method.
        field = type(self)._field_setters.get(name)
        if field is not None:
            field.__set__(self, value)
        elif name[:1] == "_":
            _object_setattr(self, name, value)
        else:
            self._set_other(name, value)

    def _set_other(self, name: str, value: Any) -> None:
        """``__setattr__`` of a name that is neither a field nor private."""
        cls = type(self)
        found = _class_attribute(cls, name)
        kind = type(found)
        if found is not _ABSENT:
            if hasattr(kind, "__set__") or hasattr(kind, "__delete__"):
                _object_setattr(self, name, value)  # a property: Python's rules
                return
            if not (callable(found) or isinstance(found, classmethod) or name in _RESERVED):
                # a plain class value, or a descriptor such as cached_property
                _object_setattr(self, name, value)
                return
            what = "a class" if isinstance(found, type) else "a method"
            if name in _RESERVED and not callable(found):
                what = "part of the API"
            message = (
                f"{cls.__name__}.{name} is {what} of {cls.__name__}, not a field: "
                f"an instance may not hide it; its fields are: {', '.join(cls._fields)}"
            )
        else:
            message = (
                f"{cls.__name__} has no field {name!r}; its fields are: {', '.join(cls._fields)}"
            )
        raise errors.UnknownFieldError(message, model=cls.__name__, field=name, value=value)

    @property
    def pk(self) -> Any:
        """The record's primary key value (its id); ``None`` until it is saved."""
        return self._values[type(self)._meta.primary_key]

    # -- persistence -----------------------------------------------------------

    @classmethod
    def create(cls: type[T], **kwargs: Any) -> T:
        """Takes all the valid attributes of an active record, saves it
        immediately and returns the instance, ready for further manipulation."""
        instance = cls(**kwargs)
        instance.save()
        return instance

    @classmethod
    async def acreate(cls: type[T], **kwargs: Any) -> T:
        """:meth:`create`, for async code."""
        return await run_sync(cls.create, **kwargs)

    async def asave(self, if_unchanged: bool = False, ttl: float | None = None) -> dict[str, Any]:
        """:meth:`save`, for async code: the same single command and round trip.

        A task cancelled while waiting leaves the record as it was or fully
        saved, never half-written (the save is one command); the instance
        is then in the state :meth:`save` leaves after a timeout.
        """
        return await run_sync(self.save, if_unchanged=if_unchanged, ttl=ttl)

    async def adelete(self) -> int:
        """:meth:`delete`, for async code."""
        return await run_sync(self.delete)

    async def aincrement(self, name: str, by: int | float = 1) -> Any:
        """:meth:`increment`, for async code."""
        return await run_sync(self.increment, name, by)

    async def aexpire(self, seconds: float) -> None:
        """:meth:`expire`, for async code."""
        await run_sync(self.expire, seconds)

    async def attl(self) -> float | None:
        """:meth:`ttl`, for async code."""
        return await run_sync(self.ttl)

    async def apersist(self) -> None:
        """:meth:`persist`, for async code."""
        await run_sync(self.persist)

    def expire(self, seconds: float) -> None:
        """Make the stored record expire ``seconds`` from now (one command).

        At that moment it disappears at once from ``get()``, every query,
        ``count()`` and its index (``check()`` stays clean), with its
        ByteStreams; see "Expiring records" in the models documentation.

        :raises ValidationError: ``seconds`` is not a positive number.
        :raises DoesNotExist: the record is not stored (never saved, deleted
            or already expired).
        """
        self._set_expiry(_checked_ttl(type(self), seconds))

    def persist(self) -> None:
        """Make the stored record never expire (one command).

        :raises DoesNotExist: the record is not stored.
        """
        self._set_expiry(None)

    def ttl(self) -> float | None:
        """The seconds left before the stored record expires (``None`` when
        it does not expire).

        :raises DoesNotExist: the record is not stored.
        """
        cls = type(self)
        record_id = self._stored_id("ttl")
        try:
            return configure.storage().get_expiry(cls._meta.collection, record_id)
        except errors.DoesNotExist:
            raise cls.DoesNotExist(
                f"{cls.__name__} {record_id} is not stored (deleted or expired)"
            ) from None

    def _set_expiry(self, ttl: float | None) -> None:
        cls = type(self)
        record_id = self._stored_id("expire" if ttl is not None else "persist")
        found = configure.storage().set_expiry(
            cls._meta.collection, record_id, cls._meta.stream_fields, ttl
        )
        if not found:
            raise cls.DoesNotExist(
                f"{cls.__name__} {record_id} is not stored (deleted or expired); "
                f"nothing was changed"
            )

    def _stored_id(self, action: str) -> str:
        pk = self._values[type(self)._meta.primary_key]
        if pk is None:
            raise errors.UnsavedRecordError(
                f"{action}() needs a saved {type(self).__name__}; call save() first"
            )
        return str(pk)

    def save(self, if_unchanged: bool = False, ttl: float | None = None) -> dict[str, Any]:
        """Persists the model in storage, atomically, with its index entries:
        one command (a server-side script on redis) and one round trip.

        Automatically generates a primary key value if one was not provided,
        and stamps ``DateTime(auto_now=True)`` fields.  A save that generates
        the id is *create-only*: it never overwrites another record (see
        :class:`~repocket.errors.ConflictError`).  A record whose id you set
        yourself is created or replaced (upsert).

        :param if_unchanged: save only if the stored record is still what
            this instance last loaded or saved (optimistic concurrency); for
            an instance never loaded or saved, only if no record has its id.
            Otherwise nothing is written and
            :class:`~repocket.errors.ConflictError` is raised: reload the
            record, apply the change again and retry.  Plain ``save()`` is
            last-write-wins.
        :param ttl: make the record expire this many seconds from now (its
            ByteStreams with it); ``None``: the model's ``Meta.ttl`` when it
            declares one, else the record keeps the expiry it has (none for
            a new record).  See :meth:`expire`.
        :returns: ``{"hash": <record key>, "strings": {<stream field>: <key>}}``
            naming the keys that hold the record; ``strings`` lists the
            ByteStream fields that hold data.
        :raises ValidationError: a value cannot be stored.
        :raises UnsavedRecordError: a Pointer names a record never saved.
        :raises UniqueViolation: a ``unique=True`` value is held by another
            record; nothing is written.
        :raises ConflictError: ``if_unchanged`` and the record changed, or a
            generated id is held by a different record; nothing is written.

        Nothing on the instance changes if the save is refused.  If it fails
        after it was sent (a timeout, a lost connection), the instance keeps
        its new id and stamped values, so that calling ``save()`` again
        repeats the same write: it succeeds whether or not the first attempt
        was applied, and never stores the record twice.
        """
        storage = configure.storage()
        if ttl is not None:
            ttl = _checked_ttl(type(self), ttl)
        write, values = self._prepare_save(if_unchanged, ttl)
        if write.ttl is not None and not storage.supports_ttl:
            raise errors.UnsupportedError(
                f"{type(self).__name__} records cannot expire on {storage.describe()}: "
                f"the backend does not support expiring records; nothing was written"
            )
        try:
            storage.save_record(write)
        except errors.UniqueViolation as exc:
            raise self._unique_violation(exc, values) from exc
        except (errors.StorageError, asyncio.CancelledError):
            # sent, outcome unknown (a timeout; an asave() task cancelled
            # while waiting for the reply): saving again repeats this write
            self._keep_pending_create(write, values)
            raise
        self._saved(write, values)
        return self._keys()

    def _prepare_save(
        self,
        if_unchanged: bool = False,
        ttl: float | None = None,
        keep_expiry: bool = False,
        new_id: Any = None,
    ) -> tuple[RecordWrite, dict[str, Any]]:
        """Everything a save writes, computed without changing the instance
        (``new_id``: the id to give it if it has none, else one is generated)."""
        cls = type(self)
        meta = cls._meta
        values = dict(self._values)
        retry = self._create_pending
        for name in meta.save_hooks:
            # a retried create keeps the values it was first sent with
            if not retry:
                values[name] = meta.fields[name].on_save(values[name])
        for name in meta.pointer_fields:
            field = meta.fields[name]
            assert isinstance(field, Pointer)
            field.check_saved(values[name], cls.__name__)
        pk = meta.primary_key
        new = retry or values[pk] is None
        if values[pk] is None:
            values[pk] = AutoUUID.generate() if new_id is None else new_id
        record_id = str(values[pk])
        encoded = meta.encode(values, record_id)
        streams = {name: values[name] for name in meta.stream_fields if name in self._dirty_streams}
        entries, claims = entries_for(cls, values)
        expected = None
        if if_unchanged:
            if self._persisted and self._stored is not None:
                expected = self._stored
            else:
                new = True
        if ttl is None and not keep_expiry:
            ttl = meta.ttl  # the model's default expiry (None: none)
        return RecordWrite(
            meta.collection,
            record_id,
            encoded,
            streams,
            entries,
            claims,
            new,
            expected,
            ttl,
            meta.stream_fields,
        ), values

    def _keep_pending_create(self, write: RecordWrite, values: dict[str, Any]) -> None:
        """After a create failed with its outcome unknown: keep what was
        sent, so that saving again is the same (create-only) write."""
        if write.new and not self._persisted:
            self._values = values
            self._create_pending = True

    def _saved(self, write: RecordWrite, values: dict[str, Any]) -> None:
        # once per record saved (bulk_create: thousands): the instance's own
        # state is written to its dict, past __setattr__ (a Python call each)
        state = self.__dict__
        state["_values"] = values
        state["_persisted"] = True
        state["_create_pending"] = False
        self._dirty_streams.clear()
        stored = self._stored
        if stored is not None and len(stored) != len(write.fields):
            # fields stored by an older version of the model stay stored
            state["_stored"] = {**stored, **write.fields}
        else:
            state["_stored"] = write.fields

    def _index_write(self) -> RecordWrite:
        """A write of this loaded record's index data alone (for reindexing)."""
        cls = type(self)
        entries, claims = entries_for(cls, self._values)
        return RecordWrite(
            cls._collection, str(self._values[cls._primary_key]), {}, {}, entries, claims
        )

    def _unique_violation(
        self,
        exc: errors.UniqueViolation,
        values: dict[str, Any],
        outcome: str = "nothing was written",
    ) -> errors.UniqueViolation:
        cls = type(self)
        name = exc.field or ""
        value = values.get(name)
        return errors.UniqueViolation(
            f"{cls.__name__}.{name} must be unique: {_repr(value)} is already held by "
            f"{cls.__name__} {exc.other_id}; {outcome}",
            claim=exc.claim,
            other_id=exc.other_id,
            model=cls.__name__,
            field=name,
            value=value,
        )

    def delete(self) -> int:
        """Deletes all the storage keys used by this record (one command).

        :returns: the number of record keys removed: 1 for the record's hash
            plus 1 per ByteStream holding data; 0 if it was not stored.
        """
        if self._values[type(self)._meta.primary_key] is not None and relations_to(type(self)):
            return delete_with_relations(self)
        return self._delete_one()

    def _delete_one(self) -> int:
        """Delete this record alone (one command), whatever points to it."""
        cls = type(self)
        pk = self._values[cls._meta.primary_key]
        if pk is None:
            return 0
        removed = configure.storage().delete_record(
            cls._meta.collection, str(pk), cls._meta.stream_fields
        )
        self._persisted = False
        self._stored = None
        return removed

    def increment(self, name: str, by: int | float = 1) -> Any:
        """Atomically add ``by`` to an Integer or Float field in storage.

        The addition happens in storage, with the field's index entries,
        whatever other processes do meanwhile: 8 processes each incrementing
        a counter 300 times leave it exactly 2,400 higher.  Other fields are
        neither read nor written.  The instance's value is set to the new
        stored value.

        On redis this is one compare-and-set script: when the stored value is
        not the one this instance knows, the script returns the current value
        and the addition is computed again (one more round trip).

        :returns: the new value.
        :raises ValidationError: the field is not an Integer or Float field,
            holds ``None``, or the result cannot be stored.
        :raises UnsavedRecordError: the record was never saved.
        :raises Model.DoesNotExist: the record was deleted.
        :raises ConflictError: the value kept changing for
            :data:`MAX_INCREMENT_ATTEMPTS` attempts.
        """
        cls = type(self)
        field = cls._field(name)
        if not isinstance(field, (Integer, Float)) or name == cls._primary_key:
            raise errors.ValidationError(
                f"{cls.__name__}.{name} is {a_or_an(type(field).__name__)} field; increment() "
                f"applies to Integer and Float fields",
                model=cls.__name__,
                field=name,
                value=by,
            )
        step = field.clean(by, cls.__name__)
        pk = self._values[cls._primary_key]
        if pk is None or not self._persisted:
            raise errors.UnsavedRecordError(
                f"{cls.__name__}.increment() needs a saved record; call save() first"
            )
        storage = configure.storage()
        record_id = str(pk)
        key = storage.record_key(cls._collection, record_id)
        stored = self._stored.get(name) if self._stored is not None else None
        current: str | bytes = stored if stored is not None else ""
        for _ in range(MAX_INCREMENT_ATTEMPTS):
            old = self._decode_field(name, current, key)
            if old is None:
                raise errors.ValidationError(
                    f"{cls.__name__}.{name} holds None in storage; increment() needs a number",
                    model=cls.__name__,
                    field=name,
                    value=None,
                )
            new = field.clean(old + step, cls.__name__)
            text = serialization.dumps(field, new)
            old_entries, old_claims = field_entries(field, name, old)
            new_entries, new_claims = field_entries(field, name, new)
            swap = FieldSwap(
                cls._collection,
                record_id,
                name,
                current,
                text,
                old_entries - new_entries,
                new_entries - old_entries,
                old_claims - new_claims,
                new_claims - old_claims,
            )
            try:
                now = storage.swap_field(swap)
            except errors.DoesNotExist:
                self._persisted = False
                raise cls.DoesNotExist(
                    f"{cls.__name__} {record_id} was deleted; nothing was incremented"
                ) from None
            except errors.UniqueViolation as exc:
                raise self._unique_violation(exc, {**self._values, name: new}) from exc
            if now is None:
                self._values[name] = new
                self._stored = {**(self._stored or {}), name: text}
                return new
            current = now
        raise errors.ConflictError(
            f"{cls.__name__}.{name} of {record_id} kept changing; gave up incrementing "
            f"after {MAX_INCREMENT_ATTEMPTS} attempts",
            key=key,
        )

    def _decode_field(self, name: str, text: str | bytes, key: str) -> Any:
        """The value a stored field text holds (``""``: the field is not stored)."""
        field = type(self)._meta.fields[name]
        if not text:
            return field.initial_value()
        return serialization.loads(field, text, key=key, field=name)

    def _append_to_stream(self, name: str, data: Any) -> str:
        cls = type(self)
        field = cls._fields[name]
        chunk = field.clean(data, cls.__name__)
        if not self._persisted:
            raise errors.UnsavedRecordError(
                f"{cls.__name__}.append_{name}() needs a saved record; call save() first"
            )
        if name in self._dirty_streams:
            raise errors.UnsavedRecordError(
                f"{cls.__name__}.{name} was changed since the last save; "
                f"call save() before append_{name}()"
            )
        storage = configure.storage()
        record_id = str(self._values[cls._primary_key])
        try:
            length = storage.append_to_stream(cls._collection, record_id, name, chunk)
        except errors.DoesNotExist:
            self._persisted = False
            raise cls.DoesNotExist(
                f"{cls.__name__} {record_id} was deleted; nothing was appended to {name}"
            ) from None
        local = self._values[name] + chunk
        if length != len(local):
            # Another writer appended too: our copy is stale, read the stream.
            stored = storage.load_record(cls._collection, record_id, (name,))
            local = stored.streams.get(name, b"") if stored is not None else local
        self._values[name] = local
        return storage.stream_key(cls._collection, record_id, name)

    # -- reading values ----------------------------------------------------------

    def matches(self, kw: Mapping[str, Any]) -> bool:
        """Takes a dictionary with keyword args and returns true if ALL the
        args match the model field values.

        Values are compared after casting to the field's type, so
        ``matches({"id": "970773fa-..."})`` matches a UUID id.  A Pointer
        field matches a model instance, its id, or its record key.

        :raises UnknownFieldError: a key is not a field of the model.
        """
        cls = type(self)
        for name, expected in kw.items():
            field = cls._field(name)
            try:
                lookup = Lookup(name, "eq", prepare_value(cls, field, expected))
            except errors.UnknownFieldError:
                raise
            except errors.ValidationError:
                return False  # a value the field cannot hold matches nothing
            if not lookup_matches(field, self._values[name], lookup):
                return False
        return True

    def to_dict(self, simple: bool = True) -> dict[str, Any]:
        """The record's values in JSON-safe form, by field name.

        :param simple: ``True`` gives each field's JSON-safe value (bytes as
            UTF-8 text, or base64 when not valid UTF-8; a pointer as its
            target's key); ``False`` gives each field's full envelope object.
        """
        return {
            name: field.to_python(self._values[name], simple=simple)
            for name, field in type(self)._fields.items()
        }

    def __getitem__(self, name: str) -> Any:
        type(self)._field(name)
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        type(self)._field(name)
        setattr(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActiveRecord):
            return NotImplemented
        return type(self) is type(other) and self._stored_form() == other._stored_form()

    def __repr__(self) -> str:
        shown = []
        for name in type(self)._fields:
            value = self._values[name]
            if isinstance(value, ActiveRecord):
                text = f"<{type(value).__name__} {value._values[type(value)._primary_key]}>"
            elif isinstance(value, PendingPointer):
                text = f"<{value.key}>"
            else:
                text = _repr(value)
            shown.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    # -- internals shared with the manager ---------------------------------------

    @classmethod
    def _field(cls, name: str) -> Attribute:
        try:
            return cls._fields[name]
        except KeyError:
            raise errors.UnknownFieldError(
                f"{cls.__name__} has no field {name!r}; its fields are: {', '.join(cls._fields)}",
                model=cls.__name__,
                field=name,
            ) from None

    def _record_key(self) -> str:
        pk = self._values[type(self)._primary_key]
        if pk is None:
            raise errors.UnsavedRecordError(
                f"this {type(self).__name__} has no id yet; save it first"
            )
        return configure.record_key(type(self)._collection, str(pk))

    def _keys(self) -> dict[str, Any]:
        cls = type(self)
        storage = configure.storage()
        record_id = str(self._values[cls._primary_key])
        return {
            "hash": storage.record_key(cls._collection, record_id),
            "strings": {
                name: storage.stream_key(cls._collection, record_id, name)
                for name in cls._stream_fields
                if self._values[name]
            },
        }

    def _stored_form(self) -> dict[str, Any]:
        form: dict[str, Any] = {}
        for name, field in type(self)._fields.items():
            value = self._values[name]
            if isinstance(field, Pointer):
                form[name] = pointer_key(value)
            elif isinstance(field, ByteStream):
                form[name] = value
            else:
                form[name] = serialization.dumps(field, value)
        return form

    @classmethod
    def _from_stored(cls: type[T], stored: StoredRecord, known: Any = None) -> T:
        """Build an instance from what storage returned (pointers left pending).

        Stored values are decoded without running assignment validation
        again: an envelope of the field's own type is read by its
        ``from_json`` (which checks the value's JSON type); anything else
        (another type, base64, a damaged text) goes through
        :func:`repocket.serialization.loads`, which names the key and field
        of what it cannot read.

        :param known: the primary key's value, when the caller has it (the
            id it asked for); used when the stored one is the same.
        """
        meta = cls._meta
        instance = cls.__new__(cls)
        texts = stored.fields
        values = meta.decode(texts, stored.record_id, meta.key_of, known)
        for name in meta.pointer_fields:
            value = values[name]
            if value is not None:
                key = meta.key_of(stored.record_id)
                values[name] = _pending_pointer(meta.fields[name], value, key, name)  # type: ignore[arg-type]
        for name in meta.stream_fields:
            values[name] = bytes(stored.streams.get(name, b""))
        if values[meta.primary_key] is None:
            values[meta.primary_key] = AutoUUID.cast(stored.record_id)
        _set_instance_dict(
            instance,
            {
                "_values": values,
                "_dirty_streams": set(),
                "_persisted": True,
                "_stored": texts,
                "_create_pending": False,
            },
        )
        return instance


_NOT_READ: Any = serialization.NOT_JSON
_PLAIN_SET = Attribute.__set__
_object_setattr = object.__setattr__
# Sets a new instance's state past __setattr__ (which would cost a Python call
# per name) in one C call.  A new dict, not items written into __dict__: an
# instance dict built up item by item makes every later attribute read slower.
_set_instance_dict = ActiveRecord.__dict__["__dict__"].__set__


def _pending_pointer(field: Pointer, key: str, holder_key: str, name: str) -> PendingPointer:
    from .keys import parse_record_key

    try:
        collection, _ = parse_record_key(key)
    except errors.EnvelopeError as exc:
        raise errors.EnvelopeError(
            f"field {name!r} of {holder_key!r}: {exc}", key=holder_key, field=name
        ) from None
    if collection != field.to_model._collection:
        raise errors.EnvelopeError(
            f"field {name!r} of {holder_key!r} points to {key!r}, which is not a "
            f"{field.to_model.__name__} record",
            key=holder_key,
            field=name,
        )
    return PendingPointer(key)


_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 120


def _repr(value: Any) -> str:
    return _short.repr(value)
