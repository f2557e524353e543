#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb (Debian's own tool, nothing to install): the tree
# `make install` lays out under /usr and /etc, plus the control file, the maintainer scripts
# and the list of conffiles. Usage: packaging/deb.sh OUT_DIR (after `make build-release`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: packaging/deb.sh OUT_DIR}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' appliance/Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
make --no-print-directory install-files DESTDIR="$stage/root" PREFIX=/usr SYSCONFDIR=/etc \
    BINSRC="${BINSRC:-target/release}" >/dev/null
# As Debian ships binaries: without their debug sections.
strip --strip-debug "$stage/root/usr/bin/appliance" "$stage/root/usr/bin/appliancectl"
mkdir -p "$stage/root/DEBIAN"
# The packages of the shared libraries the binaries link (DPDK's, libpcap, libc). dpkg knows
# a file by one of its names: /lib or /usr/lib (merged /usr), the symlink or its target.
owners() {
    for lib in $(ldd "$@" | awk '/=> \//{print $3}' | sort -u); do
        real=$(readlink -f "$lib")
        for path in "$lib" "/usr$lib" "$real" "/usr$real"; do
            if pkg=$(dpkg -S "$path" 2>/dev/null); then
                echo "${pkg%%:*}" | cut -d, -f1
                break
            fi
        done
    done | sort -u | paste -sd, | sed 's/,/, /g'
}
depends=$(owners "$stage/root/usr/bin/appliance" "$stage/root/usr/bin/appliancectl")
sed -e "s/@VERSION@/$version/; s/@ARCH@/$arch/; s/@DEPENDS@/$depends/" \
    packaging/debian/control.in > "$stage/root/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
    "$stage/root/DEBIAN/"
(cd "$stage/root" && find etc -type f | sed 's|^|/|' | sort) > "$stage/root/DEBIAN/conffiles"
mkdir -p "$out"
deb="$out/appliance_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group "$stage/root" "$deb" >/dev/null
echo "$deb"
