#!/usr/bin/env bash
# Start one hpoqueue worker per GPU of this box in the background, with the Python you name: a thin wrapper of
# `hpoqueue workers start|stop|status`, which holds the worker command line (hpoqueue.worker.main), the pid
# files and logs ($HPOQUEUE_HOME/workers/) and their checks. The broker is $HPOQUEUE_BROKER_URL.
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
  --stop    stop the workers started on this box; --status lists them
environment: HPOQUEUE_BROKER_URL (required to start), HPOQUEUE_HOME (pid files and logs in its workers/)
USAGE
}

die() { echo "launch.sh: $*" >&2; exit 2; }

python=${HPOQUEUE_PYTHON:-python3}
action=start
options=()

while [ $# -gt 0 ]; do
  case $1 in
    --gpus) [ $# -ge 2 ] || die "--gpus needs a value such as 0,1"; [ "$2" = all ] || options+=(--gpus "$2"); shift 2 ;;
    --gpus=*) [ "${1#*=}" = all ] || options+=(--gpus "${1#*=}"); shift ;;
    --cap) [ $# -ge 2 ] || die "--cap needs a number"; options+=(--cap "$2"); shift 2 ;;
    --cap=*) options+=(--cap "${1#*=}"); shift ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; python=$2; shift 2 ;;
    --python=*) python=${1#*=}; shift ;;
    --stop) action=stop; shift ;;
    --status) action=status; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

command -v "$python" >/dev/null || die "no Python at '$python' (pass --python /path/to/venv/bin/python)"
"$python" -c "import hpoqueue" 2>/dev/null || die "'$python' cannot import hpoqueue (pip install hpoqueue there, or pass --python)"
exec "$python" -m hpoqueue workers "$action" ${options[@]+"${options[@]}"}
