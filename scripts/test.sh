#!/usr/bin/env bash
# The whole suite. Exit code 5 (no tests collected) is a failure, as CI requires.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$FB_REPO"
python -m pytest "$@"
rc=$?
[ "$rc" -eq 5 ] && { echo "pytest collected no tests: failing"; exit 1; }
exit "$rc"
