"""Field values are typed for users' type checkers.

One ``mypy --strict`` run checks the user code of ``tests/typing_samples/``:
each ``reveal_type(...)`` there must show the type written in its comment,
each line marked ``# error: [code]`` must be refused with that error code, and
nothing else may be reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((Path(__file__).resolve().parent / "typing_samples").glob("*.py"))

EXPECTED_REVEAL = re.compile(r"reveal_type\(.*\)\s*#\s*(?P<type>\S.*?)\s*$")
EXPECTED_ERROR = re.compile(r"#\s*error:\s*\[(?P<code>[a-z-]+)\]\s*$")
REPORTED = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>note|error): (?P<message>.*?)"
    r"(?:  \[(?P<code>[a-z-]+)\])?$"
)
REVEALED = re.compile(r'^Revealed type is "(?P<type>.*)"$')

Place = tuple[str, int]


def _expectations(pattern: re.Pattern[str], group: str) -> dict[Place, str]:
    found = {}
    for sample in SAMPLES:
        for number, line in enumerate(sample.read_text().splitlines(), start=1):
            match = pattern.search(line)
            if match:
                found[(sample.name, number)] = match.group(group)
    return found


REVEALS = _expectations(EXPECTED_REVEAL, "type")
ERRORS = _expectations(EXPECTED_ERROR, "code")


class MypyReport:
    """What one mypy run said about the samples, by file name and line."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.revealed: dict[Place, str] = {}
        self.errors: dict[Place, list[str]] = {}
        for line in output.splitlines():
            match = REPORTED.match(line)
            if match is None:
                continue
            path = Path(match["path"])
            place = (path.name, int(match["line"]))
            revealed = REVEALED.match(match["message"])
            if match["kind"] == "note" and revealed:
                # the sample's own classes are written without their module
                own_module = f"tests.typing_samples.{path.stem}."
                self.revealed[place] = revealed["type"].replace(own_module, "")
            elif match["kind"] == "error":
                self.errors.setdefault(place, []).append(match["code"] or match["message"])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> MypyReport:
    work = tmp_path_factory.mktemp("mypy")
    config = work / "mypy.ini"
    # the samples are user code: strict, and silent about repocket's own modules
    config.write_text(
        f"[mypy]\npython_version = 3.10\nstrict = true\nmypy_path = {ROOT}\n"
        "follow_imports = silent\n"
    )
    stdout, stderr, _status = mypy_api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(work / "cache"),
            "--no-error-summary",
            "--hide-error-context",
            *map(str, SAMPLES),
        ]
    )
    assert not stderr, stderr
    return MypyReport(stdout)


def test_the_samples_hold_expectations() -> None:
    assert len(REVEALS) >= 20 and ERRORS


@pytest.mark.parametrize("place", sorted(REVEALS), ids=lambda place: f"{place[0]}:{place[1]}")
def test_a_field_value_has_the_type_of_its_field(report: MypyReport, place: Place) -> None:
    assert report.revealed.get(place) == REVEALS[place], report.output


@pytest.mark.parametrize("place", sorted(ERRORS), ids=lambda place: f"{place[0]}:{place[1]}")
def test_assigning_a_value_of_the_wrong_type_is_an_error(report: MypyReport, place: Place) -> None:
    assert report.errors.get(place) == [ERRORS[place]], report.output


def test_nothing_else_is_reported(report: MypyReport) -> None:
    unexpected = {place: codes for place, codes in report.errors.items() if place not in ERRORS}
    assert unexpected == {}, report.output
