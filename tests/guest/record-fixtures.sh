#!/usr/bin/env bash
# Records fixtures/guest/* (and fixtures/offloads/bond-admin-down) from real shapes on the guest
# tier's kernels:
#   bash tests/guest/record-fixtures.sh [NAME...]
# run on the host; with NAMEs only those recordings replace the fixtures of that name.
# (boots each kernel once under virtme-ng, as tests/guest.rs does; needs a built
# target/fast/zcdoctor and tests/guest/setup.sh done). The expected findings
# (fixtures/guest/*/expect.toml) are written by hand from the reports; a new recording goes to
# fixtures/guest/NAME/, one already recorded replaces its evidence.json wherever its area is.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
cache=${ZCDOCTOR_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zcdoctor/guest}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ "${1:-}" = "--inside" ]; then
    # In the guest: build each shape in its own namespace, snapshot it, remove it.
    z=$top/target/fast/zcdoctor
    dest=$2
    release=$(uname -r)
    snap() { # namespace name args...
        local ns=$1 name=$2; shift 2
        ip netns exec "$ns" "$z" snapshot "$@" --output "$dest/$name.evidence.json" || true
    }
    wait_tap() { for _ in $(seq 100); do grep -q " 0003 " "/proc/$1/net/packet" 2>/dev/null && ls -l /proc/$1/fd | grep -q socket && return; sleep 0.1; done; }
    bond() { # ns mode
        ip netns add "$1"; ip -n "$1" link set lo up
        ip -n "$1" link add bond0 type bond mode "$2" miimon 100
        for d in d0 d1; do ip -n "$1" link add $d type dummy; ip -n "$1" link set $d master bond0; done
        [ "$2" = active-backup ] && ip -n "$1" link set bond0 type bond primary d0
        ip -n "$1" addr add 198.18.0.1/24 dev bond0; ip -n "$1" link set bond0 up
        ip -n "$1" neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev bond0 nud permanent
    }
    case "$release" in
    6.12*)
        bond zcdrab active-backup
        ip netns exec zcdrab tcpdump -n -w /dev/null -i d1 2>/dev/null & t=$!; wait_tap $t
        snap zcdrab guest-bond-backup-slave-tap bond0 --target 198.18.0.2 --duration 300ms
        kill $t; ip netns del zcdrab
        ip netns add zcdrvrf; ip -n zcdrvrf link set lo up
        ip -n zcdrvrf link add vrf0 type vrf table 10; ip -n zcdrvrf link set vrf0 up
        ip -n zcdrvrf link add d0 type dummy; ip -n zcdrvrf link set d0 master vrf0
        ip -n zcdrvrf addr add 198.18.0.1/24 dev d0; ip -n zcdrvrf link set d0 up
        ip -n zcdrvrf neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev d0 nud permanent
        ip netns exec zcdrvrf tcpdump -n -w /dev/null -i vrf0 2>/dev/null & t=$!; wait_tap $t
        snap zcdrvrf guest-vrf-tap-on-vrf d0 --target 198.18.0.2 --duration 300ms
        kill $t; ip netns del zcdrvrf
        # The hand-written bond-admin-down, recorded for real: bond1 down, its slaves up.
        ip netns add zcdrdown; ip -n zcdrdown link set lo up
        ip -n zcdrdown link add bond1 type bond mode active-backup miimon 100
        for d in eth0 eth1; do ip -n zcdrdown link add $d type dummy; ip -n zcdrdown link set $d master bond1; ip -n zcdrdown link set $d up; done
        ip -n zcdrdown addr add 198.18.0.1/24 dev bond1
        snap zcdrdown bond-admin-down bond1
        ip netns del zcdrdown
        # vlan-lowerlayerdown and vlan-no-tx-checksum stay as written: a vlan over a dummy NIC
        # has no offloads at all (a dummy's vlan_features are empty), which a real NIC's has.
        ;;
    6.1.*)
        bond zcdrxor balance-xor
        ip netns exec zcdrxor tcpdump -n -w /dev/null -i d1 2>/dev/null & t=$!; wait_tap $t
        snap zcdrxor guest-bond-xor-tap-on-one-slave bond0
        kill $t; ip netns del zcdrxor
        ip netns add zcdrhost; ip -n zcdrhost link set lo up
        ip -n zcdrhost link add d0 type dummy; ip -n zcdrhost addr add 198.18.0.1/24 dev d0; ip -n zcdrhost link set d0 up
        for p in a b; do
            ip netns add zcdrpod$p; ip -n zcdrpod$p link set lo up
            ip -n zcdrhost link add ipv$p link d0 type ipvlan mode l2
            ip -n zcdrhost link set ipv$p netns zcdrpod$p name ipv0
        done
        ip -n zcdrpoda addr add 198.18.0.5/24 dev ipv0; ip -n zcdrpoda link set ipv0 up
        ip -n zcdrpodb addr add 198.18.0.6/24 dev ipv0; ip -n zcdrpodb link set ipv0 up
        snap zcdrpoda guest-ipvlan-pod-to-pod ipv0 --target 198.18.0.6 --duration 300ms
        ip netns del zcdrpoda; ip netns del zcdrpodb; ip netns del zcdrhost
        ;;
    5.10*)
        ip netns add zcdrvlan; ip -n zcdrvlan link set lo up
        ip -n zcdrvlan link add bond0 type bond mode active-backup miimon 100
        ip -n zcdrvlan link add d0 type dummy; ip -n zcdrvlan link set d0 master bond0
        ip -n zcdrvlan link set bond0 up
        ip -n zcdrvlan link add link bond0 name bond0.100 type vlan id 100
        ip -n zcdrvlan addr add 198.18.0.1/24 dev bond0.100; ip -n zcdrvlan link set bond0.100 up
        ip -n zcdrvlan neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev bond0.100 nud permanent
        ip netns exec zcdrvlan tcpdump -n -w /dev/null -i bond0 2>/dev/null & t=$!; wait_tap $t
        snap zcdrvlan guest-vlan-over-bond-tap bond0.100 --target 198.18.0.2 --duration 300ms
        kill $t; ip netns del zcdrvlan
        ip netns add zcdrbr; ip -n zcdrbr link set lo up
        ip -n zcdrbr link add br0 type bridge vlan_filtering 1
        for pv in d0:10 d1:20; do
            p=${pv%:*}; v=${pv#*:}
            ip -n zcdrbr link add $p type dummy; ip -n zcdrbr link set $p master br0; ip -n zcdrbr link set $p up
            ip netns exec zcdrbr bridge vlan del dev $p vid 1
            ip netns exec zcdrbr bridge vlan add dev $p vid $v pvid untagged
        done
        ip netns exec zcdrbr bridge vlan del dev br0 vid 1 self
        ip netns exec zcdrbr bridge vlan add dev br0 vid 10 pvid untagged self
        ip -n zcdrbr addr add 198.18.0.1/24 dev br0; ip -n zcdrbr link set br0 up
        ip -n zcdrbr neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev br0 nud permanent
        ip netns exec zcdrbr tcpdump -n -w /dev/null -i d1 2>/dev/null & t=$!; wait_tap $t
        snap zcdrbr guest-bridge-vlan-filtering-tap-outside br0 --target 198.18.0.2 --duration 300ms
        kill $t; ip netns del zcdrbr
        ;;
    esac
    exit 0
fi

while read -r label release suite; do
    case "$label" in ''|'#'*) continue ;; esac
    echo "recording on $release"
    timeout -k 10 600 vng -r "$cache/boot/vmlinuz-$release" --disable-kvm --memory 2G --cpus 2 \
        --rwdir "$out" --exec "bash $top/tests/guest/record-fixtures.sh --inside $out > $out/log-$label 2>&1" \
        </dev/null >/dev/null 2>&1 || true
done < tests/guest/kernels.txt
for f in "$out"/*.evidence.json; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .evidence.json)
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
    dir=$(find fixtures -mindepth 2 -maxdepth 2 -type d -name "$name" | head -1)
    dir=${dir:-fixtures/guest/$name}
    mkdir -p "$dir"
    cp "$f" "$dir/evidence.json"
    echo "recorded $dir/evidence.json"
done
