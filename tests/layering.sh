#!/bin/sh
# layering.sh - keeps the tree's layering true: each part includes only the
# headers of the parts below it (docs/hacking.md, "Parts and layers").
#
#   layering.sh [ROOT]     checks the tree at ROOT (default $top_srcdir)
#
# Run by `make check` with no argument: it checks the source tree, then
# checks a small tree with one forbidden include of each kind and fails
# unless every one of them is caught, so the check itself cannot rot into
# one that passes everything.

set -u

# part: the parts (and single headers of a part) it may include.  A part
# always may include its own headers.  Nothing else may be included.
RULES='
common:
tpm: common
pkcs11: common
directory: common pkcs11/p11-token.h
agent: common tpm/tpm-token.h pkcs11/p11-token.h
msgclient: common
witness: common pkcs11/p11-token.h
'

# A library's headers: the only places that may include them.  The part
# that wraps a library is the one that knows it.
LIBS='
tss2/ tpm
p11-kit/ pkcs11
microhttpd.h directory witness
sqlite3.h directory witness
libpq-fe.h directory
curl/ common/dirclient.c common/witclient.c
'

PARTS=$(printf '%s\n' "$RULES" | sed -n 's/^\([a-z0-9]*\):.*/\1/p')

# check ROOT: prints one line per violation, returns 1 if there were any.
check() {
	root=$1
	tmp=$(mktemp) || exit 99
	# header name -> part, for every header of every part
	for p in $PARTS; do
		[ -d "$root/$p" ] || continue
		for h in "$root/$p"/*.h; do
			[ -e "$h" ] || continue
			printf '%s %s\n' "${h##*/}" "$p"
		done
	done > "$tmp"
	bad=0
	dups=$(awk '{ n[$1]++ } END { for (h in n) if (n[h] > 1) print h }' \
	    "$tmp")
	for h in $dups; do
		echo "layering: $h exists in more than one part:" \
		    "$(awk -v h="$h" '$1 == h { printf " %s", $2 }' "$tmp")"
		bad=1
	done
	for p in $PARTS; do
		[ -d "$root/$p" ] || continue
		allowed=$(printf '%s\n' "$RULES" | sed -n "s/^$p:\(.*\)/\1/p")
		for f in "$root/$p"/*.c "$root/$p"/*.h; do
			[ -e "$f" ] || continue
			out=$(check_file "$f" "$p" "$allowed" "$tmp") || bad=1
			[ -n "$out" ] && printf '%s\n' "$out"
		done
	done
	# the include paths each part's Makefile fragment sets
	for p in $PARTS; do
		mk=$root/$p/$p.mk
		[ -f "$mk" ] || continue
		allowed=$(printf '%s\n' "$RULES" | sed -n "s/^$p:\(.*\)/\1/p" |
		    sed 's|/[^ ]*||g')
		for q in $(grep -o 'top_srcdir)/[a-z0-9]*' "$mk" |
		    sed 's|.*/||' | sort -u); do
			case " $p tests $allowed " in
			*" $q "*) ;;
			*) echo "layering: $p/$p.mk puts $q/ on the include" \
			    "path of $p/"; bad=1 ;;
			esac
		done
	done
	rm -f "$tmp"
	return $bad
}

# check_file FILE PART ALLOWED MAP
check_file() {
	awk -v file="$1" -v part="$2" -v allowed="$3" -v map="$4" \
	    -v libs="$LIBS" '
	BEGIN {
		while ((getline line < map) > 0) {
			split(line, f, " ")
			home[f[1]] = f[2]
		}
		n = split(allowed, a, " ")
		for (i = 1; i <= n; i++)
			ok[a[i]] = 1
		nl = split(libs, l, "\n")
		for (i = 1; i <= nl; i++) {
			if ((nw = split(l[i], w, " ")) < 2)
				continue
			lib[w[1]] = ""
			for (j = 2; j <= nw; j++)
				lib[w[1]] = lib[w[1]] " " w[j] " "
			users[w[1]] = w[2]
			for (j = 3; j <= nw; j++)
				users[w[1]] = users[w[1]] \
				    (j == nw ? " and " : ", ") w[j]
		}
		short = file
		sub(/.*\//, "", short)
		rel = part "/" short
		bad = 0
	}
	/^[ \t]*#[ \t]*include[ \t]*"/ {
		h = $0
		sub(/^[^"]*"/, "", h)
		sub(/".*/, "", h)
		if (h == "config.h")
			next
		if (!(h in home)) {
			printf "%s:%d: includes \"%s\", which no part has\n", \
			    rel, FNR, h
			bad = 1
			next
		}
		p = home[h]
		if (p != part && h ~ /-private\.h$/) {
			printf "%s:%d: includes %s/%s, private to %s/\n", \
			    rel, FNR, p, h, p
			bad = 1
		} else if (p != part && !((p) in ok) && !((p "/" h) in ok)) {
			printf "%s:%d: includes %s/%s: %s/ may not use %s/\n", \
			    rel, FNR, p, h, part, p
			bad = 1
		}
		next
	}
	/^[ \t]*#[ \t]*include[ \t]*</ {
		h = $0
		sub(/^[^<]*</, "", h)
		sub(/>.*/, "", h)
		for (k in lib) {
			if (!(h == k || (k ~ /\/$/ && index(h, k) == 1)))
				continue
			if (index(lib[k], " " part " ") > 0 ||
			    index(lib[k], " " rel " ") > 0)
				continue
			printf "%s:%d: includes <%s>, which only %s may use\n", \
			    rel, FNR, h, users[k]
			bad = 1
		}
	}
	END { exit bad }
	' "$1"
}

# A tree with one forbidden include of each kind: every one must be found.
self_test() {
	t=$(mktemp -d) || exit 99
	trap 'rm -rf "$t"' EXIT
	mkdir -p "$t/common" "$t/agent" "$t/msgclient" "$t/tpm" "$t/directory" \
	    "$t/pkcs11" "$t/witness"
	: > "$t/common/errors.h"
	: > "$t/common/envelope-private.h"
	: > "$t/agent/agent-ops.h"
	: > "$t/tpm/tpm-token.h"
	: > "$t/tpm/tpm-private.h"
	: > "$t/pkcs11/p11-token.h"
	printf '#include "config.h"\n#include "errors.h"\n#include "agent-ops.h"\n' \
	    > "$t/msgclient/a.c"
	printf '#include "tpm-private.h"\n' > "$t/agent/b.c"
	printf '#include "envelope-private.h"\n' > "$t/directory/c.c"
	printf '#include "tpm-token.h"\n' > "$t/directory/d.c"
	printf '#include <microhttpd.h>\n' > "$t/agent/e.c"
	printf '#include <curl/curl.h>\n' > "$t/common/f.c"
	printf '#include "nowhere.h"\n' > "$t/common/g.c"
	printf '#include <sqlite3.h>\n' > "$t/pkcs11/h.c"
	printf '#include "agent-ops.h"\n#include <libpq-fe.h>\n' \
	    > "$t/witness/i.c"
	printf '#include <curl/curl.h>\n' > "$t/witness/j.c"
	: > "$t/common/dup.h"
	: > "$t/agent/dup.h"
	# allowed: must not be reported
	printf '#include "errors.h"\n#include "p11-token.h"\n#include <stdio.h>\n' \
	    > "$t/pkcs11/ok.c"
	printf '#include "tpm-token.h"\n#include "p11-token.h"\n' \
	    > "$t/agent/ok.c"
	printf '%s\n' '#include "errors.h"' '#include "p11-token.h"' \
	    '#include <microhttpd.h>' '#include <sqlite3.h>' > "$t/witness/ok.c"
	printf '#include <curl/curl.h>\n' > "$t/common/witclient.c"
	printf '#include <curl/curl.h>\n' > "$t/common/dirclient.c"
	printf 'X_CPPFLAGS = -I$(top_srcdir)/agent\n' > "$t/msgclient/msgclient.mk"
	printf 'X_CPPFLAGS = -I$(top_srcdir)/tpm\n' > "$t/agent/agent.mk"
	out=$(check "$t")
	for want in 'msgclient/a.c:3: includes agent/agent-ops.h' \
	    'agent/b.c:1: includes tpm/tpm-private.h, private' \
	    'directory/c.c:1: includes common/envelope-private.h, private' \
	    'directory/d.c:1: includes tpm/tpm-token.h' \
	    'agent/e.c:1: includes <microhttpd.h>' \
	    'common/f.c:1: includes <curl/curl.h>' \
	    'common/g.c:1: includes "nowhere.h"' \
	    'dup.h exists in more than one part' \
	    'pkcs11/h.c:1: includes <sqlite3.h>' \
	    'witness/i.c:1: includes agent/agent-ops.h' \
	    'witness/i.c:2: includes <libpq-fe.h>' \
	    'witness/j.c:1: includes <curl/curl.h>' \
	    'msgclient/msgclient.mk puts agent/ on the include path'; do
		case $out in
		*"$want"*) ;;
		*) echo "layering self-test: not caught: $want"; return 1 ;;
		esac
	done
	case $out in
	*ok.c:*|*agent.mk*|*witclient.c:*|*dirclient.c:*)
		echo "layering self-test: an allowed include was reported"
		printf '%s\n' "$out"
		return 1 ;;
	esac
	return 0
}

if [ $# -gt 0 ]; then
	check "$1"
	exit $?
fi
root=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
check "$root" || { echo "layering: see docs/hacking.md"; exit 1; }
self_test || exit 1
echo "layering: every include stays within its part's layers"
