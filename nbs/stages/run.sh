#!/usr/bin/env bash
# Run one stage notebook with papermill: nbs/stages/run.sh STAGE [papermill arguments...]
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
jupytext --quiet --to ipynb --output "reports/.tmp/${stage}.input.ipynb" "nbs/stages/${stage}.py"
if ! papermill "reports/.tmp/${stage}.input.ipynb" "reports/.tmp/${stage}.ipynb" \
  --kernel churnlab --log-level WARNING --no-progress-bar "$@" >"reports/.tmp/${stage}.log" 2>&1; then
  python - "$stage" <<'PY' >&2
import json, sys
from pathlib import Path

stage = sys.argv[1]
notebook, log = Path(f"reports/.tmp/{stage}.ipynb"), Path(f"reports/.tmp/{stage}.log")
errors = []
if notebook.exists():
    cells = json.loads(notebook.read_text()).get("cells", [])
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
if errors:
    message = f"{errors[-1]['ename']}: {errors[-1]['evalue']}".strip()
    if errors[-1]["ename"] == "DataContractError":
        message = errors[-1]["evalue"]
else:  # papermill failed before any cell ran (kernel, parameters): its own last lines
    message = "\n".join(log.read_text(errors="replace").strip().splitlines()[-3:])
print(f"{stage} failed: {message}\n(full log: {log})")
PY
  exit 1
fi
mv "reports/.tmp/${stage}.ipynb" "reports/${stage}.ipynb"
rm -f "reports/.tmp/${stage}.input.ipynb"
if [ -f "reports/.tmp/${stage}.summary.txt" ]; then
  cat "reports/.tmp/${stage}.summary.txt"
  rm -f "reports/.tmp/${stage}.summary.txt"
fi
