#!/usr/bin/env bash
# Prepares a Debian 12 (bookworm) machine to run ig-metrics from this checkout:
# apt packages (bcc, python3-venv, kernel headers), tracefs and debugfs mounted,
# a .venv that sees Debian's bcc, the package installed in it (editable), and
# /usr/local/bin/ig-metrics linked to it.
# Idempotent: it prints every change it makes, and says so when nothing was needed.
#
# Usage: ./scripts/setup.sh [--test]
#   --test   also install what the test suite needs: prometheus, bpftrace, bpftool,
#            iperf3, nftables, iptables, iproute2, openssl, procps, mount (losetup),
#            podman, buildah, runc, debootstrap (the image test) and pip's .[test]
set -euo pipefail

# shellcheck source=scripts/as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$REPO/.venv"
STAMP="$VENV/.ig-metrics-setup"       # what pip last installed: pyproject hash + extras
SYSTEM_PYTHON=/usr/bin/python3        # Debian's Python: the one whose dist-packages hold bcc
RELEASE="$(uname -r)"
MODULES="/lib/modules/$RELEASE"
RUNTIME_PACKAGES=(python3-bpfcc bpfcc-tools python3-venv)
# podman, buildah, runc, debootstrap (+ uidmap, fuse-overlayfs, slirp4netns, catatonit,
# containernetworking-plugins, which podman recommends): tests/test_image.py
# builds and runs the image. tmux: tests/test_live_terminal.py drives the live
# table in a real terminal.
TEST_PACKAGES=(prometheus bpftrace bpftool iperf3 nftables iptables iproute2 openssl procps mount
               podman buildah runc debootstrap uidmap fuse-overlayfs slirp4netns catatonit
               containernetworking-plugins tmux)
export DEBIAN_FRONTEND=noninteractive

with_tests=0
changed=0
apt_updated=0

say() { echo "setup: $*"; }
change() { changed=1; say "$*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

usage() {
    sed -n 's/^# \{0,1\}//; 2,11p' "${BASH_SOURCE[0]}"
}

parse_args() {
    while (($#)); do
        case "$1" in
            --test) with_tests=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; echo "setup: error: unknown argument: $1" >&2; exit 2 ;;
        esac
        shift
    done
}

require_root_on_debian() {
    [ -r /etc/os-release ] || die "no /etc/os-release: this script sets up Debian 12 (bookworm)"
    # shellcheck source=/dev/null
    . /etc/os-release
    local pretty="${PRETTY_NAME:-${ID:-this system}}"
    if [ "${ID:-}" != debian ] && [[ " ${ID_LIKE:-} " != *" debian "* ]]; then
        die "this is $pretty; this script sets up Debian 12 (bookworm) and needs apt"
    fi
    command -v apt-get >/dev/null || die "apt-get not found on $pretty"
    [ "${VERSION_CODENAME:-}" = bookworm ] || say "note: made for Debian 12 (bookworm); this is $pretty"
}

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

apt_update_once() {
    ((apt_updated)) && return 0
    say "refreshing apt package lists (apt-get update)"
    apt-get update -qq
    apt_updated=1
}

# bcc compiles against /lib/modules/$(uname -r)/build; Debian splits headers
# into an -<arch> tree (build) and a -common tree (source).
headers_ok() {
    [ -d "$MODULES/build/include" ] &&
        { [ -d "$MODULES/build/include/linux" ] || [ -d "$MODULES/source/include/linux" ]; }
}

# The running kernel's headers when apt has them, else the distribution's generic
# ones; nothing when apt cannot tell yet (package lists never fetched).
headers_package() {
    local generic
    generic="linux-headers-$(dpkg --print-architecture)"
    if apt-cache show "linux-headers-$RELEASE" >/dev/null 2>&1; then
        echo "linux-headers-$RELEASE"
    elif is_installed "$generic" || ((apt_updated)); then
        echo "$generic"
    fi
}

install_packages() {
    local wanted=("${RUNTIME_PACKAGES[@]}") missing=() package headers
    ((with_tests)) && wanted+=("${TEST_PACKAGES[@]}")
    if ! headers_ok; then
        headers="$(headers_package)"
        if [ -z "$headers" ]; then
            apt_update_once
            headers="$(headers_package)"
        fi
        wanted+=("$headers")
    fi
    for package in "${wanted[@]}"; do
        is_installed "$package" || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        say "apt packages: all present (${wanted[*]})"
        return 0
    fi
    apt_update_once
    change "installing apt packages: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
        quiet_prometheus_service
    fi
}

# Debian's prometheus package starts a server on :9090; the tests start their
# own on free ports and only need the binaries.
quiet_prometheus_service() {
    [ -d /run/systemd/system ] || return 0
    change "stopping and disabling prometheus.service (the tests run their own prometheus)"
    systemctl disable --now prometheus.service
}

# First word of the dependency of package $1 that matches the pattern $2.
dependency_matching() {
    dpkg-query -W -f='${Depends}' "$1" | tr ',' '\n' | awk '{print $1}' | grep -m1 -E "$2" || true
}

link_generic_headers() {
    headers_ok && { say "kernel headers: $MODULES/build -> $(readlink -f "$MODULES/build")"; return 0; }
    local generic arch_tree common_tree
    generic="linux-headers-$(dpkg --print-architecture)"
    is_installed "$generic" ||
        die "no headers for $RELEASE: neither linux-headers-$RELEASE nor $generic is installed"
    arch_tree="$(dependency_matching "$generic" '^linux-headers-')"
    if [ -z "$arch_tree" ] || [ ! -d "/usr/src/$arch_tree" ]; then
        die "cannot find the headers tree $generic depends on (looked for /usr/src/$arch_tree)"
    fi
    common_tree="$(dependency_matching "$arch_tree" '^linux-headers-.*-common$')"
    if [ -z "$common_tree" ] || [ ! -d "/usr/src/$common_tree" ]; then
        die "cannot find the -common headers tree $arch_tree depends on"
    fi
    say "no headers package for kernel $RELEASE: using $arch_tree (fine for tracepoint gadgets)"
    mkdir -p "$MODULES"
    link "$MODULES/build" "/usr/src/$arch_tree"
    link "$MODULES/source" "/usr/src/$common_tree"
    headers_ok || die "$MODULES/build still lacks include/linux after linking"
}

link() {
    local path="$1" target="$2"
    [ -L "$path" ] && [ "$(readlink "$path")" = "$target" ] && return 0
    [ -e "$path" ] && [ ! -L "$path" ] && die "$path exists and is not a link: move it away"
    change "linking $path -> $target"
    ln -sfn "$target" "$path"
}

is_mounted() {
    awk -v type="$1" -v point="$2" '$2 == point && $3 == type {found = 1} END {exit !found}' \
        /proc/self/mounts
}

mount_fs() {
    local type="$1" point="$2"
    if is_mounted "$type" "$point"; then
        say "$type: mounted at $point"
        return 0
    fi
    change "mounting $type at $point"
    mount -t "$type" nodev "$point" ||
        die "cannot mount $type at $point (a container with a read-only /sys? mount it on the host)"
}

venv_sees_bcc() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import bcc' >/dev/null 2>&1
}

ensure_venv() {
    if venv_sees_bcc; then
        say "$VENV: present and sees Debian's bcc"
        return 0
    fi
    local clear=()
    if [ -e "$VENV" ]; then
        change "recreating $VENV: it does not see Debian's bcc (not made by $SYSTEM_PYTHON -m venv --system-site-packages)"
        clear=(--clear)
    else
        change "creating $VENV ($SYSTEM_PYTHON -m venv --system-site-packages, so it sees Debian's bcc)"
    fi
    "$SYSTEM_PYTHON" -m venv --system-site-packages "${clear[@]}" "$VENV"
    rm -f "$STAMP"
    venv_sees_bcc || die "$VENV/bin/python cannot import bcc even from a fresh venv"
}

# pip runs again only when pyproject.toml or the extras changed, or the
# package is not importable from this checkout.
install_package() {
    local spec=. hash
    ((with_tests)) && spec='.[test]'
    hash="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
    if package_current "$hash" "$spec"; then
        say "ig-metrics: installed in $VENV (pyproject.toml unchanged)"
        return 0
    fi
    change "installing ig-metrics into $VENV: pip install -e '$spec'"
    (cd "$REPO" && "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$spec")
    echo "$hash $spec" >"$STAMP"
}

package_current() {
    local hash="$1" spec="$2" stamped origin
    [ -x "$VENV/bin/ig-metrics" ] && [ -f "$STAMP" ] || return 1
    stamped="$(cat "$STAMP")"
    [ "$stamped" = "$hash $spec" ] || [ "$stamped" = "$hash .[test]" ] || return 1
    # From /, so that a checkout in the current directory cannot stand in for the install.
    origin="$(cd / && "$VENV/bin/python" -c 'import ig_metrics; print(ig_metrics.__file__)' 2>/dev/null)" ||
        return 1
    [ "$origin" = "$REPO/ig_metrics/__init__.py" ]
}

# `ig-metrics` on PATH, for the completion scripts and the hints the tool prints.
link_command() {
    link /usr/local/bin/ig-metrics "$VENV/bin/ig-metrics"
}

main() {
    parse_args "$@"
    require_root_on_debian "$@"
    install_packages
    link_generic_headers
    mount_fs tracefs /sys/kernel/tracing
    mount_fs debugfs /sys/kernel/debug
    ensure_venv
    install_package
    link_command
    if ((changed)); then
        say "done; check the result with: ig-metrics doctor (as root)"
    else
        say "nothing needed changing"
    fi
}

main "$@"
