"""Scenarios side by side: one generic report for the demo and the benchmarks.

A report is a list of :class:`Scenario` (a name, its numbers, and time series) and a list of
:class:`Row` saying which number goes on which line with which format. The same rows render
as the terminal table, as the Markdown table the README embeds, and from the JSON the report
writes, so a committed ``report.json`` regenerates the README's table exactly
(``markdown(rows, load(path))``). Nothing here knows what the numbers mean: the caller labels
them (the demo says SIMULATION in its banner, a real-node benchmark says what it measured).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    label: str
    """What the line shows, with its unit."""
    key: str
    """Key in each scenario's ``values``."""
    fmt: str = "{}"
    """Format of a value (``str.format``); a missing value prints ``-``."""


@dataclass(frozen=True)
class Scenario:
    """One column: a run and its numbers."""

    name: str
    """Column heading."""
    values: Mapping[str, Any]
    """Numbers by key (None = not measured)."""
    series: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    """Time series by name: (seconds, value) points, for the plot."""


def cell(row: Row, scenario: Scenario) -> str:
    """One formatted value."""
    value = scenario.values.get(row.key)
    return "-" if value is None else row.fmt.format(value)


def table(rows: Sequence[Row], scenarios: Sequence[Scenario], width: int = 22) -> str:
    """The comparison as a fixed-width text table."""
    left = max((len(r.label) for r in rows), default=0) + 2
    widths = [max(width, len(s.name) + 2) for s in scenarios]
    columns = list(zip(scenarios, widths, strict=True))
    lines = [f"{'':<{left}}" + "".join(f"{s.name:>{w}}" for s, w in columns)]
    for row in rows:
        lines.append(f"{row.label:<{left}}" + "".join(f"{cell(row, s):>{w}}" for s, w in columns))
    return "\n".join(lines)


def markdown(rows: Sequence[Row], scenarios: Sequence[Scenario]) -> str:
    """The comparison as a Markdown table."""
    lines = [
        "| | " + " | ".join(s.name for s in scenarios) + " |",
        "|---|" + "---|" * len(scenarios),
    ]
    for row in rows:
        lines.append(f"| {row.label} | " + " | ".join(cell(row, s) for s in scenarios) + " |")
    return "\n".join(lines)


def dump(scenarios: Sequence[Scenario], meta: Mapping[str, Any], path: Path) -> None:
    """``path`` (JSON): ``meta`` plus every scenario's values (series left out: the plot
    has them, and they would make a committed report large)."""
    body = {**meta, "runs": [{"name": s.name, **s.values} for s in scenarios]}
    path.write_text(json.dumps(body, indent=2) + "\n")


def load(path: Path) -> tuple[dict[str, Any], list[Scenario]]:
    """A report written by :func:`dump`: its meta and its scenarios (without series)."""
    body = json.loads(path.read_text())
    runs = body.pop("runs")
    return body, [
        Scenario(name=r["name"], values={k: v for k, v in r.items() if k != "name"}) for r in runs
    ]


def plot(
    scenarios: Sequence[Scenario],
    panels: Sequence[tuple[str, str]],
    title: str,
    path: Path,
    *,
    xlabel: str = "seconds",
) -> bool:
    """``path`` (PNG): one panel per (series name, panel title), one line per scenario.

    False when matplotlib (the ``demo`` extra) is absent: a plain install, such as the
    container image, still writes the text and JSON reports."""
    try:
        import matplotlib  # noqa: PLC0415 (heavy, optional: the demo extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return False

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    for ax, (series, panel_title) in zip(axes[0], panels, strict=True):
        for s in scenarios:
            points = s.series.get(series) or ()
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=s.name)
        ax.set_title(panel_title)
        ax.set_xlabel(xlabel)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
