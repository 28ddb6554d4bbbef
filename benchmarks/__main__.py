"""``python -m benchmarks [name ...]``: run the named benchmarks (default: all), write JSON."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

NOT_BENCHMARKS = {"__init__", "__main__", "harness"}
# Every module beside this file with a ``main(out_dir)`` is a benchmark; ``_name.py`` modules are helpers.
BENCHMARKS = sorted(p.stem for p in Path(__file__).parent.glob("*.py")
                    if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))
OUT = Path(__file__).parent / "results"


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {BENCHMARKS}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        result = importlib.import_module(f"benchmarks.{name}").main(OUT)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {OUT / (name + '.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
