#!/usr/bin/env bash
# Tree rules a reviewer checks first: banned functions, file length, purpose line.
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

if command -v cppcheck >/dev/null; then
	out=$(cppcheck --quiet --enable=warning,performance,portability --inline-suppr -D__GNUC__ \
		-Iinclude --error-exitcode=1 io devices runtime tools hostsim 2>&1)
	if [ $? -eq 0 ]; then pass=$((pass + 1)); echo "ok - cppcheck"; else fail=$((fail + 1)); echo "not ok - cppcheck:"; echo "$out"; fi
else
	echo "ok - cppcheck not installed, skipped"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
