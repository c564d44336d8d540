"""Safety properties on a real redis-server of its own (tracker issue 9).

Each test starts its own ``redis-server`` on a free loopback port, with the
options it needs, and stops it in ``finally``:

* durability: writers in 4 forked processes, the server killed with SIGKILL
  under ``--appendonly yes --appendfsync always``, then restarted on the same
  port and directory (the AOF is replayed): every acknowledged write is
  there, every record loads whole, and the index agrees with the records;
* ACL: a user limited to the keys ``~repocket:*`` can do everything repocket
  does (index data and temporary query keys included);
* TLS: ``rediss://`` with the CA file given as ``?ssl_ca_certs=``;
* hostile stored envelopes, a 50 MB one included, planted with the native
  client: ``get()`` raises :class:`~repocket.errors.EnvelopeError` and
  imports nothing.

The figures are in ``docs/reliability.rst`` ("What was tried").  Every wait
is bounded (:data:`WAIT`); none is a timing assertion.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from repocket import ActiveRecord, attributes
from repocket.backends.layout import record_patterns
from repocket.connections import configure
from repocket.errors import EnvelopeError, StorageError
from repocket.keys import STREAM_INFIX
from repocket.testing.models import Build, Everything
from repocket.testing.query_models import Wizard

from .servers import _free_port, start_redis_server

WAIT = 20.0  # seconds: a bound on every wait, never a timing assertion
FORK = multiprocessing.get_context("fork")


# -- servers ---------------------------------------------------------------------------


@contextmanager
def configured(url: str) -> Iterator[None]:
    configure.reset()
    configure.from_url(url)
    try:
        yield
    finally:
        configure.reset()


@pytest.fixture
def directory() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="repocket-safety-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- 1. durability under kill -9 ---------------------------------------------------------


class Entry(ActiveRecord):
    """A record the durability writers create: an indexed number and text."""

    writer = attributes.Integer()
    number = attributes.Integer()
    text = attributes.Unicode()
    payload = attributes.Bytes()


WRITERS = 4
RUN_BEFORE_KILL = 1.0  # seconds of writing before SIGKILL
CHUNK = re.compile(rb"w(\d):(\d+);")


def _writer(url: str, shared_id: str, number: int, go: Any, results: Any) -> None:
    """Create records and append to the shared stream until the server goes
    away; report what was acknowledged."""
    created: list[str] = []
    appended = 0
    error = None
    try:
        configure.reset()  # the parent's connection is not this process's
        configure.from_url(url)
        shared = Build.objects.get(id=shared_id)
        if not go.wait(WAIT):
            raise TimeoutError("never told to start")
        deadline = time.monotonic() + WAIT
        i = 0
        while time.monotonic() < deadline:
            entry = Entry.create(
                writer=number, number=i, text=f"writer {number} #{i}", payload=os.urandom(64)
            )
            created.append(str(entry.pk))
            shared.append_stdout(b"w%d:%d;" % (number, i))
            appended += 1
            i += 1
        error = "the server was never killed"
    except StorageError:
        pass  # the server was killed: the expected way out
    except BaseException:
        error = traceback.format_exc()
    finally:
        configure.reset()
    results.put((number, error, created, appended))


def test_kill_9_with_appendfsync_always_loses_no_acknowledged_write(directory: str) -> None:
    options = ["--appendonly", "yes", "--appendfsync", "always"]
    server = start_redis_server(options=options, directory=directory)
    url = f"{server.url}?socket_timeout=5"
    processes: list[Any] = []
    results = FORK.Queue()
    try:
        with configured(url):
            shared = Build.create()
            shared_id = str(shared.pk)
        go = FORK.Event()
        processes = [
            FORK.Process(target=_writer, args=(url, shared_id, n, go, results), daemon=True)
            for n in range(WRITERS)
        ]
        for process in processes:
            process.start()
        go.set()
        time.sleep(RUN_BEFORE_KILL)
        server.kill()
        reports: dict[int, tuple[list[str], int]] = {}
        deadline = time.monotonic() + WAIT
        while len(reports) < WRITERS:
            try:
                number, error, created, appended = results.get(
                    timeout=max(0.1, deadline - time.monotonic())
                )
            except queue.Empty:
                pytest.fail(f"only {len(reports)} of {WRITERS} writers reported in {WAIT} s")
            assert error is None, f"writer {number}: {error}"
            reports[number] = (created, appended)
        for process in processes:
            process.join(timeout=WAIT)
            assert process.exitcode == 0

        server = start_redis_server(
            options=options, directory=directory, port=server.port
        )  # replays the AOF
        with configured(url):
            client = configure.storage().native_client
            acknowledged = {pk for created, _ in reports.values() for pk in created}
            stored = {
                key.decode().rsplit(":", 1)[1]
                for pattern in record_patterns(Entry._collection)
                for key in client.scan_iter(match=pattern, count=1000)
                if STREAM_INFIX not in key.decode()
            }
            # every acknowledged create is there; at most one unacknowledged
            # create per writer (sent, applied, its reply lost) on top
            assert acknowledged <= stored
            assert len(stored - acknowledged) <= WRITERS
            # every record loads whole
            loaded = Entry.objects.get_many(sorted(stored))
            assert all(record is not None for record in loaded)
            for record in loaded:
                assert record is not None
                assert record.text == f"writer {record.writer} #{record.number}"
                assert len(record.payload) == 64
            assert Entry.objects.count() == len(stored)
            report = Entry.objects.check()
            assert report.ok, report
            assert report.checked == len(stored)
            # the shared stream holds whole chunks, each writer's in order,
            # every acknowledged one (and at most one more per writer)
            stream = Build.objects.get(id=shared_id).stdout
            assert CHUNK.sub(b"", stream) == b""
            for number, (_, appended) in reports.items():
                mine = [int(i) for w, i in CHUNK.findall(stream) if int(w) == number]
                assert mine == list(range(len(mine)))
                assert appended <= len(mine) <= appended + 1
            assert Build.objects.check().ok
        written = len(acknowledged)
        appends = sum(appended for _, appended in reports.values())
        print(
            f"\ndurability: {written} records acknowledged, {len(stored)} present after "
            f"restart, {appends} appends acknowledged, {len(CHUNK.findall(stream))} present, "
            f"check ok={report.ok} checked={report.checked}"
        )
        assert written > 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=WAIT)
        results.close()
        server.stop()


# -- 2. ACL: every key under repocket: --------------------------------------------------


def test_a_user_limited_to_the_repocket_prefix_can_do_everything(directory: str) -> None:
    server = start_redis_server(directory=directory)
    admin = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=WAIT)
    try:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">secret", "~repocket:*", "+@all")
        admin.set("outside", b"x")
        url = f"redis://app:secret@127.0.0.1:{server.port}/0"
        with configured(url):
            client = configure.storage().native_client
            # the user really is limited
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.get("outside")
            admin.execute_command("ACL", "LOG", "RESET")
            done = []

            harry = Wizard.create(name="Harry", house="Gryffindor", age=17, wand="holly")
            done.append("create")
            harry.age = 18
            harry.save()
            done.append("save (update)")
            assert Wizard.objects.get(id=harry.pk).age == 18
            done.append("get(id=)")
            assert Wizard.objects.get(wand="holly") == harry
            done.append("get(unique field)")
            Wizard.objects.bulk_create(
                [
                    Wizard(name=f"Weasley {i}", house="Gryffindor", age=10 + i, height=1.5 + i)
                    for i in range(20)
                ]
                + [Wizard(name="Draco", house="Slytherin", age=17)]
            )
            done.append("bulk_create")
            assert Wizard.objects.filter(house="Gryffindor").count() == 21
            done.append("filter + count")
            assert len(Wizard.objects.filter(name__startswith="Wea")) == 20
            done.append("filter (prefix)")
            assert len(Wizard.objects.filter(age__gte=15, house="Gryffindor")) == 16
            done.append("filter (range and equality)")
            assert len(Wizard.objects.exclude(house="Slytherin")) == 21
            done.append("exclude")
            assert [w.age for w in Wizard.objects.order_by("-age")[2:5]] == [27, 26, 25]
            done.append("order_by slice")
            assert [w.name for w in Wizard.objects.filter(house="Gryffindor").order_by("age")][
                :2
            ] == ["Weasley 0", "Weasley 1"]
            done.append("filter + order_by")
            assert Wizard.objects.count() == 22
            done.append("count")
            harry.increment("age", 2)
            assert Wizard.objects.get(id=harry.pk).age == 20
            done.append("increment")
            build = Build.create()
            build.append_stdout(b"hello ")
            build.append_stdout(b"world")
            assert Build.objects.get(id=build.pk).stdout == b"hello world"
            done.append("append (ByteStream)")
            assert Wizard.objects.filter(house="Slytherin").delete() == 1
            done.append("filter().delete()")
            harry.delete()
            done.append("delete")
            assert Wizard.objects.reindex() == 20
            done.append("reindex")
            assert Wizard.objects.check().ok
            assert Build.objects.check().ok
            done.append("check")
            build.delete()
            assert Wizard.objects.count() == 20
            # nothing was refused, and nothing was written outside the prefix
            assert admin.execute_command("ACL", "LOG") == []
            keys = {k.decode() for k in admin.scan_iter(count=1000)}
            assert {k for k in keys if not k.startswith("repocket:")} == {"outside"}
            print(f"\nACL: {len(done)} operations: {', '.join(done)}")
    finally:
        admin.close()
        server.stop()


# -- 3. TLS with a CA file -----------------------------------------------------------------


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=WAIT)


def _certificates(directory: str) -> tuple[str, str, str]:
    """A CA, and a server certificate for 127.0.0.1 it signed."""
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=directory)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-sha256",
        "-days",
        "2",
        "-subj",
        "/CN=repocket test CA",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    _openssl("genrsa", "-out", "server.key", "2048", cwd=directory)
    _openssl(
        "req",
        "-new",
        "-key",
        "server.key",
        "-subj",
        "/CN=127.0.0.1",
        "-out",
        "server.csr",
        cwd=directory,
    )
    with open(os.path.join(directory, "san.cnf"), "w") as file:
        file.write("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-sha256",
        "-extfile",
        "san.cnf",
        "-out",
        "server.crt",
        cwd=directory,
    )
    return tuple(  # type: ignore[return-value]
        os.path.join(directory, name) for name in ("ca.crt", "server.crt", "server.key")
    )


def test_rediss_with_a_ca_file(directory: str) -> None:
    ca, cert, key = _certificates(directory)
    port = _free_port()
    server = start_redis_server(
        directory=directory,
        options=[
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            cert,
            "--tls-key-file",
            key,
            "--tls-ca-cert-file",
            ca,
            "--tls-auth-clients",
            "no",
        ],
        port=port,
        ping={"host": "127.0.0.1", "port": port, "ssl": True, "ssl_ca_certs": ca},
    )
    try:
        with configured(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"):
            harry = Wizard.create(name="Harry", house="Gryffindor", wand="holly")
            assert Wizard.objects.get(id=harry.pk) == harry
            assert [w.pk for w in Wizard.objects.filter(house="Gryffindor")] == [harry.pk]
            assert harry.delete() == 1
            assert Wizard.objects.count() == 0
        # and a client that does not trust the CA is refused
        untrusted = f"rediss://127.0.0.1:{port}/0?socket_timeout=5"
        with configured(untrusted), pytest.raises(StorageError, match=r"(?i)certificate"):
            Wizard.objects.count()
    finally:
        server.stop()


# -- 4. hostile envelopes on a real server ---------------------------------------------------

BIG = 50 * 1024 * 1024  # a 50 MB value


def _envelope(**members: Any) -> bytes:
    return json.dumps(members).encode()


def hostile_values() -> list[tuple[str, str, bytes]]:
    """(description, field of Everything, stored text)."""
    module = "repocket.attributes"
    values: list[tuple[str, str, bytes]] = []
    for name in ("os", "subprocess", "pickle", "builtins", "ctypes", "importlib", "shutil"):
        values.append((f"module {name}", "text", _envelope(type="Unicode", module=name, value="x")))
        values.append(
            (
                f"module {name}, type system",
                "doc",
                _envelope(type="system", module=name, value="ls"),
            )
        )
    for type_name in ("Nope", "Popen", "loads", "eval", "__import__", "", "Unicode\x00"):
        values.append(
            (f"type {type_name!r}", "text", _envelope(type=type_name, module=module, value="x"))
        )
    values += [
        ("type not a string", "number", _envelope(type=["Integer"], module=module, value=1)),
        ("module not a string", "number", _envelope(type="Integer", module=None, value=1)),
        (
            "pickle payload",
            "raw",
            _envelope(type="Bytes", module="pickle", value="gASVAAAAAAAAAAA=", encoding="pickle"),
        ),
        (
            "unknown encoding",
            "raw",
            _envelope(type="Bytes", module=module, value="eA==", encoding="zlib"),
        ),
        (
            "bad base64",
            "raw",
            _envelope(type="Bytes", module=module, value="***", encoding="base64"),
        ),
        (
            "Integer not a number",
            "number",
            _envelope(type="Integer", module=module, value="12; rm -rf /"),
        ),
        ("UUID not a uuid", "ref", _envelope(type="UUID", module=module, value="not-a-uuid")),
        (
            "DateTime not a date",
            "when",
            _envelope(type="DateTime", module=module, value="yesterday"),
        ),
        (
            "Decimal not a number",
            "amount",
            _envelope(type="Decimal", module=module, value="__import__('os')"),
        ),
        (
            "JSON value not JSON",
            "doc",
            _envelope(type="JSON", module=module, value="{'a': __import__('os')}"),
        ),
        ("envelope a list", "text", b'["Unicode", "x"]'),
        ("envelope a number", "text", b"12"),
        ("not UTF-8", "text", b"\xff\xfe\x00garbage"),
        (
            "truncated JSON",
            "text",
            b'{"type": "Unicode", "module": "repocket.attributes", "value": "x',
        ),
        ("python literal", "text", b"{'type': 'Unicode', 'value': 'x'}"),
        ("100,000-deep list", "doc", b"[" * 100_000),
        (
            "100,000-deep value",
            "doc",
            b'{"type": "JSON", "module": "repocket.attributes", "value": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
        ),
        ("100,000-deep object", "doc", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        (
            "50 MB unterminated value",
            "text",
            b'{"type": "Unicode", "module": "repocket.attributes", "value": "' + b"x" * BIG,
        ),
    ]
    return values


def test_hostile_envelopes_on_a_real_server_raise_envelope_error(directory: str) -> None:
    server = start_redis_server(directory=directory)
    try:
        with configured(server.url):
            client = configure.storage().native_client
            template = Everything.create(text="template")
            fields = client.hgetall(template._record_key())
            values = hostile_values()
            planted = []
            for description, name, text in values:
                record_id = str(uuid.uuid4())
                stored = dict(fields)
                stored[b"id"] = _envelope(
                    type="AutoUUID", value=record_id, module="repocket.attributes"
                )
                stored[name.encode()] = text
                client.hset(configure.record_key(Everything._collection, record_id), mapping=stored)
                planted.append((description, record_id))
            before = set(sys.modules)
            loaded = []
            for description, record_id in planted:
                try:
                    Everything.objects.get(id=record_id)
                except EnvelopeError:
                    continue
                loaded.append(description)
            assert loaded == [], "loaded without EnvelopeError"
            assert set(sys.modules) == before
            print(f"\nhostile envelopes: {len(planted)} planted, {len(planted)} EnvelopeError")
    finally:
        server.stop()
