"""The ``burstguard`` command: one click group, one sub-module per sub-command.

Sub-commands are imported only when invoked (a lazy group): ``doctor`` must start fast on a
busy node, and must not pay for importing kopf and the Kubernetes client. Each sub-command
module exposes a click object named ``command``, maps failures to exit codes that mean
something, and prints errors that say what to do next.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from burstguard import __version__

SUBCOMMANDS: dict[str, str] = {
    "doctor": "doctor",
    "dev-cluster": "devcluster",
    "agent": "agent",
    "operator": "operator",
    "release": "release",
    "lab": "lab",
    "demo": "demo",
    "bench": "bench",
    "recommend": "recommend",
}
"""Command name -> module under ``burstguard.cli``."""


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def _available(self) -> dict[str, str]:
        return {
            name: module
            for name, module in SUBCOMMANDS.items()
            if importlib.util.find_spec(f"burstguard.cli.{module}") is not None
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._available().get(cmd_name)
        if module is None:
            return None
        loaded = importlib.import_module(f"burstguard.cli.{module}")
        command: click.Command = loaded.command
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="burstguard")
def cli() -> None:
    """burstguard keeps container bursts from pushing nodes into memory reclaim."""


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
