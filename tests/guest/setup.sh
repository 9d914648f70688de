#!/usr/bin/env bash
# Sets up the guest tier (tests/guest.rs): QEMU, virtme-ng and Debian's 5.10, 6.1 and 6.12
# kernels, unpacked into a cache and their modules registered under /lib/modules (as a package
# install would; the running kernel's modules are untouched). Idempotent: a second run only
# checks. Called by tests/run; usable alone: `bash tests/guest/setup.sh`.
set -euo pipefail

cache=${ZCDOCTOR_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zcdoctor/guest}
mkdir -p "$cache"
# The kernels of the tier (kernels.txt): Debian 12 ships 6.1 and 6.12 from the system's own
# sources; 5.10 is Debian 11's, fetched through a private apt state.
list=$(dirname "$0")/kernels.txt
bookworm_kernels=$(awk '$3 == "bookworm" {print "linux-image-" $2}' "$list")
bullseye_kernels=$(awk '$3 == "bullseye" {print "linux-image-" $2}' "$list")

have_kernel() { # package -> 0 when its vmlinuz is in the cache and its modules are registered
    local v=${1#linux-image-}
    [ -f "$cache/boot/vmlinuz-$v" ] && [ -f "/lib/modules/$v/modules.dep" ]
}

unpack() { # deb file -> vmlinuz into $cache/boot, modules into /lib/modules, depmod
    local deb=$1 tmp
    tmp=$(mktemp -d)
    dpkg -x "$deb" "$tmp"
    mkdir -p "$cache/boot" /lib/modules
    cp "$tmp"/boot/vmlinuz-* "$cache/boot/"
    cp "$tmp"/boot/config-* "$cache/boot/" 2>/dev/null || true
    for d in "$tmp"/lib/modules/*; do
        v=$(basename "$d")
        rm -rf "/lib/modules/$v"
        cp -a "$d" "/lib/modules/$v"
        depmod "$v"
    done
    rm -rf "$tmp"
}

need_apt=
command -v qemu-system-x86_64 >/dev/null || need_apt=1
command -v busybox >/dev/null || need_apt=1
command -v depmod >/dev/null || need_apt=1
if [ -n "$need_apt" ]; then
    # qemu-system-x86: the VM (TCG); busybox-static: virtme-ng's guest userland helpers;
    # kmod: depmod; udev is not needed.
    apt-get install -y -qq --no-install-recommends qemu-system-x86 busybox-static kmod >/dev/null
fi
command -v vng >/dev/null || python3 -m pip install -q 'virtme-ng==1.42'

missing=
for k in $bookworm_kernels; do have_kernel "$k" || missing="$missing $k"; done
if [ -n "$missing" ]; then
    (cd "$cache" && apt-get -o APT::Sandbox::User=root download $missing >/dev/null)
    for k in $missing; do unpack "$cache/${k}_"*.deb; rm -f "$cache/${k}_"*.deb; done
fi

missing=
for k in $bullseye_kernels; do have_kernel "$k" || missing="$missing $k"; done
if [ -n "$missing" ]; then
    # A private apt state for Debian 11, from the mirror the system's own sources name; the
    # system's apt configuration is left alone.
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "setup.sh: no Debian mirror in the apt sources" >&2; exit 1; }
    security=${mirror%/debian}/debian-security
    st="$cache/bullseye-apt"
    mkdir -p "$st/lists/partial" "$st/cache/archives/partial"
    {
        echo "deb $mirror bullseye main"
        echo "deb $security bullseye-security main"
    } > "$st/sources.list"
    opts=(-o "Dir::Etc::SourceList=$st/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$st/lists" -o "Dir::Cache=$st/cache"
          -o Acquire::Check-Valid-Until=false -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" update -qq
    (cd "$cache" && apt-get "${opts[@]}" download $missing >/dev/null)
    for k in $missing; do unpack "$cache/${k}_"*.deb; rm -f "$cache/${k}_"*.deb; done
fi
ls "$cache/boot"/vmlinuz-* | sed 's|.*/vmlinuz-|guest kernel |'
