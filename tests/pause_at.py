"""``hamrisk`` with a pause injected at one named point, for tests that kill a run there.

Usage: ``python tests/pause_at.py POINT SECONDS HAMRISK-ARGS...``. At POINT the run prints
``paused at POINT`` on stderr and sleeps SECONDS before going on:

* ``logged``: training's run is logged, its version not yet registered;
* ``registered``: the version is registered, the alias not yet moved;
* ``rename=NAME``: the temporary file of the output named NAME is complete, not yet
  renamed over it.

The pause is patched into this process only; the product code has no hook for it.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

POINTS = ("logged", "registered", "rename")


def _paused(point: str, seconds: float, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def paused(*args: Any, **kwargs: Any) -> Any:
        print(f"paused at {point}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return call(*args, **kwargs)

    return paused


def main() -> None:
    # Run as a script, this folder comes first on the path, where tests/features would
    # stand in for the features package.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    point, seconds, args = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    point, _, name = point.partition("=")
    if point not in POINTS:
        raise SystemExit(f"pause point must be one of {', '.join(POINTS)}, got {point!r}")
    from pipeline import io, registry
    from pipeline.cli import app

    if point == "logged":
        registry.register = _paused(point, seconds, registry.register)
    elif point == "registered":
        registry.set_alias = _paused(point, seconds, registry.set_alias)
    else:
        # atomic_file's rename: the one moment a non-atomic writer would leave half a file.
        paused = _paused(point, seconds, os.replace)

        def replace(source: Any, target: Any) -> None:
            (paused if os.path.basename(target) == name else os.replace)(source, target)

        io.os = _OsWithPausedReplace(replace)
    sys.argv = ["hamrisk", *args]
    app()


class _OsWithPausedReplace:
    """``os`` as ``pipeline.io`` sees it, with ``replace`` paused."""

    def __init__(self, replace: Callable[..., Any]) -> None:
        self.replace = replace

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


if __name__ == "__main__":
    main()
