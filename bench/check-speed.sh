#!/usr/bin/env bash
# Times `zcdoctor check` without a live probe (issue: well under 100 ms), in a throwaway
# namespace with an ifb device, and on the host's default-route device. Needs root and hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install -y hyperfine)"; exit 2; }
cargo build --release -q
bin=$PWD/target/release/zcdoctor
ns=zcdspeed$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$ns"
ip -n "$ns" link add ifbz type ifb
ip -n "$ns" link set ifbz up
echo "processes on this host: $(ls -d /proc/[0-9]* | wc -l)"
hyperfine -N --warmup 5 --runs 100 \
    "ip netns exec $ns $bin check ifbz --json --fail-on never" \
    "ip netns exec $ns $bin check ifbz --json --fail-on never --no-taps" \
    "ip netns exec $ns true" \
    "$bin check --json --fail-on never"
