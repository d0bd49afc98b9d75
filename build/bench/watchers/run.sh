#!/usr/bin/env bash
# Blocking queries: 1,000 held on 1,000 services, wake-ups per change and
# memory per held query, next to as many on the whole service list, and
# (with BASE, a git revision) next to one-service queries on the runner
# built from BASE.
#   BASE=c8c9b71 build/bench/watchers/run.sh [-services 1000] [-changes 20] [-runs 3]
set -euo pipefail
cd "$(dirname "$0")/../../.."
W=$(mktemp -d /tmp/netsel-watchers.XXXXXX)
trap 'git worktree remove --force "$W/base-src" 2>/dev/null; rm -rf "$W"' EXIT
go build -o "$W/netsel" ./build/netsel
args=()
if [ -n "${BASE:-}" ]; then
	git worktree add -q --detach "$W/base-src" "$BASE"
	(cd "$W/base-src" && go build -o "$W/netsel-base" ./build/netsel)
	args=(-base "$W/netsel-base")
fi
go run ./build/bench/watchers -netsel "$W/netsel" "${args[@]}" "$@"
