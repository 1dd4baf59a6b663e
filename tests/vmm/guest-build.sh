#!/usr/bin/env bash
# Builds (once) and caches the test guest: Debian's 6.1 kernel and a busybox initramfs with the drivers.
#
# Usage: guest-build.sh CACHE_DIR
# On success CACHE_DIR holds vmlinuz, base.cpio.gz (busybox, modules, e2fsprogs; no /init:
# each test appends its own) and a stamp file "complete". Exit 77 when the packages cannot be
# downloaded (no network, no apt), 1 on any other failure. Safe to run concurrently (flock).
set -euo pipefail

CACHE=${1:?usage: guest-build.sh CACHE_DIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Bump when the guest's content changes; the stamp of an older cache no longer matches.
GUEST_FORMAT=3
# Modules the scenarios need (dependencies are followed through modules.dep).
# crc32c_generic: ext4's metadata_csum needs crc32c (a softdep, not in modules.dep).
WANTED_MODULES="crc32c_generic nvme gpio-pci-idio-16 ext4"
GUEST_TOOLS="/sbin/mke2fs /sbin/e2fsck"

skip() { echo "SKIP: cannot build the test guest: $*" >&2; exit 77; }
die() { echo "guest-build: $*" >&2; exit 1; }

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/.lock"
flock 9

stamp_want() { echo "format=$GUEST_FORMAT kernel=$1 script=$(md5sum <"$HERE/guest-build.sh" | cut -c1-12)"; }

# Reuse a complete cache without asking apt anything (the kernel download is the slow part).
if [ -f "$CACHE/complete" ] && [ -s "$CACHE/vmlinuz" ] && [ -s "$CACHE/base.cpio.gz" ]; then
	kver=$(sed -n 's/.*kernel=\([^ ]*\).*/\1/p' "$CACHE/complete")
	if [ "$(cat "$CACHE/complete")" = "$(stamp_want "$kver")" ]; then
		exit 0
	fi
fi
rm -f "$CACHE/complete"

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || skip "apt-get/dpkg-deb not found"
for t in $GUEST_TOOLS; do [ -x "$t" ] || skip "$t not found (install e2fsprogs)"; done

# The newest real 6.1 image package: what the linux-image-amd64 metapackage points at, else the
# highest linux-image-6.1.0-N-amd64 apt knows.
find_kernel_pkg() {
	local p
	p=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -1)
	[ -n "$p" ] || p=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
		awk '{print $1}' | sort -V | tail -1)
	echo "$p"
}
kpkg=$(find_kernel_pkg)
if [ -z "$kpkg" ]; then
	echo "guest-build: apt-cache knows no linux-image-6.1.0-*-amd64; running apt-get update" >&2
	apt-get update -qq </dev/null >/dev/null 2>&1 || skip "apt-get update failed (no network?)"
	kpkg=$(find_kernel_pkg)
	[ -n "$kpkg" ] || skip "no linux-image-6.1.0-*-amd64 package in the apt sources"
fi
kver=${kpkg#linux-image-}
echo "guest-build: building the guest from $kpkg and busybox-static in $CACHE" >&2

work=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" busybox-static \
	</dev/null >download.log 2>&1) ||
	skip "apt-get download $kpkg busybox-static failed: $(tail -2 "$work/download.log" | tr '\n' ' ')"
dpkg-deb -x "$work"/linux-image-*.deb "$work/k"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
BB=$work/bb/bin/busybox
[ -x "$BB" ] || die "busybox-static has no /bin/busybox"
moddir=$work/k/lib/modules/$kver
[ -d "$moddir" ] && [ -f "$work/k/boot/vmlinuz-$kver" ] || die "unexpected layout of $kpkg"
# The package ships no modules.dep (postinst runs depmod); busybox's depmod writes one.
[ -f "$moddir/modules.dep" ] || "$BB" depmod -b "$work/k" "$kver"

root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,lib/modules}
cp "$BB" "$root/bin/busybox"

# Resolve a module name to its path in modules.dep ('-' and '_' are the same in names).
mod_path() {
	local n=${1//-/[-_]}
	awk -F: -v re="/${n}\\.ko(\\.[a-z]+)?$" '$1 ~ re {print $1; exit}' "$moddir/modules.dep"
}
# Load order: every dependency (modules.dep lists them, the last loads first) before the module.
order=()
add_mod() {
	local path=$1 deps d
	for d in "${order[@]}"; do [ "$d" = "$path" ] && return 0; done
	deps=$(awk -F': *' -v m="$path" '$1 == m {print $2; exit}' "$moddir/modules.dep")
	local rev=() x
	for x in $deps; do rev=("$x" "${rev[@]}"); done
	for x in "${rev[@]}"; do add_mod "$x"; done
	order+=("$path")
}
config=$work/k/boot/config-$kver
for m in $WANTED_MODULES; do
	if grep -qE "/${m//-/[-_]}\\.ko\$" "$moddir/modules.builtin"; then
		echo "guest-build: $m is built into the kernel" >&2
		continue
	fi
	p=$(mod_path "$m")
	[ -n "$p" ] || die "module $m not found in $kpkg"
	add_mod "$p"
done
: >"$root/etc/modules"
for p in "${order[@]}"; do
	cp "$moddir/$p" "$root/lib/modules/"
	echo "/lib/modules/$(basename "$p")" >>"$root/etc/modules"
done
echo "guest-build: modules: $(xargs -n1 basename <"$root/etc/modules" | tr '\n' ' ')" >&2
grep -q '^CONFIG_GPIO_SYSFS=y' "$config" || echo "guest-build: warning: no CONFIG_GPIO_SYSFS" >&2
cp "$config" "$root/etc/kernel-config"

# Debian's mke2fs/e2fsck (busybox's mke2fs makes no ext4) with their shared libraries.
copy_with_libs() {
	local bin=$1 lib
	cp "$bin" "$root/sbin/"
	for lib in $(ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
for t in $GUEST_TOOLS; do copy_with_libs "$t"; done
ln -s mke2fs "$root/sbin/mkfs.ext4"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
# glibc's loader is found through /lib64 on x86_64.
[ -e "$root/lib64" ] || ln -s lib "$root/lib64"

(cd "$root" && find . | "$BB" cpio -o -H newc 2>/dev/null) | gzip -6 >"$work/base.cpio.gz"
mv "$work/base.cpio.gz" "$CACHE/base.cpio.gz"
cp "$work/k/boot/vmlinuz-$kver" "$CACHE/vmlinuz"
cp "$BB" "$CACHE/busybox"
stamp_want "$kver" >"$CACHE/complete"
echo "guest-build: done ($kver, initramfs $(du -k "$CACHE/base.cpio.gz" | cut -f1) KiB)" >&2
