#!/usr/bin/env bash
# Self-contained demo: makes a real video, turns it into a torrent, seeds it with `rivulet seed`
# on loopback, mounts it with `rivulet mount`, and uses the file through the mount while it
# downloads (ffprobe, a frame from the middle, sha1sum). Cleans up after itself.
# Usage: bash examples/demo.sh            (installs fuse3, ffmpeg and mktorrent with apt-get if missing)
# Env:   DEMO_DIR (default: a fresh temp dir), DEMO_SECONDS (video length, default 60)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
for tool in fusermount3:fuse3 ffmpeg:ffmpeg ffprobe:ffmpeg mktorrent:mktorrent getfattr:attr; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
if ((${#need[@]})); then
  sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" pkg-config libfuse3-dev
fi

cargo build --release -p rivulet-fuse --bin rivulet
BIN="$PWD/target/release/rivulet"
DIR="${DEMO_DIR:-$(mktemp -d)}"
mkdir -p "$DIR/seed" "$DIR/mnt"
PORT=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
  # SIGTERM makes rivulet unmount and stop cleanly; fusermount3 only clears what a crash left.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  mountpoint -q "$DIR/mnt" && fusermount3 -u "$DIR/mnt"
  [[ -n "${DEMO_DIR:-}" ]] || rm -rf "$DIR"
}
trap cleanup EXIT

echo "== making a ${DEMO_SECONDS:-60} s test video"
ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=${DEMO_SECONDS:-60}" \
  -f lavfi -i "sine=frequency=440:duration=${DEMO_SECONDS:-60}" \
  -c:v libx264 -preset ultrafast -b:v 4M -c:a aac -movflags +faststart "$DIR/seed/demo.mp4"
mktorrent -l 18 -o "$DIR/demo.torrent" "$DIR/seed/demo.mp4" >/dev/null
"$BIN" info "$DIR/demo.torrent"

echo "== seeding on 127.0.0.1:$PORT"
"$BIN" seed -q "$DIR/demo.torrent" --data "$DIR/seed" --listen "127.0.0.1:$PORT" &
pids+=($!)

echo "== mounting on $DIR/mnt"
"$BIN" mount -q "$DIR/demo.torrent" "$DIR/mnt" --data "$DIR/cache" --listen 127.0.0.1:0 \
  --peer "127.0.0.1:$PORT" &
pids+=($!)
for _ in $(seq 100); do [[ -e "$DIR/mnt/demo.mp4" ]] && break; sleep 0.1; done
ls -l "$DIR/mnt"

echo "== ffprobe through the mount"
ffprobe -v error -show_entries format=duration,size:stream=codec_name -of compact "$DIR/mnt/demo.mp4"
echo "== a frame from the middle"
ffmpeg -loglevel error -y -ss "$(( ${DEMO_SECONDS:-60} / 2 ))" -i "$DIR/mnt/demo.mp4" -frames:v 1 "$DIR/frame.png"
ls -l "$DIR/frame.png"
echo "== progress seen from inside the mount"
getfattr -n user.rivulet.progress "$DIR/mnt/demo.mp4"
cat "$DIR/mnt/.rivulet/status.json"; echo
echo "== sha1sum through the mount vs the original"
sha1sum "$DIR/mnt/demo.mp4" "$DIR/seed/demo.mp4"
[[ "$(sha1sum < "$DIR/mnt/demo.mp4")" == "$(sha1sum < "$DIR/seed/demo.mp4")" ]] && echo "demo OK: identical"
