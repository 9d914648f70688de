#!/usr/bin/env bash
# `zcdoctor check --pid` of a process whose zerocopy sockets go one way, then four ways (forwarded
# by a router namespace, out of an ifb, to the router's own address, over lo): what each further
# way out costs. Namespaces zcdpw*, traffic only to 198.18.0.0/15 inside them. Needs root,
# hyperfine, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install -y hyperfine)"; exit 2; }
cargo build --release -q
bin=$PWD/target/release/zcdoctor
a=zcdpwa$$ b=zcdpwb$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for n in "$a" "$b"; do ip netns del "$n" 2>/dev/null || true; done
    rm -f /tmp/zcdpw$$.*
}
trap cleanup EXIT INT TERM
for n in "$a" "$b"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$a" link add va type veth peer name vb netns "$b"
ip -n "$a" addr add 198.18.1.1/24 dev va
ip -n "$b" addr add 198.18.1.2/24 dev vb
ip -n "$a" link set va up
ip -n "$b" link set vb up
ip -n "$b" link add ifbz type ifb
ip -n "$b" addr add 198.18.2.1/24 dev ifbz
ip -n "$b" link set ifbz up
ip netns exec "$b" sysctl -qw net.ipv4.ip_forward=1
ip -n "$a" route add 198.18.2.0/24 via 198.18.1.2
ip -n "$a" link add ifbq type ifb
ip -n "$a" addr add 198.18.3.1/24 dev ifbq
ip -n "$a" link set ifbq up
sender() { # counts file, peers...
    local counts=$1; shift
    local args=()
    for p in "$@"; do args+=(--peer "$p"); done
    ip netns exec "$a" python3 tests/senders/zc_multi.py --counts "$counts" "${args[@]}" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$counts" ] && return; sleep 0.1; done
    echo "sender did not start"; exit 1
}
sender /tmp/zcdpw$$.one 198.18.2.2
one=${pids[-1]}
sender /tmp/zcdpw$$.four 198.18.2.2 198.18.2.2 198.18.2.3 198.18.3.2 198.18.1.2 198.18.1.1
four=${pids[-1]}
echo "human report lines, one way:   $("$bin" check --pid "$one" --color never --fail-on never | wc -l)"
echo "human report lines, four ways: $("$bin" check --pid "$four" --color never --fail-on never | wc -l)"
hyperfine -N --warmup 3 --runs "$RUNS" \
    "$bin check --pid $one --json --fail-on never" \
    "$bin check --pid $four --json --fail-on never" \
    "$bin check --pid $four --json --fail-on never --skip taps"
