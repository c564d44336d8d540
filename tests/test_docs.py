"""The documentation is tested, so it cannot drift from the code.

- every interpreter session (``>>>``) of docs/*.rst and README.rst runs as a
  doctest on the memory backend, one test per file;
- the README's example runs, and prints what its comments say;
- the ``$ repocket ...`` sessions of docs/cli.rst run against a real
  redis-server, and each command's ``--help`` is the text the page shows;
- the Sphinx site builds with warnings treated as errors.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from repocket.cli import main
from repocket.connections import configure

from .servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.rst")), ROOT / "README.rst"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# The host the pages show for redis; the tests run on their own server.
DOCUMENTED_URL = "redis://localhost:6379/0"
DOCUMENTED_SERVER = "localhost:6379"


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(autouse=True)
def _unconfigured() -> Iterator[None]:
    """Each page configures its own storage, as a reader's session would."""
    configure.reset()
    yield
    configure.reset()


# ---------------------------------------------------------------------------
# Interpreter sessions
# ---------------------------------------------------------------------------


def run_doctests(path: Path) -> tuple[doctest.TestResults, str]:
    """Run a page's ``>>>`` examples as ``__main__``, as typed into ``python``."""
    text = path.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(
        text, {"__name__": "__main__"}, _name(path), str(path), 0
    )
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    try:
        runner.run(test, out=report.write)
    finally:
        test.globs.clear()
    return runner.summarize(verbose=False), report.getvalue()


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_interpreter_sessions_in_the_docs_run(path: Path) -> None:
    results, report = run_doctests(path)
    assert results.failed == 0, report


@pytest.mark.parametrize(
    "page, at_least",
    [
        ("tutorial.rst", 50),
        ("models.rst", 40),
        ("serialization.rst", 10),
        ("backends.rst", 2),
    ],
)
def test_the_doctest_parser_finds_the_examples(page: str, at_least: int) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    examples = doctest.DocTestParser().get_examples(text)
    assert len(examples) >= at_least


_USES_STORAGE = re.compile(r">>> .*\.(create|save|objects)\b")
_CONFIGURES_MEMORY = re.compile(
    r""">>> (\w+ = )?configure\.(from_url\(['"]memory://|connection_pool\(backend=['"]memory['"])"""
)


def test_the_doc_sessions_run_on_the_memory_backend() -> None:
    """No page needs a server: each configures memory storage before it uses storage."""
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        uses_storage = _USES_STORAGE.search(text)
        if uses_storage:
            configured = _CONFIGURES_MEMORY.search(text)
            assert configured and configured.start() < uses_storage.start(), _name(path)


# ---------------------------------------------------------------------------
# Python code blocks
# ---------------------------------------------------------------------------

_CODE_BLOCK = re.compile(r"^\.\. code-block:: (\w+)\n\n((?:(?:    .*)?\n)+)", re.M)


def code_blocks(path: Path, *languages: str) -> list[str]:
    """The (dedented) content of each ``.. code-block::`` of these languages, in order."""
    blocks = []
    for match in _CODE_BLOCK.finditer(path.read_text(encoding="utf-8")):
        if match.group(1) in languages:
            lines = match.group(2).rstrip("\n").split("\n")
            blocks.append("\n".join(line[4:] for line in lines) + "\n")
    return blocks


@pytest.mark.parametrize("path", PAGES, ids=_name)
def test_python_code_blocks_are_valid_python(path: Path) -> None:
    for block in code_blocks(path, "python"):
        compile(block, _name(path), "exec")


def test_the_readme_example_prints_what_its_comments_say() -> None:
    (example,) = code_blocks(ROOT / "README.rst", "python")
    expected = [
        line.split("# ", 1)[1].strip()
        for line in example.splitlines()
        if line.startswith("print(") and "# " in line
    ]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(example, "README.rst", "exec"), {"__name__": "__main__"})
    printed = output.getvalue().splitlines()
    assert len(printed) == len(expected)
    for line, comment in zip(printed, expected, strict=True):
        pattern = re.escape(comment).replace(re.escape("<id>"), "[0-9a-f-]{36}")
        assert re.fullmatch(pattern, line), (line, comment)


# ---------------------------------------------------------------------------
# The command line page
# ---------------------------------------------------------------------------


def console_sessions(path: Path) -> list[tuple[str, str]]:
    """``(command line, expected output)`` for each ``$ repocket`` line of a page."""
    sessions: list[tuple[str, str]] = []
    for block in code_blocks(path, "console", "text"):
        if not block.startswith("$ repocket"):
            continue
        for chunk in re.split(r"^(?=\$ )", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            sessions.append((command[2:], output))
    return sessions


def _normalize(text: str) -> str:
    return re.sub(r"in \d+\.\d ms", "in N ms", text)


def test_the_cli_page_shows_sessions_of_every_command() -> None:
    shown = {shlex.split(command)[1] for command, _ in console_sessions(DOCS / "cli.rst")}
    assert shown == set(_commands()) - {""}


def test_the_cli_sessions_of_the_docs_print_what_the_docs_show(redis_server: RedisServer) -> None:
    """Run each ``$ repocket`` line on the test server, shown as localhost:6379."""
    actual_server = f"127.0.0.1:{redis_server.port}"
    checker = doctest.OutputChecker()
    configure.from_url(redis_server.url).clear()
    try:
        for command, expected in console_sessions(DOCS / "cli.rst"):
            args = shlex.split(command.replace(DOCUMENTED_URL, redis_server.url))[1:]
            result = CliRunner().invoke(main, args, prog_name="repocket", terminal_width=80)
            output = _normalize(result.output.replace(actual_server, DOCUMENTED_SERVER))
            assert checker.check_output(_normalize(expected), output, FLAGS), (
                f"$ {command}\n--- the docs show:\n{expected}--- it printed:\n{output}"
            )
            assert (result.exit_code == 1) == output.startswith("Error:"), (command, output)
    finally:
        configure.from_url(redis_server.url).clear()


def help_texts(path: Path) -> dict[str, str]:
    """The ``--help`` texts a page shows, by command (``""`` for ``repocket`` itself)."""
    texts = {}
    for block in code_blocks(path, "text"):
        match = re.match(r"Usage: repocket (?:(\w+) )?\[OPTIONS\]", block)
        if match:
            texts[match.group(1) or ""] = block
    return texts


def _commands() -> list[str]:
    group = main
    assert isinstance(group, click.Group)
    return ["", *sorted(group.commands)]


@pytest.mark.parametrize("command", _commands())
def test_the_cli_page_shows_the_help_of_every_command(command: str) -> None:
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(main, args, prog_name="repocket", terminal_width=80)
    assert result.exit_code == 0
    assert help_texts(DOCS / "cli.rst").get(command) == result.output


# ---------------------------------------------------------------------------
# The Sphinx site
# ---------------------------------------------------------------------------


def test_the_docs_build_without_warnings(tmp_path: Path) -> None:
    command = ["-W", "--keep-going", "--no-color", "-q", "-b", "html", DOCS, tmp_path / "html"]
    completed = subprocess.run(
        [sys.executable, "-m", "sphinx", *map(str, command)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "html" / "api.html").exists()
