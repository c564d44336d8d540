"""The key listing that docs/backends.rst shows "after the demo" is the
listing the demo leaves: running ``repocket demo --keep`` and listing the
keys gives the same keys (generated ids aside), so the page cannot drift
from the layout again."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from click.testing import CliRunner

from repocket.backends.memory import MemoryStorage
from repocket.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"
# generated ids are UUID version 7; the demo's users are given fixed ids
GENERATED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def documented_listing() -> list[str]:
    text = (DOCS / "backends.rst").read_text(encoding="utf-8")
    start = text.index("$ redis-cli --raw KEYS 'repocket*' | sort\n")
    lines = text[start:].splitlines()[1:]
    listing = []
    for line in lines:
        line = line.strip()
        if line.startswith("$") or not line:
            break
        listing.append(line)
    return listing


def normalized(keys: list[str]) -> list[str]:
    """The keys, sorted, with every generated id shown as ``<id>``."""
    return sorted(GENERATED.sub("<id>", key) for key in keys)


def test_the_documented_key_listing_is_what_the_demo_leaves() -> None:
    store = f"docs-{uuid.uuid4().hex}"
    result = CliRunner().invoke(main, ["demo", "--keep", "--url", f"memory://{store}"])
    assert result.exit_code == 0, result.output
    client = MemoryStorage(store).native_client
    keys = [key.decode() for key in client.scan_iter(match="repocket*")]
    assert normalized(keys) == normalized(documented_listing())
