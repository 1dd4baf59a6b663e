#!/usr/bin/env bash
# Documentation checks: relative Markdown links resolve inside the tree, anchors name headings, README snippet matches.
#
# usage: tests/docs_links.sh SOURCE_DIR
# Every [text](target) outside code in every Markdown file of the tree:
#  - a target with a scheme (https:, mailto:, ...) fails: the documentation
#    does not link outside the repository;
#  - a path must exist and stay inside the tree;
#  - #anchor (alone or after a .md path) must be the GitHub id of a heading
#    of that file (lowercase, punctuation dropped, spaces to hyphens, -N for
#    repeats).
# And the C block under README.md's "## Embedding" must be an exact excerpt
# of examples/embed_gpio.c.
set -u
root=$(cd "${1:-.}" && pwd)
cd "$root" || exit 1
fail=0
checked=0

bad() {
	fail=$((fail + 1))
	echo "not ok - $1"
}

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.md' | sort -u)
else
	mapfile -t files < <(find . -name '*.md' -not -path './build*' -not -path './.git/*' | sed 's|^\./||' | sort)
fi

# links FILE: "LINE<TAB>TARGET" for each inline link outside fenced code and code spans.
links() {
	awk '
	/^[ \t]*(```|~~~)/ { fence = !fence; next }
	fence { next }
	{
		line = $0
		gsub(/`[^`]*`/, "", line)
		while (match(line, /\]\([^) \t]+\)/)) {
			print NR "\t" substr(line, RSTART + 2, RLENGTH - 3)
			line = substr(line, RSTART + RLENGTH)
		}
	}' "$1"
}

# anchors FILE: the GitHub ids of its headings, one a line.
anchors() {
	awk '
	/^[ \t]*(```|~~~)/ { fence = !fence; next }
	fence { next }
	/^#+[ \t]/ {
		h = $0
		sub(/^#+[ \t]+/, "", h)
		sub(/[ \t]+#+[ \t]*$/, "", h)
		h = tolower(h)
		gsub(/[^a-z0-9 _-]/, "", h)
		gsub(/ /, "-", h)
		id = h
		if (h in seen)
			id = h "-" seen[h]
		seen[h]++
		print id
	}' "$1"
}

for f in "${files[@]}"; do
	dir=$(dirname "$f")
	while IFS=$'\t' read -r line target; do
		[ -n "$target" ] || continue
		checked=$((checked + 1))
		where="$f:$line: ($target)"
		if [[ $target =~ ^[A-Za-z][A-Za-z0-9+.-]*: ]]; then
			bad "$where links outside the repository"
			continue
		fi
		path=${target%%#*}
		anchor=
		[[ $target == *'#'* ]] && anchor=${target#*#}
		if [ -z "$path" ]; then
			dest=$f
		else
			dest=$(realpath -m "$dir/$path")
			case "$dest" in
			"$root" | "$root"/*) ;;
			*)
				bad "$where leaves the repository"
				continue
				;;
			esac
			if [ ! -e "$dest" ]; then
				bad "$where: no such file"
				continue
			fi
		fi
		if [ -n "$anchor" ]; then
			if [[ $dest != *.md ]]; then
				bad "$where: anchor into a file that is not Markdown"
			elif ! anchors "$dest" | grep -qxF -- "$anchor"; then
				bad "$where: no heading with id #$anchor"
			fi
		fi
	done < <(links "$f")
done
[ "$fail" -eq 0 ] && echo "ok - $checked links in ${#files[@]} Markdown files resolve"

# The front page's embedding snippet is the example program, or an exact excerpt of it.
if [ -f README.md ] && [ -f examples/embed_gpio.c ]; then
	snippet=$(awk '
	/^## / { in_sec = ($0 ~ /^## Embedding/) }
	in_sec && /^```c[ \t]*$/ { grab = 1; next }
	grab && /^```/ { exit }
	grab { print }' README.md)
	example=$(cat examples/embed_gpio.c)
	if [ -z "$snippet" ]; then
		bad "README.md: no \`\`\`c block under \"## Embedding\""
	elif [[ $example != *"$snippet"* ]]; then
		bad "README.md: the embedding snippet is not an exact excerpt of examples/embed_gpio.c"
	else
		echo "ok - README.md's embedding snippet ($(wc -l <<<"$snippet") lines) is in examples/embed_gpio.c"
	fi
fi

[ "$fail" -eq 0 ]
