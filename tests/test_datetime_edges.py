"""DateTime values at the ends of the calendar can be saved, indexed and found."""

from __future__ import annotations

import datetime

from repocket import ActiveRecord, attributes

EARLY = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=45)))
LATE = datetime.datetime(9999, 12, 31, 23, 59, tzinfo=datetime.timezone(-datetime.timedelta(hours=5)))


class Event(ActiveRecord):
    """A model with an indexed DateTime."""

    at = attributes.DateTime()


def test_aware_datetimes_near_year_1_and_9999_are_saved_and_found(storage) -> None:
    early, late = Event.create(at=EARLY), Event.create(at=LATE)
    assert Event.objects.get(at=EARLY) == early
    assert [e.id for e in Event.objects.order_by("at")] == [early.id, late.id]
    assert [e.id for e in Event.objects.filter(at__gt=EARLY)] == [late.id]
    assert Event.objects.filter(at__lte=LATE).count() == 2
