"""``python -m repocket``: the command line."""

from .cli import main

main(prog_name="repocket")
