"""Conformance: bad or old data in storage.

Bad data is planted through the Storage protocol itself
(:func:`~repocket.testing.suite.base.rewrite_stored_fields`), so the same
tests run on any backend: a stored field that is not a valid envelope gives a
clear :class:`~repocket.errors.EnvelopeError` naming the record's key and the
field; data an older repocket wrote is read.
"""

from __future__ import annotations

import datetime
import json

import pytest

from ...errors import EnvelopeError, ValidationError
from ...storage import Storage
from ..models import Build, Everything, Project, User
from ..query_models import Unindexed
from .base import BackendSuite, rewrite_stored_fields

__all__ = ["StoredDataConformance"]


def envelope(type_name: str, value: object) -> str:
    return json.dumps({"type": type_name, "value": value, "module": "repocket.attributes"})


class StoredDataConformance(BackendSuite):
    """What the model layer does with the stored data a backend returns."""

    @pytest.mark.parametrize(
        "raw",
        [
            b"not json at all",
            b"\xff\xfe not utf-8",
            b'["a", "list"]',
            b'{"type": "Unicode", "module": "repocket.attributes"}',
            b'{"type": "Pickle", "value": "x", "module": "repocket.attributes"}',
            b'{"type": "Unicode", "value": "x", "module": "os"}',
        ],
    )
    def test_invalid_envelope_names_key_and_field(self, storage: Storage, raw: bytes) -> None:
        user = User.create(name="Harry")
        # Valid UTF-8 is planted as text, the way the model layer writes;
        # the rest as bytes, which a backend must store without failing.
        try:
            planted: str | bytes = raw.decode("utf-8")
        except UnicodeDecodeError:
            planted = raw
        key = rewrite_stored_fields(user, name=planted)
        with pytest.raises(EnvelopeError) as info:
            User.objects.get(id=user.id)
        assert key in str(info.value) and "'name'" in str(info.value)
        assert (info.value.key, info.value.field) == (key, "name")

    def test_an_envelope_value_the_type_cannot_read_names_key_and_field(
        self, storage: Storage
    ) -> None:
        user = User.create(name="Harry")
        key = rewrite_stored_fields(user, id=envelope("AutoUUID", "not-a-uuid"))
        with pytest.raises(EnvelopeError, match="'id'") as info:
            User.objects.get(id=user.id)
        assert key in str(info.value)

    def test_a_pointer_to_another_models_record_is_refused(self, storage: Storage) -> None:
        user = User.create(name="Harry")
        build = Build.create(project=Project.create(name="p"))
        rewrite_stored_fields(build, project=envelope("Pointer", user.save()["hash"]))
        with pytest.raises(EnvelopeError, match="not a Project record"):
            Build.objects.get(id=build.id)

    def test_a_pointer_value_that_is_not_a_key_is_refused(self, storage: Storage) -> None:
        build = Build.create()
        rewrite_stored_fields(build, project=envelope("Pointer", "elsewhere"))
        with pytest.raises(EnvelopeError, match="not a repocket record key"):
            Build.objects.get(id=build.id)

    def test_a_value_stored_under_an_older_type_is_cast_to_the_field_type(
        self, storage: Storage
    ) -> None:
        user = User.create(name="Harry")
        rewrite_stored_fields(user, name=envelope("Bytes", "Harry Potter"))
        assert User.objects.get(id=user.id).name == "Harry Potter"

    def test_stored_fields_the_model_no_longer_has_are_ignored(self, storage: Storage) -> None:
        user = User.create(name="Harry")
        rewrite_stored_fields(user, wand=envelope("Unicode", "holly"))
        assert User.objects.get(id=user.id) == user

    def test_a_field_missing_from_storage_loads_its_initial_value(self, storage: Storage) -> None:
        user = User.create(name="Harry", house_name="Gryffindor")
        rewrite_stored_fields(user, house_name=None)
        assert User.objects.get(id=user.id).house_name == ""

    def test_a_record_read_from_0_0_1_json_can_be_saved_again(self, storage: Storage) -> None:
        user = User.create(name="Harry")
        rewrite_stored_fields(user, metadata=envelope("JSON", "{u'yay': u'this is json baby!'}"))
        loaded = User.objects.get(id=user.id)
        loaded.save()
        assert User.objects.get(id=user.id).metadata == {"yay": "this is json baby!"}

    # -- values the range index cannot order exactly ----------------------------------

    def test_ordering_values_that_cannot_be_compared_is_a_validation_error(
        self, storage: Storage
    ) -> None:
        # without a range index the records are sorted in Python, which cannot
        # compare naive and aware datetimes
        Unindexed.create(when=datetime.datetime(2020, 1, 1))
        Unindexed.create(when=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
        with pytest.raises(ValidationError, match=r"Unindexed\.when"):
            list(Unindexed.objects.all().order_by("when"))

    def test_the_range_index_orders_naive_datetimes_as_if_utc(self, storage: Storage) -> None:
        utc = datetime.timezone.utc
        noon_naive = Everything.create(when=datetime.datetime(2020, 1, 1, 12))
        eleven_aware = Everything.create(when=datetime.datetime(2020, 1, 1, 11, tzinfo=utc))
        one_pm_aware = Everything.create(when=datetime.datetime(2020, 1, 1, 13, tzinfo=utc))
        ordered = [record.id for record in Everything.objects.order_by("when")]
        assert ordered == [eleven_aware.id, noon_naive.id, one_pm_aware.id]
