"""The command line: `nanosora generate`, `train`, `serve`, `eval`, `plan` and the rest."""

from nanosora.cli.app import main

__all__ = ["main"]
