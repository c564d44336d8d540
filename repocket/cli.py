"""The ``repocket`` command line (also ``python -m repocket``)."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="repocket")
def main() -> None:
    """repocket: an active-record ORM for Python on Redis."""


@main.command()
@click.option("--url", default="memory://", show_default=True,
              help="Storage to run against, e.g. redis://localhost:6379/0.")
@click.option("--keep", is_flag=True, help="Leave the demo's records in storage.")
def demo(url: str, keep: bool) -> None:
    """Run the tutorial end to end, printing what it stores."""
    from .demo import run

    run(url, echo=click.echo, keep=keep)
