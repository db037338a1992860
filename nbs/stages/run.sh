#!/usr/bin/env bash
# Run one stage notebook with papermill: nbs/stages/run.sh STAGE [-p NAME VALUE]...
# The jupytext .py is the code (and the DVC dependency); the executed notebook lands in
# reports/STAGE.ipynb only when every cell succeeded (a failed run stays in reports/.tmp/, with the
# full log in reports/.tmp/STAGE.log). A failure prints the error's own message (for a data
# contract: column, rule, example rows, fix) as its last lines, not the papermill traceback.
# A stage may leave reports/.tmp/STAGE.summary.txt: printed after a successful run. Progress bars of
# long work (tuning trials, CV folds) are drawn on stderr while the stage runs.
set -euo pipefail
stage=$1
shift
here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -x "$here/.venv/bin/python" ]; then  # the project's tools, also when its venv is not activated
  export PATH="$here/.venv/bin:$PATH"
fi
mkdir -p reports/.tmp
rm -f "reports/.tmp/${stage}.summary.txt"
# long work (folds, trials) draws its progress bar on this script's stderr, the terminal of `dvc repro`
# (the kernel's own output goes to the report): churnlab.track.progress opens this path
export CHURNLAB_PROGRESS="${CHURNLAB_PROGRESS:-/proc/$$/fd/2}"
# One Python process converts the .py (jupytext) and executes it (papermill): the two CLIs cost two
# interpreter starts and two imports of nbformat per stage (about 4 s of each stage's ~20 s on Telco).
python - "$stage" "$@" <<'PY'
import logging
import os
import sys
from pathlib import Path

# nbformat's schema validation imports jsonschema, whose optional IRI format checker builds a grammar at
# import (about 1.4 s); notebook schemas use no IRI format, so the runner goes without that checker
sys.modules.setdefault("rfc3987_syntax", None)

import jupytext  # noqa: E402
import nbformat  # noqa: E402
import papermill  # noqa: E402
from papermill.cli import _resolve_type  # noqa: E402  # the CLI's own typing of -p values

stage, args = sys.argv[1], sys.argv[2:]
if len(args) % 3 or any(flag != "-p" for flag in args[::3]):
    sys.exit(f"usage: nbs/stages/run.sh STAGE [-p NAME VALUE]...; got {' '.join(args)}")
parameters = {name: _resolve_type(value) for name, value in zip(args[1::3], args[2::3])}
tmp = Path("reports/.tmp")
source, executed, log = tmp / f"{stage}.input.ipynb", tmp / f"{stage}.ipynb", tmp / f"{stage}.log"
nbformat.write(jupytext.read(f"nbs/stages/{stage}.py"), source)
terminal = os.fdopen(os.dup(2), "w")  # where the failure message goes; all else (the kernel's too) to the log
with log.open("w") as log_file:
    for fd in (1, 2):
        os.dup2(log_file.fileno(), fd)
    logging.basicConfig(level=logging.WARNING, force=True)
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters, kernel_name="churnlab", progress_bar=False
        )
        failure = None
    except Exception as error:  # noqa: BLE001  # reported below in the stage's own words
        logging.exception("papermill failed")
        failure = error
if failure is not None:
    errors = []
    if executed.exists():
        cells = nbformat.read(executed, as_version=4).cells
        errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        message = f"{errors[-1]['ename']}: {errors[-1]['evalue']}".strip()
        if errors[-1]["ename"] == "DataContractError":
            message = errors[-1]["evalue"]
    else:  # papermill failed before any cell ran (kernel, parameters): its own words
        message = f"{type(failure).__name__}: {failure}"
    print(f"{stage} failed: {message}\n(full log: {log})", file=terminal, flush=True)
    sys.exit(1)
executed.replace(Path("reports") / f"{stage}.ipynb")
source.unlink()
PY
if [ -f "reports/.tmp/${stage}.summary.txt" ]; then
  cat "reports/.tmp/${stage}.summary.txt"
  rm -f "reports/.tmp/${stage}.summary.txt"
fi
