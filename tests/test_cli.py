"""The command line, on the memory backend and on a real redis-server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import repocket
import repocket.backend_registry as storage_module
from repocket.backend_registry import register_backend
from repocket.backends.memory import MemoryStorage
from repocket.cli import main
from repocket.connections import configure

from . import models
from .servers import RedisServer


@pytest.fixture(autouse=True)
def _reset_configuration():
    yield
    configure.reset()


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"repocket, version {repocket.__version__}"


def test_demo_runs_the_tutorial_on_the_memory_backend() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "private memory store" in out
    assert (
        "{'hash': 'repocket:repocket.demo:User:970773fa-4de1-11e5-86f4-6c4008a70392', "
        "'strings': {}}"
    ) in out
    assert '{"type": "Unicode", "value": "Harry Potter", "module": "repocket.attributes"}' in out
    assert "['Ron Weasley', 'Harry Potter']" in out
    assert ">>> harry.delete()\n1\n" in out
    assert ">>> list(User.objects.all())\n[]" in out


def test_demo_runs_on_a_real_redis_server_and_cleans_up(redis_server: RedisServer) -> None:
    result = CliRunner().invoke(main, ["demo", "--url", redis_server.url])
    assert result.exit_code == 0, result.output
    assert f"redis at 127.0.0.1:{redis_server.port}" in result.output
    assert "['Ron Weasley', 'Harry Potter']" in result.output
    client = configure.get_connection()
    assert list(client.scan_iter(match="repocket:repocket.demo:*")) == []


def test_demo_keep_leaves_the_records(redis_server: RedisServer) -> None:
    result = CliRunner().invoke(main, ["demo", "--keep", "--url", redis_server.url])
    assert result.exit_code == 0, result.output
    client = configure.get_connection()
    assert client.exists("repocket:repocket.demo:User:970773fa-4de1-11e5-86f4-6c4008a70392")
    configure.storage().clear()


def test_python_dash_m_repocket_runs_the_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "repocket", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "# Retrieving multiple items with filter" in completed.stdout


def test_every_command_has_help() -> None:
    for args in (["--help"], ["demo", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output


# ---------------------------------------------------------------------------
# ping, models, inspect: on the memory backend (a named store the test fills
# first, since memory:// alone is a new empty store) and on a real server
# ---------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="repocket")


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty storage, configured so that the test can fill it."""
    if request.param == "memory":
        url = f"memory://test-cli-{uuid.uuid4().hex}"
    else:
        url = request.getfixturevalue("redis_server").url
    configure.from_url(url).clear()
    yield url
    configure.from_url(url).clear()


@pytest.fixture
def harry(url: str) -> models.User:
    return models.User.create(
        id="970773fa-4de1-11e5-86f4-6c4008a70392",
        name="Harry Potter",
        house_name="Gryffindor",
        email="harry@hogwards.uk",
        password=b"\x00\xff",
        metadata={"known_tricks": ["Protego"]},
    )


def test_ping_answers_pong_and_says_where(url: str) -> None:
    result = invoke("ping", "--url", url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"PONG from {configure.storage().describe()} in ")


def test_ping_reads_the_url_from_the_environment(redis_server: RedisServer) -> None:
    result = CliRunner(env={"REPOCKET_URL": redis_server.url}).invoke(main, ["ping"])
    assert result.exit_code == 0, result.output
    assert f"redis at 127.0.0.1:{redis_server.port}" in result.output


@pytest.fixture
def nowhere(tmp_path: Path) -> str:
    """A unix socket nothing listens on: a fresh, empty directory's, so the
    test depends on no port being closed."""
    return f"unix://{tmp_path / 'nothing.sock'}"


def test_ping_fails_clearly_when_the_server_is_unreachable(nowhere: str) -> None:
    result = invoke("ping", "--url", nowhere)
    assert result.exit_code == 1
    path = nowhere.removeprefix("unix://")
    assert result.output.startswith(f"Error: cannot reach redis at unix socket {path} (db 0)")
    assert "Traceback" not in result.output


def test_ping_lists_the_schemes_when_the_url_names_no_backend() -> None:
    result = invoke("ping", "--url", "nosuchdb://somewhere/0")
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: no repocket backend for URL scheme 'nosuchdb'; available schemes: "
    )
    assert "memory, redis, redis+cluster, rediss, rediss+cluster" in result.output


def test_models_lists_each_model_with_its_fields_and_record_count(
    url: str, harry: models.User
) -> None:
    models.User.create(name="Ron Weasley")
    models.Build.create(project=models.Project.create(name="repocket"))
    result = invoke("models", "--url", url, "--import", "repocket.testing.models")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "repocket.testing.models.User: 2 records\n"
        "  id          AutoUUID\n"
        "  name        Unicode (indexed: eq)\n"
        "  house_name  Unicode (indexed: eq)\n"
        "  email       Bytes\n"
        "  password    Bytes\n"
        "  metadata    JSON\n"
        "repocket.testing.models.Project: 1 record\n"
    )
    assert (
        "repocket.testing.models.Build: 1 record\n"
        "  id          AutoUUID\n"
        "  project     Pointer -> repocket.testing.models.Project (indexed: eq)\n"
    ) in result.output
    assert "repocket.testing.models.BlogPost: 0 records\n" in result.output
    assert "  created_at  DateTime (indexed: range, auto_now)\n" in result.output
    assert "  log     ByteStream\n" in result.output


def test_models_lists_only_the_models_of_the_imported_modules(url: str) -> None:
    result = invoke("models", "--url", url, "--import", "repocket.testing.models")
    assert result.exit_code == 0, result.output
    listed = [line.split(":")[0] for line in result.output.splitlines() if not line.startswith(" ")]
    assert listed == [
        "repocket.testing.models.User",
        "repocket.testing.models.Project",
        "repocket.testing.models.Build",
        "repocket.testing.models.BlogPost",
        "repocket.testing.models.Everything",
    ]


def test_models_imports_modules_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"cli_app_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(
        "from repocket import ActiveRecord, attributes\n\n"
        "class Wand(ActiveRecord):\n"
        "    wood = attributes.Unicode(default='holly')\n"
        "    length = attributes.Float(null=True)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = invoke("models", "--url", "memory://", "--import", module)
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{module}.Wand: 0 records\n"
        "  id      AutoUUID\n"
        "  wood    Unicode (indexed: eq, default='holly')\n"
        "  length  Float (indexed: range, null)\n"
    )


def test_models_fails_when_a_module_cannot_be_imported() -> None:
    result = invoke("models", "--url", "memory://", "--import", "no_such_app.models")
    assert result.exit_code == 1
    assert result.output == (
        "Error: cannot import no_such_app.models: ModuleNotFoundError: "
        "No module named 'no_such_app'\n"
    )


def test_models_fails_when_a_module_declares_no_model() -> None:
    result = invoke("models", "--url", "memory://", "--import", "json")
    assert result.exit_code == 1
    assert result.output == "Error: no repocket models are declared in json\n"


def test_models_needs_an_import() -> None:
    result = invoke("models", "--url", "memory://")
    assert result.exit_code == 2
    assert "Missing option '--import'" in result.output


def test_models_fails_clearly_when_the_server_is_unreachable(nowhere: str) -> None:
    result = invoke("models", "--url", nowhere, "--import", "repocket.testing.models")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach redis at unix socket ")


def test_inspect_prints_each_stored_envelope_and_its_decoded_value(
    url: str, harry: models.User
) -> None:
    result = invoke("inspect", "--url", url, "repocket.testing.models.User", str(harry.id))
    assert result.exit_code == 0, result.output
    key = "repocket:repocket.testing.models:User:970773fa-4de1-11e5-86f4-6c4008a70392"
    assert result.output == (
        "repocket.testing.models.User 970773fa-4de1-11e5-86f4-6c4008a70392\n"
        f"hash {key} in {configure.storage().describe()}\n"
        "\n"
        "id (AutoUUID)\n"
        '  stored:  {"type": "AutoUUID", "value": "970773fa-4de1-11e5-86f4-6c4008a70392", '
        '"module": "repocket.attributes"}\n'
        "  decoded: UUID('970773fa-4de1-11e5-86f4-6c4008a70392')\n"
        "\n"
        "name (Unicode)\n"
        '  stored:  {"type": "Unicode", "value": "Harry Potter", '
        '"module": "repocket.attributes"}\n'
        "  decoded: 'Harry Potter'\n"
        "\n"
        "house_name (Unicode)\n"
        '  stored:  {"type": "Unicode", "value": "Gryffindor", '
        '"module": "repocket.attributes"}\n'
        "  decoded: 'Gryffindor'\n"
        "\n"
        "email (Bytes)\n"
        '  stored:  {"type": "Bytes", "value": "harry@hogwards.uk", '
        '"module": "repocket.attributes"}\n'
        "  decoded: b'harry@hogwards.uk'\n"
        "\n"
        "password (Bytes)\n"
        '  stored:  {"type": "Bytes", "value": "AP8=", "module": "repocket.attributes", '
        '"encoding": "base64"}\n'
        "  decoded: b'\\x00\\xff'\n"
        "\n"
        "metadata (JSON)\n"
        '  stored:  {"type": "JSON", "value": "{\\"known_tricks\\": [\\"Protego\\"]}", '
        '"module": "repocket.attributes"}\n'
        "  decoded: {'known_tricks': ['Protego']}\n"
    )


def test_inspect_shows_pointers_streams_and_missing_fields(url: str) -> None:
    project = models.Project.create(name="repocket")
    build = models.Build.create(project=project, stdout=b"collecting tests\n")
    key = build.save()["hash"]
    configure.get_connection().hdel(key, "ended_at")
    result = invoke(
        "inspect", "--url", url, "--import", "repocket.testing.models", "Build", str(build.id)
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        f"project (Pointer)\n"
        f'  stored:  {{"type": "Pointer", "value": "{project.save()["hash"]}", '
        f'"module": "repocket.attributes"}}\n'
        f"  decoded: '{project.save()['hash']}'\n"
    ) in out
    assert (
        f"stdout (ByteStream, key {key}:field:stdout)\n"
        f"  stored:  b'collecting tests\\n' (17 bytes)\n"
    ) in out
    assert f"stderr (ByteStream, key {key}:field:stderr)\n  stored:  b'' (0 bytes)\n" in out
    assert (
        "ended_at (DateTime)\n  stored:  (nothing; loads as the field's default or empty value)\n"
    ) in out


def test_inspect_shortens_long_streams(url: str) -> None:
    build = models.Build.create(project=models.Project.create(name="x"), stdout=b"a" * 1000)
    result = invoke("inspect", "--url", url, "repocket.testing.models.Build", str(build.id))
    assert result.exit_code == 0, result.output
    assert f"  stored:  {b'a' * 200!r}... (1000 bytes)\n" in result.output


def test_inspect_lists_hash_fields_the_model_does_not_declare(url: str, harry: models.User) -> None:
    configure.get_connection().hset(harry.save()["hash"], "wand", b"holly")
    result = invoke("inspect", "--url", url, "repocket.testing.models.User", str(harry.id))
    assert result.exit_code == 0, result.output
    assert result.output.endswith(
        "\nwand (not declared by repocket.testing.models.User; ignored when loading)\n"
        "  stored:  holly\n"
    )


def test_inspect_reports_an_envelope_it_cannot_decode_and_fails(
    url: str, harry: models.User
) -> None:
    configure.get_connection().hset(harry.save()["hash"], "name", b"\xff not json")
    result = invoke("inspect", "--url", url, "repocket.testing.models.User", str(harry.id))
    assert result.exit_code == 1
    # bytes that are not UTF-8 are shown with backslash escapes
    assert "name (Unicode)\n  stored:  \\xff not json\n  error:   " in result.output
    assert "  decoded: 'Gryffindor'\n" in result.output  # the other fields are still shown
    assert result.output.endswith(f"Error: 1 field of {harry.save()['hash']} cannot be decoded\n")


def test_inspect_fails_when_the_record_does_not_exist(url: str) -> None:
    result = invoke(
        "inspect",
        "--url",
        url,
        "repocket.testing.models.User",
        "00000000-0000-0000-0000-000000000000",
    )
    assert result.exit_code == 1
    assert result.output == (
        "Error: no repocket.testing.models.User record 00000000-0000-0000-0000-000000000000 in "
        f"{configure.storage().describe()} "
        "(key repocket:repocket.testing.models:User:00000000-0000-0000-0000-000000000000)\n"
    )


def test_inspect_fails_clearly_when_the_server_is_unreachable(nowhere: str) -> None:
    result = invoke(
        "inspect",
        "--url",
        nowhere,
        "repocket.testing.models.User",
        "970773fa-4de1-11e5-86f4-6c4008a70392",
    )
    path = nowhere.removeprefix("unix://")
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: cannot reach redis at unix socket {path} (db 0) while trying to load "
        "repocket:repocket.testing.models:User:970773fa-4de1-11e5-86f4-6c4008a70392: "
    )


def test_inspect_accepts_an_id_in_any_uuid_spelling(url: str, harry: models.User) -> None:
    result = invoke(
        "inspect", "--url", url, "repocket.testing.models.User", "970773FA4DE111E586F46C4008A70392"
    )
    assert result.exit_code == 0, result.output
    assert "decoded: 'Harry Potter'" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["repocket.testing.models.User", "not-an-id"],
            "Invalid value for ID: 'not-an-id' is not a repocket.testing.models.User id",
        ),
        (
            ["repocket.testing.models.Wizard", "970773fa-4de1-11e5-86f4-6c4008a70392"],
            "Invalid value for MODEL: repocket.testing.models declares no model named Wizard",
        ),
        (
            ["Wizard", "970773fa-4de1-11e5-86f4-6c4008a70392"],
            "Invalid value for MODEL: no imported model is named Wizard; imported models: none",
        ),
        (
            [
                "--import",
                "repocket.testing.models",
                "Wizard",
                "970773fa-4de1-11e5-86f4-6c4008a70392",
            ],
            "imported models: repocket.testing.models.User, repocket.testing.models.Project, "
            "repocket.testing.models.Build",
        ),
        (
            [
                "--import",
                "repocket.testing.models",
                "--import",
                "repocket.demo",
                "User",
                "970773fa-4de1-11e5-86f4-6c4008a70392",
            ],
            "Invalid value for MODEL: User is ambiguous: repocket.testing.models.User, "
            "repocket.demo.User",
        ),
    ],
)
def test_inspect_refuses_a_model_or_id_it_cannot_use(args: list[str], message: str) -> None:
    result = invoke("inspect", "--url", "memory://", *args)
    assert result.exit_code == 2
    assert message in result.output


class OpaqueMemoryStorage(MemoryStorage):
    """A backend whose native client is no redis client: inspect uses load_record."""

    scheme = "opaque"

    @property
    def native_client(self) -> Any:
        return object()


def test_inspect_reads_other_backends_through_load_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "_registry", dict(storage_module._registry))
    monkeypatch.setattr(storage_module, "_entry_points_loaded", storage_module._entry_points_loaded)
    register_backend("opaque", OpaqueMemoryStorage)
    url = f"opaque://test-cli-{uuid.uuid4().hex}"
    configure.from_url(url)
    harry = models.User.create(name="Harry Potter", password=b"\x00\xff")
    result = invoke("inspect", "--url", url, "repocket.testing.models.User", str(harry.id))
    assert result.exit_code == 0, result.output
    assert (
        "password (Bytes)\n"
        '  stored:  {"type": "Bytes", "value": "AP8=", "module": "repocket.attributes", '
        '"encoding": "base64"}\n'
        "  decoded: b'\\x00\\xff'\n"
    ) in result.output


@pytest.mark.parametrize("command", ["demo", "ping", "models", "inspect", "check", "reindex"])
def test_every_command_has_its_own_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: repocket {command} [OPTIONS]")
    assert invoke(command, "-h").output == result.output


# ---------------------------------------------------------------------------
# check and reindex
# ---------------------------------------------------------------------------


def _forget_index_data() -> None:
    """Leave the records but drop their index data, as 0.0.1 data would be."""
    storage = configure.storage()
    for model in (models.User, models.Project):
        storage.drop_index(model._collection)


def test_check_passes_on_consistent_data(url: str, harry: models.User) -> None:
    result = invoke("check", "--url", url, "--import", "repocket.testing.models", "User")
    assert result.exit_code == 0, result.output
    assert (
        "repocket.testing.models.User: ok: 1 checked, 0 missing, 0 stale, 0 orphaned, "
        "0 orphaned entries, 0 stray keys" in result.output
    )


def test_check_reports_records_missing_from_the_index_and_fails(
    url: str, harry: models.User
) -> None:
    _forget_index_data()
    result = invoke("check", "--url", url, "--import", "repocket.testing.models", "User", "Project")
    assert result.exit_code == 1
    assert (
        "repocket.testing.models.User: INCONSISTENT: 1 checked, 1 missing, 0 stale, 0 orphaned"
        in (result.output)
    )
    assert f"  missing: {harry.id}" in result.output
    assert "repocket.testing.models.Project: ok: 0 checked" in result.output
    assert "run `repocket reindex`" in result.output


def test_reindex_rebuilds_the_index_and_check_then_passes(url: str, harry: models.User) -> None:
    _forget_index_data()
    assert models.User.objects.filter(house_name="Gryffindor").count() == 0
    result = invoke("reindex", "--url", url, "--import", "repocket.testing.models", "User")
    assert result.exit_code == 0, result.output
    assert "repocket.testing.models.User: 1 record indexed" in result.output
    assert models.User.objects.filter(house_name="Gryffindor").count() == 1
    assert (
        invoke("check", "--url", url, "--import", "repocket.testing.models", "User").exit_code == 0
    )


def test_check_and_reindex_refuse_an_unknown_model(url: str) -> None:
    for command in ("check", "reindex"):
        result = invoke(command, "--url", url, "--import", "repocket.testing.models", "Nope")
        assert result.exit_code == 2
        assert "no imported model is named Nope" in result.output


def test_check_fails_clearly_when_the_server_is_unreachable() -> None:
    result = invoke(
        "check", "--url", "redis://127.0.0.1:1/0", "--import", "repocket.testing.models"
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach redis at 127.0.0.1:1")
