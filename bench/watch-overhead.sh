#!/bin/bash
# The cost of `zcdoctor watch` to the traffic it watches (issue #17): a sender's throughput with
# a watch running over without, measured in the same guest, for each kernel of the guest tier
# (this host's kernel has no kprobes). Needs `bash tests/guest/setup.sh` (the kernels) and
# virtme-ng; takes ~2 min per kernel under TCG. Figures: docs/performance.md#watch.
#   bash bench/watch-overhead.sh [RELEASE...]     (default: every kernel of tests/guest/kernels.txt)
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
target=${CARGO_TARGET_DIR:-$PWD/target}
out=$(mktemp -d /tmp/zcd-bench-watch.XXXX)
releases=("$@")
[ ${#releases[@]} -gt 0 ] || mapfile -t releases < <(grep -v '^#' tests/guest/kernels.txt | awk 'NF {print $2}')
for rel in "${releases[@]}"; do
    timeout -k 10 900 vng -r "$HOME/.cache/zcdoctor/guest/boot/vmlinuz-$rel" --disable-kvm \
        --memory 2G --cpus 2 --rwdir "$out" \
        --exec "ZCDOCTOR=$target/release/zcdoctor bash $PWD/bench/watch/guest.sh > $out/$rel.txt 2>&1" \
        < /dev/null > "$out/console-$rel.log" 2>&1 || true
    cat "$out/$rel.txt"
done
