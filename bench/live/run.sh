#!/usr/bin/env bash
# bench/live/run.sh: zcdoctor's live-probe sender against a minimal C sendmsg loop
# (bench/live/zcbench.c), UDP to 198.18.0.2:9 through an ifb black hole inside a throwaway
# network namespace. Same sizes for both (read from the probe's own report), copy and
# zerocopy phases, several rounds in alternating order; prints medians and the ratio to C.
#
# Usage (root):  bench/live/run.sh
#                SECS=1 ROUNDS=5 bench/live/run.sh
#                ZCD_VIA=lib bench/live/run.sh   # the library through the test helper
#                                                # (tests/live/probe.rs bench_live_probe)
#                                                # instead of `zcdoctor check --target`
# Needs gcc, ip, jq, python3, cargo. Writes nothing into the repository: the C binary and
# results live in a temp dir (removed on exit), cargo builds into its target dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECS=${SECS:-2}
ROUNDS=${ROUNDS:-3}
VIA=${ZCD_VIA:-cli}
NS=zcdbench$$
WORK=$(mktemp -d /tmp/zcdbench.XXXXXX)

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

echo "building zcbench.c and zcdoctor (release)..." >&2
gcc -O2 -Wall -Wextra -o "$WORK/zcbench" "$HERE/zcbench.c"
cd "$ROOT"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
case "$VIA" in
cli)
	cargo build --release --quiet
	ZCD="$TARGET_DIR/release/zcdoctor"
	;;
lib)
	ZCD=$(cargo test --release --test live --no-run --message-format=json 2>/dev/null |
		jq -r 'select(.reason == "compiler-artifact" and .executable != null
			and .target.name == "live") | .executable' | tail -1)
	;;
*)
	echo "run.sh: ZCD_VIA must be cli or lib" >&2
	exit 2
	;;
esac
[ -x "$ZCD" ] || { echo "run.sh: no zcdoctor binary ($ZCD)" >&2; exit 1; }

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add ifbz type ifb
ip -n "$NS" addr add 198.18.0.1/24 dev ifbz
ip -n "$NS" link set ifbz up

MS=$(awk -v s="$SECS" 'BEGIN { printf "%d", s * 1000 }')

# The probe's LiveProbe document on stdout.
probe() {
	if [ "$VIA" = cli ]; then
		ip netns exec "$NS" "$ZCD" check ifbz --target 198.18.0.2:9 --json --fail-on never \
			--no-taps --duration "${MS}ms" --byte-cap 1000000000000000 | jq -c .live_probe
	else
		ZCD_BENCH_TARGET=198.18.0.2:9 ZCD_BENCH_IFACE=ifbz ZCD_BENCH_SECONDS="$SECS" \
			ip netns exec "$NS" "$ZCD" --ignored --exact probe::bench_live_probe --nocapture \
			2>/dev/null | sed -n 's/^ZCD_BENCH_JSON //p'
	fi
}

# zcbench with pattern name, size, gso; prints "pattern key=value..." lines for both phases.
cloop() {
	local pattern=$1 size=$2 gso=$3 z
	for z in "" -z; do
		printf '%s ' "$pattern"
		# shellcheck disable=SC2086
		ip netns exec "$NS" "$WORK/zcbench" -D 198.18.0.2 -p 9 -i ifbz -s "$size" -g "$gso" \
			$z -t "$SECS"
	done
}

c_all() {
	cloop datagram "$DGRAM" 0
	cloop gso "$GSO_SIZE" "$GSO_SEG"
}

for round in $(seq 1 "$ROUNDS"); do
	echo "round $round/$ROUNDS..." >&2
	if [ $((round % 2)) = 1 ]; then
		probe >"$WORK/zcd.$round.json"
		if [ "$round" = 1 ]; then
			DGRAM=$(jq -r '.runs[] | select(.pattern == "datagram") | .send_size' "$WORK/zcd.1.json")
			GSO_SIZE=$(jq -r '.runs[] | select(.pattern == "gso") | .send_size' "$WORK/zcd.1.json")
			GSO_SEG=$(jq -r '.runs[] | select(.pattern == "gso") | .gso_size' "$WORK/zcd.1.json")
		fi
		c_all >"$WORK/c.$round.txt"
	else
		c_all >"$WORK/c.$round.txt"
		probe >"$WORK/zcd.$round.json"
	fi
done

python3 - "$WORK" "$ROUNDS" "$SECS" "$VIA" <<'EOF'
import json, statistics, sys
work, rounds, secs, via = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c, z = {}, {}
for r in range(1, rounds + 1):
    for line in open(f"{work}/c.{r}.txt"):
        pattern, *kv = line.split()
        d = dict(x.split("=", 1) for x in kv)
        c.setdefault((pattern, d["mode"]), []).append(d)
    probe = json.load(open(f"{work}/zcd.{r}.json"))
    if probe.get("not_run"):
        sys.exit(f"probe did not run: {probe['not_run']}")
    for run in probe["runs"]:
        for mode, key in (("copy", "copy_phase"), ("zerocopy", "zerocopy_phase")):
            ph = run[key]
            z.setdefault((run["pattern"], mode), []).append(
                dict(ph, copied=run["copied"] if mode == "zerocopy" else 0,
                     completions=run["completions"] if mode == "zerocopy" else 0,
                     size=run["send_size"]))

def med(xs):
    return statistics.median(xs)

print(f"\nUDP to 198.18.0.2:9 via ifb, {secs} s per phase, {rounds} rounds, medians "
      f"(zcdoctor via {via}); ratio = zcdoctor / C, per round min..max in brackets\n")
hdr = (f"{'pattern':9} {'phase':9} {'size':>6} {'C sends/s':>11} {'zcd sends/s':>11} "
       f"{'ratio':>6} {'(min..max)':>12} {'C Gbit/s':>9} {'zcd Gbit/s':>10} "
       f"{'copied C':>9} {'copied zcd':>10}")
print(hdr)
print("-" * len(hdr))
gains = {}
for pattern in ("datagram", "gso"):
    for mode in ("copy", "zerocopy"):
        cs, zs = c.get((pattern, mode)), z.get((pattern, mode))
        if not cs or not zs:
            continue
        c_rate = [float(d["sends_per_s"]) for d in cs]
        z_rate = [d["sends"] / d["seconds"] for d in zs]
        ratios = [zr / cr for zr, cr in zip(z_rate, c_rate)]
        c_gbit = med([float(d["bytes_per_s"]) * 8 / 1e9 for d in cs])
        z_gbit = med([d["bytes"] / d["seconds"] * 8 / 1e9 for d in zs])
        gains.setdefault(pattern, {})[mode] = (med(c_rate), med(z_rate))
        copied_c = f"{int(cs[0]['copied'])}/{int(cs[0]['completions'])}" if mode == "zerocopy" else "-"
        copied_z = f"{zs[0]['copied']}/{zs[0]['completions']}" if mode == "zerocopy" else "-"
        print(f"{pattern:9} {mode:9} {zs[0]['size']:>6} {med(c_rate)/1e6:>9.3f} M "
              f"{med(z_rate)/1e6:>9.3f} M {med(z_rate)/med(c_rate):>6.3f} "
              f"{min(ratios):>5.2f}..{max(ratios):<5.2f} {c_gbit:>9.1f} {z_gbit:>10.1f} "
              f"{copied_c:>9} {copied_z:>10}")
print()
for pattern, g in gains.items():
    if "copy" in g and "zerocopy" in g:
        (cc, zc), (cz, zz) = g["copy"], g["zerocopy"]
        print(f"zerocopy gain ({pattern}): C {cz/cc:.2f}x, zcdoctor {zz/zc:.2f}x")
EOF
