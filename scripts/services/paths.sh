# Sourced by scripts/services/ensure.sh and by the service launchers in scripts/services/bin/.
# Every path is relative to the repository, so a job finds the same cache on any machine
# (and inside the forky chroot, where the repo is bind-mounted at its host path).
FB_SERVICES_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
FB_REPO_DIR=$(cd "$FB_SERVICES_DIR/../.." && pwd)
FB_CACHE=${FB_CACHE:-$FB_REPO_DIR/.cache}
FB_VENVS=$FB_CACHE/venvs
FB_MODELS=$FB_CACHE/models
FB_FORKY_CHROOT=$FB_CACHE/chroots/forky
FB_PG_USER=postgres            # PostgreSQL refuses to run as root

# The job's own scratch directory under its workdir (SLURM's cwd), removed when the service ends.
fb_scratch() {
  local dir="$PWD/$1-${SLURM_JOB_ID:-$$}"
  rm -rf "$dir" && mkdir -p "$dir" && echo "$dir"
}

# Run a server as a child (not exec), pass SLURM's TERM/INT on as FB_STOP_SIGNAL (default TERM),
# then remove its scratch directory: scancel must both stop the server and leave nothing behind.
fb_serve_then_clean() {
  local scratch=$1 pid rc=0
  shift
  "$@" &
  pid=$!
  trap 'kill -"${FB_STOP_SIGNAL:-TERM}" "$pid" 2>/dev/null' TERM INT
  wait "$pid" || rc=$?
  # `wait` returns early when a trapped signal arrives: wait again for the server to exit.
  while kill -0 "$pid" 2>/dev/null; do wait "$pid" || rc=$?; done
  rm -rf "$scratch"
  return "$rc"
}
