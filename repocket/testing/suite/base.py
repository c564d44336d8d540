"""What every conformance test class shares: the ``make_storage()`` hook, the
``storage`` fixture, capability checks and the helpers that plant bad data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from ...connections import configure
from ...model import ActiveRecord
from ...storage import RecordWrite, Storage

__all__ = ["BackendSuite", "require", "rewrite_stored_fields", "unindex"]


class BackendSuite:
    """The base of every conformance class: how the suite gets a storage.

    A backend's test module subclasses :class:`~repocket.testing.suite.ConformanceSuite`
    (or some of its parts) and implements :meth:`make_storage`.
    """

    #: pytest's request object of the running test, set before
    #: :meth:`make_storage` is called, so that it can ask for fixtures
    #: (``self.request.getfixturevalue("tmp_path")``).
    request: pytest.FixtureRequest

    def make_storage(self) -> Storage:
        """Return a new storage object on this test's database.

        The suite calls it once before each test and empties what it returns
        with ``clear()``; a test of persistence calls it again, after closing
        the first one, and expects to find the same data, so for a persistent
        backend every call within one test must open the same database.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement make_storage() to run the repocket "
            f"conformance suite"
        )

    @pytest.fixture
    def storage(self, request: pytest.FixtureRequest) -> Iterator[Storage]:
        """An empty storage from :meth:`make_storage`, configured for every
        model while the test runs, then closed (``configure.reset()``)."""
        self.request = request
        store = self.make_storage()
        store.clear()
        configure.use(store)
        try:
            yield store
        finally:
            configure.reset()


def require(storage: Storage, flag: str) -> None:
    """Skip the running test unless the storage's class declares ``flag`` true.

    Flags are the capability attributes of :class:`~repocket.storage.Storage`;
    a class that does not define one gets the protocol's default.
    """
    if not getattr(type(storage), flag, getattr(Storage, flag)):
        pytest.skip(f"{type(storage).__name__} declares {flag} = False")


def rewrite_stored_fields(record: ActiveRecord, **changes: str | bytes | None) -> str:
    """Replace some stored field texts of a record, through the Storage protocol.

    For planting bad data without knowing how a backend stores it: each
    keyword names a field and gives the text (or bytes) to store in place of
    its envelope; ``None`` removes the field from storage.  The record is
    saved first; its streams, index entries and unique claims are kept as
    they were, so only the named fields differ from what the model wrote.

    :returns: the record's key.
    """
    key: str = record.save()["hash"]
    model = type(record)
    collection = model._meta.collection
    record_id = str(record._values[model._meta.primary_key])
    storage = configure.storage()
    stored = storage.load_record(collection, record_id, model._meta.stream_fields)
    assert stored is not None, f"{key} was just saved, but storage does not have it"
    terms = storage.read_index_entries(collection, [record_id])[0]
    assert terms is not None, f"{key} was just saved, but has no index entries"
    fields: dict[str, str | bytes] = dict(stored.fields)
    for name, text in changes.items():
        if text is None:
            fields.pop(name, None)
        else:
            fields[name] = text
    if any(text is None for text in changes.values()):
        # A save keeps the fields it does not name: removing one takes a delete.
        storage.delete_record(collection, record_id, model._meta.stream_fields)
    streams: Mapping[str, bytes] = {name: data for name, data in stored.streams.items() if data}
    storage.save_record(RecordWrite(collection, record_id, fields, streams, *terms))
    return key


def unindex(model: type[ActiveRecord]) -> None:
    """Leave a model's records stored without index data, as repocket 0.0.1
    wrote them (through the protocol's ``drop_index``)."""
    configure.storage().drop_index(model._meta.collection)
