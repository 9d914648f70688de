#!/bin/bash
# Runs inside a guest of the tier (bench/watch-overhead.sh boots it): the throughput of
# zcdoctor's own live probe (a Rust MSG_ZEROCOPY sender, UDP to a dummy black-hole NIC) with and
# without a running `zcdoctor watch`, on a clean path (the completion program runs per send)
# and with a tcpdump on the device (every send copied: the copy program adds to its map too).
# Each live probe runs two patterns: 1472-byte datagrams (one MSG_ZEROCOPY notification per
# 1472 bytes: the worst case, every send pays the completion probe) and 64 KiB UDP GSO sends.
# Prints one line per case and pattern: median bytes/s without and with watch, and the ratio.
set -u
Z=${ZCDOCTOR:-/work/main/target/release/zcdoctor}
ROUNDS=${ROUNDS:-5}
ip netns add zcdbw
ip -n zcdbw link set lo up
ip -n zcdbw link add d0 type dummy
ip -n zcdbw addr add 198.18.0.1/24 dev d0
ip -n zcdbw link set d0 up
ip -n zcdbw neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev d0
rate() {  # zerocopy-phase bytes/s of one live probe, per pattern: "DATAGRAM GSO"
    ip netns exec zcdbw "$Z" check d0 --target 198.18.0.2 --duration 1s --json 2>/dev/null |
        python3 -c 'import json,sys; r={x["pattern"]: x["zerocopy_phase"]["bytes_per_sec"] for x in json.load(sys.stdin)["live_summary"]["runs"]}; print(r["datagram"], r["gso"])'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() {  # $1: case name
    local without=() with=()
    for _ in $(seq "$ROUNDS"); do
        without+=("$(rate)")
        "$Z" watch --duration 10m > /dev/null 2> /tmp/zcdbw.err &
        local w=$!
        while ! grep -q "watching" /tmp/zcdbw.err 2>/dev/null; do sleep 0.1; done
        with+=("$(rate)")
        kill -INT "$w"; wait "$w"
    done
    for col in 1 2; do
        local name a b
        name=$([ $col = 1 ] && echo "1472-byte datagrams" || echo "64 KiB GSO sends")
        a=$(printf '%s\n' "${without[@]}" | cut -d' ' -f$col | median)
        b=$(printf '%s\n' "${with[@]}" | cut -d' ' -f$col | median)
        echo "$(uname -r) $1, $name: without watch $(python3 -c "print(round($a/1e6, 1))") MB/s, with watch $(python3 -c "print(round($b/1e6, 1))") MB/s, ratio $(python3 -c "print(round($b/$a, 3))") (median of $ROUNDS, alternating)"
    done
}
measure clean
ip netns exec zcdbw tcpdump -n -i d0 -w /dev/null 2>/dev/null &
TD=$!
sleep 2
measure tap
kill "$TD"
ip netns del zcdbw
