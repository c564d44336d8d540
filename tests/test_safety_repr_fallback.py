"""Issue 9, item 6: the 0.0.1 repr-style JSON fallback is bounded.

repocket 0.0.1 stored a JSON field as ``str(data)`` (``"{u'yay': u'json
baby'}"``), which :meth:`repocket.attributes.JSON.from_json` still reads
with ``ast.literal_eval`` when the text is not JSON.  Parsing a Python
literal builds its whole syntax tree first: a 5 MB stored value took 14.6 s
and 2 GB.  That fallback is now limited in size; real JSON text is not.
No test here asserts timing: each asserts the error, and the limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from repocket import attributes, serialization
from repocket.backends.memory import MemoryStorage
from repocket.connections import configure
from repocket.errors import EnvelopeError
from repocket.testing.models import User

RECORD_KEY = "repocket:tests:User:1"
FIVE_MB = 5 * 1024 * 1024


def _json_envelope(value: str) -> str:
    """The envelope text of a JSON field whose stored value is ``value``."""
    return json.dumps({"type": "JSON", "value": value, "module": "repocket.attributes"})


def _hostile_repr(size: int) -> str:
    """A Python literal (not JSON: ``u''`` strings) of exactly ``size`` characters."""
    item = "u'a', "
    body = item * ((size - 2) // len(item))
    return ("[" + body).ljust(size - 1) + "]"


@pytest.fixture
def memory() -> Iterator[MemoryStorage]:
    storage = MemoryStorage()
    configure.use(storage)
    yield storage
    configure.reset()


def test_the_limit_is_the_one_the_docstring_documents() -> None:
    doc = " ".join((attributes.JSON.__doc__ or "").split())  # line breaks are not content
    assert "64 KiB (:attr:`REPR_FALLBACK_LIMIT`, 65,536 characters)" in doc
    assert attributes.JSON.REPR_FALLBACK_LIMIT == 64 * 1024 == 65_536


def test_a_small_0_0_1_repr_value_is_still_read() -> None:
    text = _json_envelope("{u'yay': u'json baby', 'n': [1, 2.5, None, True]}")
    value = serialization.loads(attributes.JSON(), text, key=RECORD_KEY, field="metadata")
    assert value == {"yay": "json baby", "n": [1, 2.5, None, True]}


def test_a_repr_value_of_exactly_the_limit_is_read() -> None:
    text = _hostile_repr(attributes.JSON.REPR_FALLBACK_LIMIT)
    assert len(text) == attributes.JSON.REPR_FALLBACK_LIMIT
    value = attributes.JSON.from_json(text)
    assert isinstance(value, list) and set(value) == {"a"}


def test_a_repr_value_one_character_over_the_limit_is_refused() -> None:
    text = _hostile_repr(attributes.JSON.REPR_FALLBACK_LIMIT + 1)
    with pytest.raises(ValueError, match="65536 characters"):
        attributes.JSON.from_json(text)


def test_a_5_mb_repr_value_raises_envelope_error_naming_key_and_field() -> None:
    text = _json_envelope(_hostile_repr(FIVE_MB))
    with pytest.raises(EnvelopeError) as caught:
        serialization.loads(attributes.JSON(), text, key=RECORD_KEY, field="metadata")
    assert caught.value.key == RECORD_KEY
    assert caught.value.field == "metadata"
    message = str(caught.value)
    assert RECORD_KEY in message and "'metadata'" in message
    assert "65536 characters" in message
    assert len(message) < 1000  # the 5 MB value is previewed, not copied


def test_a_5_mb_repr_value_stored_in_a_record_fails_its_load(memory: MemoryStorage) -> None:
    user = User.create(name="Harry", metadata={"ok": True})
    key = user.save()["hash"]
    memory.native_client.hset(key, "metadata", _json_envelope(_hostile_repr(FIVE_MB)))
    with pytest.raises(EnvelopeError) as caught:
        User.objects.get(id=user.id)
    assert caught.value.key == key
    assert caught.value.field == "metadata"


def test_real_json_text_is_read_at_any_size(memory: MemoryStorage) -> None:
    big = {"items": ["a" * 100] * (FIVE_MB // 100)}
    user = User.create(name="Harry", metadata=big)
    loaded = User.objects.get(id=user.id)
    assert loaded.metadata == big
    # and the text alone, outside a record
    assert attributes.JSON.from_json(json.dumps(big)) == big
