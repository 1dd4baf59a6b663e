#!/usr/bin/env bash
# ABI check: libvfurt.so exports exactly the names io/libvfurt.map lists, and libvfurt.a's other globals carry the internal prefix.
#
# usage: tests/check_abi.sh LIBVFURT.so LIBVFURT.a io/libvfurt.map
# A new export is a deliberate change: add its name to the map (in a new
# version node once a release is out), and this test passes again.
set -u
so=$1 a=$2 map=$3
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$so" | awk 'NF == 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/exported"
# names in the map's global: sections (one per line, "name;")
awk '/global:/ { g = 1; next } /local:/ { g = 0 } g && /^[ \t]*[A-Za-z_][A-Za-z0-9_]*;/ { gsub(/[ \t;]/, ""); print }' \
	"$map" | sort -u >"$tmp/listed"
if grep -q '\*' <(awk '/global:/,/local:/' "$map"); then
	echo "not ok - $map uses a wildcard in a global: section; list every name"
	fail=1
fi
if ! diff -u "$tmp/listed" "$tmp/exported" >"$tmp/diff"; then
	echo "not ok - exports differ from $map (- listed only, + exported only):"
	grep '^[-+][a-z]' "$tmp/diff"
	fail=1
else
	echo "ok - $(wc -l <"$tmp/exported") exports, each listed in $map"
fi
# every global the static library defines is public (vfurt_, exported) or
# internal (vfr_): nothing an embedding program could collide with
# (names starting with "__" are the compiler's: a sanitizer's __odr_asan.*)
nm -g --defined-only "$a" | awk 'NF == 3 && $3 !~ /^__/ { print $3 }' | sort -u >"$tmp/static"
bad=$(comm -23 "$tmp/static" "$tmp/exported" | grep -v '^vfr_' || true)
if [ -n "$bad" ]; then
	echo "not ok - globals of $(basename "$a") neither exported nor vfr_-prefixed:"
	echo "$bad"
	fail=1
else
	echo "ok - every other global of $(basename "$a") is vfr_-prefixed"
fi
exit $fail
