#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (Debian 12, slurm 22.05), for the tests and for trying
# `hydra/launcher=slurm` without a real cluster:
#   munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd, each started by hand (no systemd, no cgroups)
# with its PID file under the state folder. Idempotent: a running, healthy cluster is left as it is.
# Run as root. Stop with scripts/slurm/stop.sh. Clients need `export SLURM_CONF=$STATE/etc/slurm.conf`.
# Env:
#   SCALING_SLURM_DIR  state folder: configs, logs, PID files, job state, database (default <repo>/.slurm)
#   SCALING_SLURM_DB_PORT  MariaDB TCP port on 127.0.0.1 (default 13306)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${SCALING_SLURM_DIR:-$REPO/.slurm}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
export SLURM_CONF=$STATE/etc/slurm.conf
NODE=localhost           # the machine's hostname need not resolve: the node is 127.0.0.1 by name
DBPORT=${SCALING_SLURM_DB_PORT:-13306}
RUN=$STATE/run LOG=$STATE/log

trap 'echo "error: slurm start failed at line $LINENO (logs in $LOG); stopping what was started" >&2;
      "$HERE/stop.sh" >&2' ERR

t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
waitfor() {  # TRIES CMD...: retry CMD every 0.1 s
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
alive() {  # PIDFILE names a live process (stopped daemons can linger as zombies: read /proc/PID/stat)
  [[ -s $1 ]] || return 1
  local st; st=$(cut -d' ' -f3 "/proc/$(cat "$1")/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}
node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null || true; }

# ---- 0. already up? then nothing to do
if alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid" && alive "$RUN/slurmdbd.pid" \
   && [[ $(node_state) =~ ^(idle|mixed|allocated) ]]; then
  echo "slurm already running (state $STATE); export SLURM_CONF=$SLURM_CONF"
  exit 0
fi
"$HERE/stop.sh" >/dev/null 2>&1 || true   # a half-up cluster from an earlier try: restart it whole

# ---- 1. packages (the services' auto-start is blocked by policy-rc.d on such machines: fine, we start them)
PKGS=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
MISSING=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || MISSING+=("$p"); done
if ((${#MISSING[@]})); then
  echo "installing ${MISSING[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
fi

# A fresh job-state folder restarts job ids at 1; the accounting database must then start afresh too,
# or sacct would mix old and new jobs of the same id.
FRESH=0; [[ -d $STATE/state ]] || FRESH=1
mkdir -p "$STATE"/{etc,state,spool,log,run}

# ---- 2. munge (system-wide key and socket; reused if a munged already answers)
[[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 0600 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! (munge -n | unmunge) >/dev/null 2>&1; then
  rm -f /run/munge/munged.pid
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged
  waitfor 50 bash -c 'munge -n | unmunge'
  cp /run/munge/munged.pid "$RUN/munged.pid"
fi

# ---- 3. accounting: MariaDB on 127.0.0.1:$DBPORT + slurmdbd (submitit polls sacct; without it a
# cancelled job leaves job.result() waiting forever)
# The database runs as user mysql, which may not reach a repo under /root: then it lives in /var/tmp.
DB=$STATE/db
if ! setpriv --reuid=mysql --regid=mysql --clear-groups test -x "$STATE" 2>/dev/null; then
  DB=/var/tmp/scaling-slurm-db-$(cksum <<<"$STATE" | cut -d' ' -f1)
fi
[[ $FRESH == 1 ]] && rm -rf "$DB"
install -d -o mysql -g mysql "$DB" "$DB/run"
SOCK=$DB/run/mysqld.sock
if ((${#SOCK} > 100)); then SOCK=/tmp/scaling-slurm-$(cksum <<<"$STATE" | cut -d' ' -f1).sock; fi
if [[ ! -d $DB/data/mysql ]]; then
  install -d -o mysql -g mysql "$DB/data"
  mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" \
    --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1
fi
mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$SOCK" \
  --pid-file="$DB/run/mariadbd.pid" --bind-address=127.0.0.1 --port="$DBPORT" \
  --log-error="$LOG/mariadb.log" --innodb-buffer-pool-size=64M --skip-log-bin \
  </dev/null >/dev/null 2>&1 &
MYSQL=(mariadb --no-defaults -S "$SOCK" -uroot)
waitfor 300 "${MYSQL[@]}" -e 'select 1' || { echo "error: mariadb did not start, see $LOG/mariadb.log" >&2; exit 1; }
cp "$DB/run/mariadbd.pid" "$RUN/mariadbd.pid"
"${MYSQL[@]}" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

cat > "$STATE/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chmod 600 "$STATE/etc/slurmdbd.conf"   # slurmdbd refuses a world-readable config

# ---- 4. slurm.conf: node size from `slurmd -C`
HW=$(slurmd -C | head -1)
MEM=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$HW")
MEM=$((MEM * 95 / 100))    # a RealMemory above the real one drains the node
TOPO=$(grep -oE '(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+' <<<"$HW" | tr '\n' ' ')
cat > "$SLURM_CONF" <<CONF
ClusterName=scaling
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
# no cgroups in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# schedule often, so that requeued jobs (Reason=BeginTime) restart within seconds
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 $TOPO RealMemory=$MEM State=UNKNOWN
# Preemption: jobs in 'urgent' requeue jobs in 'debug'. On 22.05 preempt_send_user_signal delivers the
# job's --signal (submitit: USR2) at preemption, so the run checkpoints and requeues itself.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=60
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
CONF

# ---- 5. daemons (each forks and writes its PID file)
slurmdbd
waitfor 100 bash -c 'echo > /dev/tcp/127.0.0.1/6819' || { echo "error: slurmdbd not listening, see $LOG/slurmdbd.log" >&2; exit 1; }
# the cluster must exist in the database before slurmctld registers
sacctmgr -i -Q add cluster scaling >/dev/null 2>&1 || true
slurmctld -f "$SLURM_CONF"
waitfor 100 bash -c 'scontrol ping | grep -q "is UP"'
slurmd -f "$SLURM_CONF" -N "$NODE"

# ---- 6. wait until the node takes jobs and accounting answers
for _ in $(seq 150); do
  st=$(node_state)
  case $st in
    idle*|mixed*|allocated*) break ;;
    down*|drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.2
done
waitfor 100 sacct -n -X -S now
st=$(node_state)
case $st in
  idle*|mixed*|allocated*)
    echo "slurm up in $(elapsed) s: node $NODE $st (state $STATE); export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "error: slurm node $NODE is '$st', not idle (logs in $LOG)" >&2; false ;;
esac
