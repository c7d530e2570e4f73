#!/usr/bin/env bash
# Usage: bash benches/run.sh NAME [ARGS FOR THE BENCH...]     e.g. bash benches/run.sh download
#
# Runs `cargo bench --bench NAME` (release profile) inside a private network namespace that holds
# only `lo`, like tests/run-all.sh: the benchmarks start real trackers and peers on 127.0.0.0/8.
# Builds the release `rivulet` binary and the bench first, while crates.io is still reachable.
# Needs root (unshare); uses sudo when run as another user.
# Env: RIVULET_BENCH_RUNS (runs per client, default 3), RIVULET_KEEP_TMP=1 (keep logs),
#      RIVULET_BENCH_TIMEOUT seconds for the whole bench (default 1800).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NAME="${1:?usage: benches/run.sh NAME [ARGS...]}"
shift

SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"

cargo build --release -p rivulet-fuse --bin rivulet
cargo bench --no-run --bench "$NAME"

exec $SUDO timeout --kill-after=30 "${RIVULET_BENCH_TIMEOUT:-1800}" \
  unshare --net --pid --fork --mount-proc -- \
  sh -c 'ip link set lo up && exec cargo bench --offline --bench "$0" -- "$@"' "$NAME" "$@"
