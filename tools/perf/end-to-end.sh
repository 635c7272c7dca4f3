#!/usr/bin/env bash
# End-to-end decode speed (docs/PERFORMANCE.md): a 200,000-line capture of mode-5 water-meter
# telegrams from `wmbus synth`, decoded to JSON lines with its key file, nine runs per thread
# count; prints the median and the fastest run (this shared VM's neighbours move single runs
# by up to 60 %). Usage: tools/perf/end-to-end.sh [lines] [runs]
set -euo pipefail
cd "$(dirname "$0")/../.."
lines=${1:-200000}
runs=${2:-9}
cargo build --release -q -p wmbus-cli
bin=target/release/wmbus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" synth --count "$lines" --meters 1000 --out "$work/capture.txt" --keys "$work/keys.txt" 2>/dev/null
chmod 600 "$work/keys.txt"
echo "capture: $lines lines, $(du -h "$work/capture.txt" | cut -f1); $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for threads in 1 2; do
  times=()
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$bin" decode --format json --keys "$work/keys.txt" --input "$work/capture.txt" --threads "$threads" > /dev/null
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  fastest=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
  rate=$(awk -v n="$lines" -v t="$median" 'BEGIN { printf "%.0f", n / t }')
  best=$(awk -v n="$lines" -v t="$fastest" 'BEGIN { printf "%.0f", n / t }')
  printf 'threads %s: median %s s over %s runs = %s telegrams/s (fastest %s s = %s/s; runs: %s)\n' \
    "$threads" "$median" "$runs" "$rate" "$fastest" "$best" "${times[*]}"
done
if [ -x /usr/bin/time ]; then  # Debian package "time"
  /usr/bin/time -f "peak memory (threads 1): %M KiB" "$bin" decode --format json --keys "$work/keys.txt" --input "$work/capture.txt" > /dev/null
  head -n $((lines / 10)) "$work/capture.txt" > "$work/tenth.txt"
  /usr/bin/time -f "peak memory, a tenth of the lines: %M KiB" "$bin" decode --format json --keys "$work/keys.txt" --input "$work/tenth.txt" > /dev/null
fi
