#!/usr/bin/env bash
# Run one stage notebook with papermill: nbs/stages/run.sh STAGE [papermill arguments...]
# The jupytext .py is the code (and the DVC dependency); the executed notebook lands in
# reports/STAGE.ipynb only when every cell succeeded (a failed run stays in reports/.tmp/).
set -euo pipefail
stage=$1
shift
mkdir -p reports/.tmp
jupytext --quiet --to ipynb --output "reports/.tmp/${stage}.input.ipynb" "nbs/stages/${stage}.py"
papermill "reports/.tmp/${stage}.input.ipynb" "reports/.tmp/${stage}.ipynb" \
  --kernel churnlab --log-level WARNING --no-progress-bar "$@"
mv "reports/.tmp/${stage}.ipynb" "reports/${stage}.ipynb"
rm -f "reports/.tmp/${stage}.input.ipynb"
