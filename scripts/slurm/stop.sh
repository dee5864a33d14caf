#!/usr/bin/env bash
# Stop the one-node cluster of scripts/slurm/start.sh: cancel its jobs, then stop only the daemons named
# in its own PID files (a munged that was already running is left alone). Same SCALING_SLURM_DIR.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${SCALING_SLURM_DIR:-$HERE/../../.slurm}
[[ -d $STATE ]] || { echo "slurm: nothing to stop (no $STATE)"; exit 0; }
STATE=$(cd "$STATE" && pwd)
RUN=$STATE/run
export SLURM_CONF=$STATE/etc/slurm.conf

running() { [[ -r /proc/$1/stat ]] && [[ $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }

stop_pidfile() {  # NAME: TERM the PID in run/NAME.pid if it is still that daemon, KILL after 15 s
  local name=$1 f=$RUN/$1.pid pid
  [[ -s $f ]] || return 0
  pid=$(cat "$f")
  if running "$pid" && grep -q "^$name" "/proc/$pid/comm" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 300); do running "$pid" || break; sleep 0.05; done
    if running "$pid"; then echo "$name ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid"; fi
    echo "stopped $name ($pid)"
  fi
  rm -f "$f"
}

# cancel the jobs first so that no slurmstepd outlives slurmd
if [[ -s $RUN/slurmctld.pid ]] && running "$(cat "$RUN/slurmctld.pid")"; then
  scancel --quiet --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 50); do [[ -z $(squeue -h -t R,CG 2>/dev/null) ]] && break; sleep 0.2; done
fi
for d in slurmd slurmctld slurmdbd mariadbd munged; do stop_pidfile "$d"; done
exit 0
