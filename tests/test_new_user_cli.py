"""``repocket models`` shows what a new user needs to know about each field
(tracker issue 10 item 14): which fields are indexed, and how, which are
unique, and a callable default as a call rather than as the function's name."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from repocket.cli import main
from repocket.connections import configure


@pytest.fixture(autouse=True)
def _reset_configuration():
    yield
    configure.reset()


def test_models_shows_indexes_unique_fields_and_callable_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"cli_new_user_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(
        "import functools\n"
        "from repocket import ActiveRecord, attributes\n\n"
        "class Shop(ActiveRecord):\n"
        "    name = attributes.Unicode(unique=True)\n"
        "    slug = attributes.Unicode(index='prefix')\n"
        "    note = attributes.Unicode(index=False, default='none')\n"
        "    stock = attributes.Integer(default=3)\n"
        "    price = attributes.Decimal(null=True)\n"
        "    token = attributes.Bytes(index=True)\n"
        "    secret = attributes.Bytes()\n"
        "    tags = attributes.JSON(default=list)\n"
        "    extra = attributes.JSON(default=lambda: {'a': 1})\n"
        "    label = attributes.Unicode(default=functools.partial(str, 'x'))\n"
        "    opened = attributes.DateTime(auto_now=True)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = CliRunner().invoke(
        main, ["models", "--url", "memory://", "--import", module], prog_name="repocket"
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{module}.Shop: 0 records\n"
        "  id      AutoUUID\n"
        "  name    Unicode (indexed: eq, unique)\n"
        "  slug    Unicode (indexed: eq+prefix)\n"
        "  note    Unicode (default='none')\n"
        "  stock   Integer (indexed: range, default=3)\n"
        "  price   Decimal (indexed: range, null)\n"
        "  token   Bytes (indexed: eq)\n"
        "  secret  Bytes\n"
        "  tags    JSON (default=list())\n"
        "  extra   JSON (default=<lambda>())\n"
        "  label   Unicode (indexed: eq, "
        "default=<callable functools.partial(<class 'str'>, 'x')>)\n"
        "  opened  DateTime (indexed: range, auto_now)\n"
    )


def test_demo_reports_an_unreachable_server_in_one_error_line(tmp_path) -> None:
    from click.testing import CliRunner

    from repocket.cli import main

    url = f"unix://{tmp_path / 'nothing.sock'}"
    result = CliRunner().invoke(main, ["demo", "--url", url])
    assert result.exit_code == 1
    # the demo says where it runs and what it starts, then fails in one line
    lines = [line for line in result.output.splitlines() if line]
    assert lines[0].startswith("# storage: redis at unix socket ")
    assert lines[-1].startswith("Error: cannot reach redis at unix socket ")
    assert not any(line.startswith("Error") for line in lines[:-1])
    assert "Traceback" not in result.output


def test_demo_reports_a_misspelled_scheme_in_one_error_line() -> None:
    from click.testing import CliRunner

    from repocket.cli import main

    result = CliRunner().invoke(main, ["demo", "--url", "rdis://localhost:6379/0"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no repocket backend for URL scheme 'rdis'")
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1


def test_the_demo_follows_the_tutorial_showing_each_steps_code() -> None:
    import re
    from pathlib import Path

    from click.testing import CliRunner

    from repocket.cli import main

    out = CliRunner().invoke(main, ["demo"]).output
    tutorial = (Path(__file__).resolve().parent.parent / "docs" / "tutorial.rst").read_text()
    headings = re.findall(r"^(.+)\n-+$", tutorial, flags=re.M)
    sections = re.findall(r"^# ([A-Z][^:(]*?)(?: \(.*\))?$", out, flags=re.M)
    tutorial_sections = [title for title in sections if title in headings]
    # the tutorial's sections, in the tutorial's order
    assert tutorial_sections == sorted(tutorial_sections, key=headings.index)
    assert len(tutorial_sections) >= 6
    # the models, the code of each step, the index keys, and the deletion
    assert "class User(ActiveRecord):" in out
    assert '>>> results = User.objects.filter(house_name="Gryffindor").order_by("-name")' in out
    assert 'repocket::index:repocket.demo:User:eq:house_name:"Gryffindor"' in out
    assert "# Deleting records (the demo deletes everything it created)" in out
