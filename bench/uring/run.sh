#!/usr/bin/env bash
# bench/uring/run.sh: zcdoctor's io_uring probe (`--api both`, so its sendmsg probe too) against
# minimal C loops: bench/uring/zcuring.c (liburing, IORING_OP_SEND / SEND_ZC with
# IORING_SEND_ZC_REPORT_USAGE) and bench/live/zcbench.c (sendmsg / MSG_ZEROCOPY). UDP to
# 198.18.0.2:9 through an ifb black hole inside a throwaway network namespace, same sizes for
# all (read from the probe's own report), several rounds in alternating order; prints medians,
# the ratio of each probe to its C loop, CPU per send, which API reaches the higher zerocopy
# rate, and how noisy the host was (runnable tasks, CPU pressure).
#
# Usage (root):  bench/uring/run.sh
#                SECS=1 ROUNDS=5 FIXED=1 bench/uring/run.sh   # FIXED=1: registered buffers
# Needs gcc, liburing-dev, ip, jq, python3, cargo. Writes nothing into the repository.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${SECS:-2}
ROUNDS=${ROUNDS:-3}
FIXED=${FIXED:-0}
NS=zcdurbench$$
WORK=$(mktemp -d /tmp/zcdurbench.XXXXXX)

cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" != 0 ]; then
	echo "run.sh: needs root (network namespaces)" >&2
	exit 1
fi

echo "building zcuring.c, zcbench.c and zcdoctor (release)..." >&2
gcc -O2 -Wall -Wextra -o "$WORK/zcuring" "$HERE/zcuring.c" -luring
gcc -O2 -Wall -Wextra -o "$WORK/zcbench" "$HERE/../live/zcbench.c"
cd "$ROOT"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
cargo build --release --quiet
ZCD="$TARGET_DIR/release/zcdoctor"

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add ifbz type ifb
ip -n "$NS" addr add 198.18.0.1/24 dev ifbz
ip -n "$NS" link set ifbz up

MS=$(awk -v s="$SECS" 'BEGIN { printf "%d", s * 1000 }')
FIXED_ARG=()
CFIXED=""
if [ "$FIXED" = 1 ]; then
	FIXED_ARG=(--uring-fixed-buffers)
	CFIXED=-F
fi

probe() {
	ip netns exec "$NS" "$ZCD" check ifbz --target 198.18.0.2:9 --json --fail-on never \
		--no-taps --api both "${FIXED_ARG[@]}" --duration "${MS}ms" \
		--byte-cap 1000000000000000 | jq -c .live_probe
}

# Both C loops, copy and zerocopy: "api pattern key=value..." lines.
cloop() {
	local pattern=$1 size=$2 gso=$3 z
	for z in "" -z; do
		printf 'io_uring %s ' "$pattern"
		# shellcheck disable=SC2086
		ip netns exec "$NS" "$WORK/zcuring" -D 198.18.0.2 -p 9 -i ifbz -s "$size" -g "$gso" \
			$z ${z:+$CFIXED} -t "$SECS"
		printf 'sendmsg %s ' "$pattern"
		# shellcheck disable=SC2086
		ip netns exec "$NS" "$WORK/zcbench" -D 198.18.0.2 -p 9 -i ifbz -s "$size" -g "$gso" \
			$z -t "$SECS"
	done
}

c_all() {
	cloop datagram "$DGRAM" 0
	cloop gso "$GSO_SIZE" "$GSO_SEG"
}

load() { awk '{ split($4, a, "/"); print a[1] }' /proc/loadavg; }
pressure() { sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo -; }

for round in $(seq 1 "$ROUNDS"); do
	echo "round $round/$ROUNDS..." >&2
	echo "$(load) $(pressure)" >>"$WORK/noise.txt"
	if [ $((round % 2)) = 1 ]; then
		probe >"$WORK/zcd.$round.json"
		if [ "$round" = 1 ]; then
			DGRAM=$(jq -r '[.runs[] | select(.pattern == "datagram")][0].send_size' "$WORK/zcd.1.json")
			GSO_SIZE=$(jq -r '[.runs[] | select(.pattern == "gso")][0].send_size' "$WORK/zcd.1.json")
			GSO_SEG=$(jq -r '[.runs[] | select(.pattern == "gso")][0].gso_size' "$WORK/zcd.1.json")
		fi
		c_all >"$WORK/c.$round.txt"
	else
		c_all >"$WORK/c.$round.txt"
		probe >"$WORK/zcd.$round.json"
	fi
	echo "$(load) $(pressure)" >>"$WORK/noise.txt"
done

python3 - "$WORK" "$ROUNDS" "$SECS" "$FIXED" <<'PY'
import json, statistics, sys
work, rounds, secs, fixed = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c, z = {}, {}
for r in range(1, rounds + 1):
    for line in open(f"{work}/c.{r}.txt"):
        api, pattern, *kv = line.split()
        d = dict(x.split("=", 1) for x in kv)
        c.setdefault((api, pattern, d["mode"]), []).append(
            dict(rate=float(d["sends_per_s"]), cpu=float(d["cpu_s"]) / max(int(d["sends"]), 1),
                 copied=d["copied"], completions=d["completions"]))
    probe = json.load(open(f"{work}/zcd.{r}.json"))
    if probe.get("not_run"):
        sys.exit(f"probe did not run: {probe['not_run']}")
    for run in probe["runs"]:
        api = run.get("api", "sendmsg")
        for mode, key in (("copy", "copy_phase"), ("zerocopy", "zerocopy_phase")):
            ph = run[key]
            cpu = ph["cpu_system_seconds"] + ph["cpu_user_seconds"]
            z.setdefault((api, run["pattern"], mode), []).append(
                dict(rate=ph["sends"] / ph["seconds"], cpu=cpu / max(ph["sends"], 1),
                     size=run["send_size"],
                     copied=run["copied"] if mode == "zerocopy" else "-",
                     completions=run["completions"] if mode == "zerocopy" else "-"))

med = statistics.median
print(f"\nUDP to 198.18.0.2:9 via ifb, {secs} s per phase, {rounds} rounds, medians; "
      f"io_uring fixed buffers: {'yes' if fixed == '1' else 'no'}; ratio = zcdoctor / C "
      f"(per round min..max)\n")
hdr = (f"{'api':8} {'pattern':9} {'phase':9} {'size':>6} {'C sends/s':>11} {'zcd sends/s':>11} "
       f"{'ratio':>6} {'(min..max)':>12} {'C µs CPU/send':>13} {'zcd µs CPU/send':>15} "
       f"{'copied zcd':>16}")
print(hdr)
print("-" * len(hdr))
best = {}
for pattern in ("datagram", "gso"):
    for mode in ("copy", "zerocopy"):
        for api in ("sendmsg", "io_uring"):
            cs, zs = c.get((api, pattern, mode)), z.get((api, pattern, mode))
            if not cs or not zs:
                continue
            cr, zr = [d["rate"] for d in cs], [d["rate"] for d in zs]
            ratios = [a / b for a, b in zip(zr, cr)]
            if mode == "zerocopy":
                best.setdefault(pattern, {})[api] = (med(zr), med(cr))
            print(f"{api:8} {pattern:9} {mode:9} {zs[0]['size']:>6} {med(cr)/1e6:>9.3f} M "
                  f"{med(zr)/1e6:>9.3f} M {med(zr)/med(cr):>6.3f} "
                  f"{min(ratios):>5.2f}..{max(ratios):<5.2f} "
                  f"{med([d['cpu'] for d in cs])*1e6:>13.2f} {med([d['cpu'] for d in zs])*1e6:>15.2f} "
                  f"{str(zs[0]['copied']) + '/' + str(zs[0]['completions']):>16}")
print()
for pattern, b in best.items():
    if len(b) == 2:
        (zs, cs), (zu, cu) = b["sendmsg"], b["io_uring"]
        win = "io_uring" if zu > zs else "sendmsg"
        print(f"higher zerocopy rate ({pattern}): {win} (zcdoctor: io_uring {zu/1e6:.3f} M/s vs "
              f"sendmsg {zs/1e6:.3f} M/s; C: io_uring {cu/1e6:.3f} M/s vs sendmsg {cs/1e6:.3f} M/s)")
noise = [l.split() for l in open(f"{work}/noise.txt")]
print(f"noise: runnable tasks {', '.join(n[0] for n in noise)} (2 CPUs); "
      f"CPU pressure some avg10 {', '.join(n[1] for n in noise)} % (before/after each round)")
PY
