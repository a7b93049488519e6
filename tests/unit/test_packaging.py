"""What a plain ``pip install burstguard`` brings: the runtime closure, read from installed dists.

The container image and every node run the plain install, so plotting libraries (matplotlib and
what it drags in) must come only with the ``demo`` and ``lab`` extras. The closure is resolved
from the installed distributions' own metadata, markers evaluated with no extra selected, the
way pip decides what ``pip install .`` installs.
"""

from __future__ import annotations

from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PLOTTING = {"matplotlib", "pandas", "numpy", "pillow", "contourpy", "fonttools", "kiwisolver"}


def runtime_closure(root: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Canonical names of ``root`` and every distribution its requirements pull in."""
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, chosen = todo.pop()
        key = canonicalize_name(name)
        if key in seen and not chosen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in chosen] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, tuple(sorted(req.extras))))
    return seen


def test_a_plain_install_pulls_in_no_plotting_library() -> None:
    closure = runtime_closure("burstguard")
    assert {"kopf", "kubernetes", "prometheus-api-client", "click"} <= closure
    assert closure.isdisjoint(PLOTTING), sorted(closure & PLOTTING)


def test_the_demo_and_lab_extras_bring_matplotlib() -> None:
    assert "matplotlib" in runtime_closure("burstguard", ("demo",))
    assert "matplotlib" in runtime_closure("burstguard", ("lab",))
