"""The ``burstguard`` command: one click group, one sub-module per sub-command.

Sub-commands register themselves here so that ``burstguard --help`` lists everything a
cluster operator can run. Each sub-command maps failures to exit codes that mean something
(see the sub-command's docstring) and prints errors that say what to do next.
"""

from __future__ import annotations

import importlib

import click

from burstguard import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="burstguard")
def cli() -> None:
    """burstguard keeps container bursts from pushing nodes into memory reclaim."""


def _register() -> None:
    """Attach sub-commands; each lives in its own module of this package."""
    for name in (
        "doctor",
        "devcluster",
        "agent",
        "operator",
        "release",
        "lab",
        "demo",
        "recommend",
    ):
        try:
            module = importlib.import_module(f"burstguard.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"burstguard.cli.{name}":
                continue  # that sub-command is not built yet
            raise
        cli.add_command(module.command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli()
