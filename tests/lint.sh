#!/usr/bin/env bash
# Tree rules a reviewer checks first: banned functions, file length, purpose line, layer includes.
set -u
cd "$1"
pass=0
fail=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
[ -n "$files" ] || files=$(find include io devices runtime tools hostsim tests bench -name '*.[ch]' 2>/dev/null)

banned=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok)\s*\(' $files | grep -v '^tests/lint.sh')
if [ -z "$banned" ]; then pass=$((pass + 1)); echo "ok - no banned functions"; else fail=$((fail + 1)); echo "not ok - banned functions:"; echo "$banned"; fi

long=""
for f in $files; do
	n=$(wc -l <"$f")
	[ "$n" -gt 1500 ] && long="$long $f($n)"
done
if [ -z "$long" ]; then pass=$((pass + 1)); echo "ok - no file over 1500 lines"; else fail=$((fail + 1)); echo "not ok - files over 1500 lines:$long"; fi

nopurpose=""
for f in $files; do
	head -1 "$f" | grep -q '^/\*' || nopurpose="$nopurpose $f"
done
if [ -z "$nopurpose" ]; then pass=$((pass + 1)); echo "ok - every file starts with a purpose comment"; else fail=$((fail + 1)); echo "not ok - no purpose line:$nopurpose"; fi

# Layers (docs/design.md, "Rules between the layers"): the build gives io/, devices/ and
# runtime/ each only include/ on its include path, so another layer's internal header
# does not compile. A relative ("../") or absolute include would step around that.
layer_files=$(printf '%s\n' $files | grep -E '^(io|devices|runtime)/')
pathinc=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^">]*\.\./|/)' $layer_files)
if [ -z "$pathinc" ]; then pass=$((pass + 1)); echo "ok - no include by a relative or absolute path in io/, devices/, runtime/"; else fail=$((fail + 1)); echo "not ok - includes by path (name the header bare, or see CMakeLists.txt for what a layer may see):"; echo "$pathinc"; fi

# Devices reach whoever serves them through device.h only: no host header (the link
# check, vfurt_layer_check_devices, catches calls; this catches the rest).
device_files=$(printf '%s\n' $layer_files | grep '^devices/')
hostinc=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]vfurt/(runtime|server|client|engine)\.h[">]' $device_files)
if [ -z "$hostinc" ]; then pass=$((pass + 1)); echo "ok - devices/ include no host header"; else fail=$((fail + 1)); echo "not ok - devices/ include host headers:"; echo "$hostinc"; fi

if command -v cppcheck >/dev/null; then
	# -I.: runtime/'s "io/fault.h" resolves here as through the build's forwarding headers
	out=$(cppcheck --quiet --enable=warning,performance,portability --inline-suppr -D__GNUC__ \
		-Iinclude -I. --error-exitcode=1 io devices runtime tools hostsim 2>&1)
	if [ $? -eq 0 ]; then pass=$((pass + 1)); echo "ok - cppcheck"; else fail=$((fail + 1)); echo "not ok - cppcheck:"; echo "$out"; fi
else
	echo "ok - cppcheck not installed, skipped"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
