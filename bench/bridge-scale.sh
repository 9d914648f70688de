#!/usr/bin/env bash
# A host bridge with many veth ports (default 200) and one pod behind one of them, routed out of
# an ifb: times `zcdoctor check` of the pod's path and of the whole bridge, and counts the lines
# of the human report (issue: one port's path under 15 ms and 40 lines). Needs root, hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
PORTS=${PORTS:-200}
RUNS=${RUNS:-50}
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install -y hyperfine)"; exit 2; }
cargo build --release -q
bin=$PWD/target/release/zcdoctor
host=zcdbshost$$ pods=zcdbspods$$ pod=zcdbspod$$
cleanup() { for n in "$host" "$pods" "$pod"; do ip netns del "$n" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for n in "$host" "$pods" "$pod"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$host" link add br0 type bridge
ip -n "$host" addr add 198.18.1.1/24 dev br0
ip -n "$host" link set br0 up
# The pod's own port, then PORTS-1 more whose other ends sit in one namespace.
ip -n "$host" link add h0 type veth peer name eth0 netns "$pod"
{
    for i in $(seq 1 $((PORTS - 1))); do
        echo "link add h$i type veth peer name p$i netns $pods"
    done
    for i in $(seq 0 $((PORTS - 1))); do
        echo "link set h$i master br0"
        echo "link set h$i up"
    done
} | ip -n "$host" -batch -
ip -n "$host" link add ifbz type ifb
ip -n "$host" addr add 198.18.2.1/24 dev ifbz
ip -n "$host" link set ifbz up
ip -n "$host" route add default dev ifbz
ip netns exec "$host" sysctl -qw net.ipv4.ip_forward=1
ip -n "$pod" addr add 198.18.1.10/24 dev eth0
ip -n "$pod" link set eth0 up
ip -n "$pod" route add default via 198.18.1.1
echo "bridge ports: $PORTS; processes on this host: $(ls -d /proc/[0-9]* | wc -l)"
echo "human report lines, the pod's path:   $("$bin" check --netns "$pod" eth0 --color never --fail-on never | wc -l)"
echo "human report lines, the whole bridge: $("$bin" check --netns "$host" br0 --color never --fail-on never | wc -l)"
hyperfine -N --warmup 3 --runs "$RUNS" \
    "$bin check --netns $pod eth0 --json --fail-on never" \
    "$bin check --netns $pod eth0 --json --fail-on never --skip taps" \
    "$bin check --netns $host br0 --json --fail-on never --skip taps"
