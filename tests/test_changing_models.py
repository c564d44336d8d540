"""Changing a model's fields: ``repocket check`` names the stored fields a
model no longer declares (kept on save); the index entries of a removed
indexed field are stale until ``repocket reindex``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from repocket.cli import main
from repocket.connections import configure


def test_check_lists_fields_the_model_no_longer_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"changing_{uuid.uuid4().hex}"
    source = tmp_path / f"{module}.py"
    source.write_text(
        "from repocket import ActiveRecord, attributes\n\n"
        "class Wand(ActiveRecord):\n"
        "    class Meta:\n"
        "        namespace = 'shop'\n"
        "    wood = attributes.Unicode()\n"
        "    core = attributes.Unicode(index=False)\n"
        "    maker = attributes.Unicode()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"memory://{module}"
    configure.from_url(url)
    try:
        namespace: dict[str, object] = {}
        exec(compile(source.read_text(), str(source), "exec"), namespace)
        wand_model: type = namespace["Wand"]  # type: ignore[assignment]
        wand_model.create(wood="holly", core="phoenix", maker="Ollivander")  # type: ignore[attr-defined]
        wand_model.create(wood="yew", core="unicorn", maker="Gregorovitch")  # type: ignore[attr-defined]
        # both fields are removed from the model's declaration
        text = source.read_text()
        for line in (
            "    core = attributes.Unicode(index=False)\n",
            "    maker = attributes.Unicode()\n",
        ):
            text = text.replace(line, "")
        source.write_text(text)
        runner = CliRunner()
        before = runner.invoke(main, ["check", "--url", url, "--import", module])
        rebuilt = runner.invoke(main, ["reindex", "--url", url, "--import", module])
        after = runner.invoke(main, ["check", "--url", url, "--import", module])
    finally:
        configure.reset()
    # the removed indexed field's entries are stale until reindex
    assert before.exit_code == 1, before.output
    assert "2 stale" in before.output
    assert "  undeclared field: core (held by 2 record(s); kept on save)" in before.output
    assert "  undeclared field: maker (held by 2 record(s); kept on save)" in before.output
    assert rebuilt.exit_code == 0, rebuilt.output
    assert after.exit_code == 0, after.output
    assert f"{module}.Wand: ok: 2 checked, 0 missing, 0 stale" in after.output
    assert "  undeclared field: core (held by 2 record(s); kept on save)" in after.output
