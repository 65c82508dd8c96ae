#!/bin/sh
# test-msg-demo.sh - runs swtpm-ci/demo (the README's first command) on
# the build under test, without installing or rebuilding anything, and
# checks that every step worked.
set -eu
prog=test-msg-demo
: "${top_srcdir:?run through make check (top_srcdir is not set)}"
: "${top_builddir:?run through make check (top_builddir is not set)}"

out=$(mktemp -t devid-demo-out.XXXXXX) || exit 1
trap 'rm -f "$out"' EXIT
rc=0
sh "$top_srcdir/swtpm-ci/demo" --build-dir "$top_builddir" --no-deps \
    >"$out" 2>&1 || rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then
	echo "$prog: FAIL: the demo exited with $rc" >&2
	exit 1
fi
for want in "demo: every step worked." \
    "device_added" "'card'" "lunch at noon" "Noon is fine" \
    "has a device you have not accepted" " stale "; do
	grep -qF -- "$want" "$out" || {
		echo "$prog: FAIL: the demo did not show '$want'" >&2
		exit 1
	}
done
if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$out"; then
	echo "$prog: FAIL: sanitizer report" >&2
	exit 1
fi
echo "$prog: PASS"
