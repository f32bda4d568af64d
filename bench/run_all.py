"""Run every benchmark in bench/ one after another (`make bench`); each prints its own table.

    .venv/bin/python bench/run_all.py [NAME ...]     e.g. `bench/run_all.py delivery channels`
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    wanted = set(sys.argv[1:])
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py" and not p.name.startswith("_"))
    failed = []
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        print(f"\n=== {script.stem} ({script.relative_to(HERE.parent)})", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
