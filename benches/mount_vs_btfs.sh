#!/usr/bin/env bash
# Usage: bash benches/mount_vs_btfs.sh
#
# rivulet mount against btfs (benches/mount_vs_btfs.rs says what is measured). Builds release
# binaries while the network is still there, then runs the bench inside a private network and pid
# namespace that holds only `lo`: btfs (libtorrent) always starts DHT, UPnP, NAT-PMP and LSD
# multicast, which must not leave the machine, and nothing the bench started outlives it.
# Needs root (FUSE mounts, unshare) and the Debian packages btfs, aria2, opentracker, mktorrent,
# fuse3. Env: BENCH_RUNS (3), BENCH_FIXTURE (single|big), BENCH_CLIENTS ("rivulet btfs").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v btfs > /dev/null || { echo "btfs missing: apt-get install btfs" >&2; exit 1; }
cargo build --release -p rivulet-fuse --bin rivulet
cargo bench --no-run -p rivulet-tests --bench mount_vs_btfs
exec unshare --net --pid --fork --mount-proc -- \
  sh -c 'ip link set lo up && exec cargo bench --offline -p rivulet-tests --bench mount_vs_btfs'
