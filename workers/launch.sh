#!/usr/bin/env bash
# Start one hpoqueue worker per GPU of this box (queue gpu<N>, node gpu<N>@<hostname>) in the background,
# with pid files and logs in ~/.hpoqueue/workers/ ($HPOQUEUE_WORKER_DIR). The broker is $HPOQUEUE_BROKER_URL.
#
#   HPOQUEUE_BROKER_URL=redis://head:6379/0 workers/launch.sh --gpus 0,1 --cap 2
#   workers/launch.sh --stop            # SIGTERM each worker, SIGKILL its process group after 20 s
#   workers/launch.sh --status
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch.sh [--gpus 0,1|all] [--cap N] [--python PATH] | --stop | --status
  --gpus    GPU indices to serve, one worker each (default: all GPUs hpoqueue finds on this box)
  --cap     trials sharing one GPU, i.e. maxTrialNumberPerGpu (default 1)
  --python  the Python that has hpoqueue installed (default: $HPOQUEUE_PYTHON, else python3)
  --stop    stop the workers started from this directory; --status lists them
environment: HPOQUEUE_BROKER_URL (required to start), HPOQUEUE_WORKER_DIR (default ~/.hpoqueue/workers)
USAGE
}

die() { echo "launch.sh: $*" >&2; exit 2; }

gpus=all
cap=1
python=${HPOQUEUE_PYTHON:-python3}
action=start
dir=${HPOQUEUE_WORKER_DIR:-$HOME/.hpoqueue/workers}

while [ $# -gt 0 ]; do
  case $1 in
    --gpus) [ $# -ge 2 ] || die "--gpus needs a value such as 0,1"; gpus=$2; shift 2 ;;
    --gpus=*) gpus=${1#*=}; shift ;;
    --cap) [ $# -ge 2 ] || die "--cap needs a number"; cap=$2; shift 2 ;;
    --cap=*) cap=${1#*=}; shift ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; python=$2; shift 2 ;;
    --python=*) python=${1#*=}; shift ;;
    --stop) action=stop; shift ;;
    --status) action=status; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_workers() {
  local pidfile pid waited
  for pidfile in "$dir"/gpu*.pid; do
    [ -e "$pidfile" ] || continue
    if alive "$pidfile"; then
      pid=$(cat "$pidfile")
      kill -TERM "$pid" 2>/dev/null || true  # warm shutdown: running trials are stopped by their tasks
      waited=0
      while kill -0 "$pid" 2>/dev/null && [ $waited -lt 200 ]; do sleep 0.1; waited=$((waited + 1)); done
      kill -KILL -- "-$pid" 2>/dev/null || true  # the worker's session: leftover trials die too
      echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
  done
}

status_workers() {
  local pidfile
  for pidfile in "$dir"/gpu*.pid; do
    [ -e "$pidfile" ] || continue
    if alive "$pidfile"; then state=running; else state=dead; fi
    echo "$(basename "$pidfile" .pid) pid $(cat "$pidfile") $state, log $dir/$(basename "$pidfile" .pid).log"
  done
}

case $action in
  stop) stop_workers; exit 0 ;;
  status) status_workers; exit 0 ;;
esac

[ -n "${HPOQUEUE_BROKER_URL:-}" ] || die "HPOQUEUE_BROKER_URL is not set (export HPOQUEUE_BROKER_URL=redis://host:6379/0)"
case $cap in ''|*[!0-9]*|0) die "--cap must be a whole number of at least 1, got '$cap'" ;; esac
command -v "$python" >/dev/null || die "no Python at '$python' (pass --python /path/to/venv/bin/python)"
"$python" -c "import hpoqueue" 2>/dev/null || die "'$python' cannot import hpoqueue (pip install hpoqueue there, or pass --python)"

if [ "$gpus" = all ]; then
  gpus=$("$python" -c "from hpoqueue.gpu import discover_gpus; print(','.join(str(g.index) for g in discover_gpus()))")
  [ -n "$gpus" ] || die "no GPU found on this box (pass --gpus, or set HPOQUEUE_FAKE_GPUS=N to test)"
fi
case $gpus in *[!0-9,]*|,*|*,|*,,*|'') die "--gpus must look like 0,1 or all, got '$gpus'" ;; esac

mkdir -p "$dir"
IFS=, read -r -a indices <<<"$gpus"
for gpu in "${indices[@]}"; do
  name=gpu$((10#$gpu))
  pidfile=$dir/$name.pid
  if alive "$pidfile"; then
    echo "$name already running (pid $(cat "$pidfile"))"
    continue
  fi
  # setsid: the worker leads its own session, so --stop can kill it with every trial it started.
  setsid "$python" -m celery -A hpoqueue worker -Q "$name" -n "$name@%h" --concurrency "$cap" -P threads \
    --without-mingle --without-gossip --heartbeat-interval 10 --loglevel INFO --logfile "$dir/$name.log" \
    </dev/null >>"$dir/$name.log" 2>&1 &
  echo $! >"$pidfile"
  echo "started $name (pid $!, cap $cap), log $dir/$name.log"
done
