"""Fail when notebooks are not clean, src/ disagrees with nbs/, or a stage notebook and its .py differ.

Run from the project root (`make check`). It cleans and exports in place, so a failure also
shows the fix in `git diff`.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import jupytext


def snapshot() -> dict[str, str]:
    files = [
        p for p in [*Path("nbs").rglob("*.ipynb"), *Path("src").rglob("*.py")] if ".ipynb_checkpoints" not in p.parts
    ]
    return {str(p): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(files)}


def cells(path: Path) -> list[tuple]:
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def main() -> int:
    before = snapshot()
    bin_dir = Path(sys.executable).parent
    subprocess.run([bin_dir / "nbdev-clean"], check=True)
    subprocess.run([bin_dir / "nbdev-export"], check=True)
    after = snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    problems = [f"{p}: changed by nbdev-clean/nbdev-export (not clean, or src/ out of sync)" for p in changed]
    for ipynb in sorted(Path("nbs/stages").glob("*.ipynb")):
        if cells(ipynb) != cells(ipynb.with_suffix(".py")):
            problems.append(
                f"{ipynb}: differs from its paired {ipynb.with_suffix('.py').name} "
                "(run `make export`, which runs `jupytext --sync`)"
            )
    for p in problems:
        print(f"check_notebooks: {p}", file=sys.stderr)
    if not problems:
        print(f"check_notebooks: {len(after)} files clean and in sync")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
