#!/usr/bin/env bash
# Usage: bash tests/run-all.sh [ARGS FOR cargo test...]
#
# The whole check, as CI runs it: installs the system packages the tests use (skipped when they
# are all present, unless CI=true), then cargo fmt --check, clippy -D warnings, a build of every
# target, and finally `cargo test --workspace` inside a private network namespace that holds only
# `lo` (and its own pid namespace, so nothing a test started outlives the run). The tests talk to
# real opentracker, aria2 and qBittorrent peers on 127.0.0.0/8 only; libtorrent's DHT, UPnP and
# multicast discovery cannot leave the namespace.
# Needs root (apt-get, unshare, FUSE mounts); uses sudo when run as another user.
# Env: CI=true (always run apt-get), RIVULET_TEST_TIMEOUT seconds for the test run (default 3000),
#      RIVULET_KEEP_TMP=1 (keep every test's work dir under /tmp).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"
step() { echo "==> $*" >&2; }

PACKAGES=(fuse3 libfuse3-dev pkg-config opentracker aria2 mktorrent qbittorrent-nox
          transmission-cli ffmpeg iproute2 util-linux chromium curl python3-libtorrent rtorrent)
missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || return 0
  done
  return 1
}
if [[ "${CI:-}" == true ]] || missing_packages; then
  step "installing system packages"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${PACKAGES[@]}"
fi

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# Build everything (crates.io may be needed) before the network goes away.
step "cargo build"
cargo build --workspace --all-targets

step "cargo test (network namespace with only lo)"
# --pid --fork: when cargo test ends, every process it left behind is killed with the namespace.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
$SUDO timeout --kill-after=30 "${RIVULET_TEST_TIMEOUT:-3000}" \
  unshare --net --pid --fork --mount-proc -- \
  sh -c 'ip link set lo up && exec cargo test --workspace --offline --no-fail-fast "$@"' sh "$@" 2>&1 \
  | tee "$log" || status=$?
# A failing test's panic message sits far up a long log: repeat every failure section (cargo's
# "failures:" block, up to its result line) at the end, where a truncated CI log still shows it.
awk '/^failures:$/ { on = 1 } on { print } /^test result:/ { on = 0 }' "$log" | tail -n 400
# cargo prints one result line per test binary, the last often a doc-test run of 0 tests: end
# with the totals, so the closing line says what ran.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"
