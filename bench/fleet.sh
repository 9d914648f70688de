#!/usr/bin/env bash
# Benchmark of `zcdoctor fleet`: 10,000 reports made from fixtures/*/*/report.json (hostnames
# varied: host00000 … host09999), summarized from a directory and as JSON lines on stdin.
# Prints wall time (hyperfine when installed, else a loop of `date`) and peak RSS
# (/usr/bin/time -v). Usage: bench/fleet.sh [N] (default 10000); builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
cargo build --release --quiet
bin=$PWD/target/release/zcdoctor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/reports"
python3 - "$n" "$work" <<'PY'
import glob, json, sys
n, work = int(sys.argv[1]), sys.argv[2]
reports = [json.load(open(p)) for p in sorted(glob.glob("fixtures/*/*/report.json"))]
with open(f"{work}/reports.jsonl", "w") as lines:
    for i in range(n):
        r = reports[i % len(reports)]
        r["host"]["hostname"] = f"host{i:05d}"
        text = json.dumps(r)
        with open(f"{work}/reports/host{i:05d}.json", "w") as f:
            f.write(text)
        lines.write(text + "\n")
PY
echo "reports: $n, $(du -sh "$work/reports" | cut -f1) on disk"
if command -v hyperfine >/dev/null; then
    hyperfine --warmup 1 --runs 5 \
        "$bin fleet $work/reports --format json >/dev/null" \
        "$bin fleet - --format json <$work/reports.jsonl >/dev/null"
else
    for input in dir stdin; do
        start=$(date +%s.%N)
        for _ in 1 2 3; do
            if [ $input = dir ]; then "$bin" fleet "$work/reports" >/dev/null
            else "$bin" fleet - <"$work/reports.jsonl" >/dev/null; fi
        done
        echo "$input: $(echo "($(date +%s.%N) - $start) / 3" | bc -l | cut -c1-5) s a run"
    done
fi
for count in $((n / 10)) "$n"; do
    rss=$(/usr/bin/time -v "$bin" fleet - --format json < <(head -n "$count" "$work/reports.jsonl") 2>&1 >/dev/null |
        awk -F: '/Maximum resident/ {gsub(/ /, "", $2); print $2}')
    echo "peak RSS, $count reports on stdin: $rss KiB"
done
