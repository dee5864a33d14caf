#!/usr/bin/env bash
# The test suite's SLURM cluster: `bash tests/slurm.sh start|stop` (see scripts/slurm/start.sh).
# tests/test_slurm.py finds it through the same state folder (.slurm/ unless SCALING_SLURM_DIR is set).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in
  start) exec bash "$HERE/../scripts/slurm/start.sh" ;;
  stop) exec bash "$HERE/../scripts/slurm/stop.sh" ;;
  *) echo "usage: bash tests/slurm.sh start|stop" >&2; exit 2 ;;
esac
