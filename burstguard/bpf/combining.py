"""One bpftrace program from every chosen script, so the agent runs one bpftrace process.

Each bpftrace process carries its own LLVM/clang runtime (about 100 MiB RSS), so three
scripts in three processes cost three times that. At start the agent generates one program:

* comments are dropped and every map ``@x`` of script ``s`` is renamed ``@s__x``, so two
  scripts may use the same map name (both time syscalls by ``tid``) without sharing state;
* each script's own ``interval`` and ``END`` blocks are dropped; one ``interval`` block
  prints every metric map of every script (from the specs) and then the window marker, and
  one ``END`` block clears every map (so bpftrace prints nothing on exit).

The scripts stay standalone programs in ``bpf/`` (``make bpf-check`` compiles each one);
this module only rewrites their text. Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from burstguard.bpf import decoding, specs

SEPARATOR: Final = "__"
"""Between the script name and the map name in the combined program."""

_MAP = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_DROPPED = ("interval:", "END")


class CombineError(ValueError):
    """A script whose text this module cannot split into probe blocks."""


@dataclass(frozen=True)
class Block:
    """One top-level probe block: attach points (and predicate) and the braced body."""

    header: str
    """Attach points and optional ``/predicate/``, stripped."""
    body: str
    """From ``{`` to the matching ``}``, inclusive."""


def blocks(text: str, where: str = "script") -> tuple[Block, ...]:
    """Split a script (comments removed) into its top-level probe blocks."""
    text = _COMMENT.sub("", text)
    out: list[Block] = []
    depth, start, header_start = 0, 0, 0
    in_string = False
    for i, ch in enumerate(text):
        if in_string:
            if ch == '"' and text[i - 1] != "\\":
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise CombineError(f"{where}: unbalanced '}}' at offset {i}")
            if depth == 0:
                header = text[header_start:start].strip()
                if header.startswith("#!"):
                    header = header.split("\n", 1)[1].strip() if "\n" in header else ""
                out.append(Block(header=header, body=text[start : i + 1]))
                header_start = i + 1
    if depth != 0 or text[header_start:].strip():
        raise CombineError(f"{where}: text after the last complete block")
    return tuple(out)


def _renamed(text: str, prefix: str) -> str:
    return _MAP.sub(lambda m: f"@{prefix}{m.group(1)}", text)


def prefix_of(script_name: str) -> str:
    """Map-name prefix of one script in the combined program."""
    return f"{script_name}{SEPARATOR}"


def combine(scripts: Iterable[tuple[specs.ScriptSpec, str]]) -> str:
    """The combined program for ``(spec, script text)`` pairs; see the module docstring."""
    probes: list[str] = []
    printed: list[str] = []
    every_map: set[str] = set()
    interval_s: int | None = None
    for spec, text in scripts:
        prefix = prefix_of(spec.name)
        probes.append(f"/* {spec.name} */")
        for block in blocks(text, str(spec.script_path)):
            if block.header.startswith(_DROPPED):
                continue
            header, body = _renamed(block.header, prefix), _renamed(block.body, prefix)
            every_map.update(_MAP.findall(header + body))
            probes.append(f"{header}\n{body}\n")
        printed.extend(f"@{prefix}{m.name}" for m in spec.metrics)
        every_map.update(f"{prefix}{m.name}" for m in spec.metrics)
        interval_s = spec.interval_s if interval_s is None else min(interval_s, spec.interval_s)
    if interval_s is None:
        raise CombineError("no script to combine")
    prints = "".join(f"\tprint({m});\n" for m in printed)
    clears = "".join(f"\tclear(@{m});\n" for m in sorted(every_map))
    marker = decoding.WINDOW_MARKER
    return (
        "\n".join(probes)
        + f'\ninterval:s:{interval_s}\n{{\n{prints}\tprintf("{marker}\\n");\n}}\n'
        + f"\nEND\n{{\n{clears}}}\n"
    )


def split(window: decoding.Window, names: Iterable[str]) -> Mapping[str, decoding.Window]:
    """One window per script from a window of the combined program (by map-name prefix).

    Every script in ``names`` gets a window, empty when none of its maps printed; maps with
    no known prefix are dropped. Messages and lost events go to every script's window (the
    program shares one perf buffer, so a lost event may belong to any of them).
    """
    per: dict[str, dict[str, decoding.MapValue]] = {n: {} for n in names}
    ordered = sorted(per, key=len, reverse=True)
    for map_name, value in window.maps.items():
        for name in ordered:
            prefix = prefix_of(name)
            if map_name.startswith(prefix):
                per[name][map_name[len(prefix) :]] = value
                break
    return {
        name: decoding.Window(maps=maps, messages=window.messages, lost_events=window.lost_events)
        for name, maps in per.items()
    }
