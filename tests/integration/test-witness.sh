#!/bin/sh
# test-witness.sh - devid-witness on loopback, driven by
# tests/integration/test_witness through common/witclient.
#
# Makes a private temporary directory for the witness's key, state and
# log, runs the test program in it, and removes it on every exit path
# (the program kills every witness it started; they also die with it).
# Then the same once more with the witness key in a throwaway SoftHSM2
# token (CKM_EDDSA), made with swtpm-ci/softhsm-token.  A missing tool is
# a failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
export top_builddir
prog=$top_builddir/tests/integration/test_witness
bin=$top_builddir/witness/devid-witness

fail() {
	echo "test-witness: FAIL: $*" >&2
	exit 1
}

[ -x "$prog" ] || fail "$prog not built (make check builds it)"
[ -x "$bin" ] || fail "$bin not built"
SOFTHSM2_MODULE=${SOFTHSM2_MODULE:-/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so}
[ -f "$SOFTHSM2_MODULE" ] || fail "the SoftHSM2 module is missing"
if [ -n "${SOFTHSM2_UTIL:-}" ]; then
	export SOFTHSM2_UTIL
else
	command -v softhsm2-util >/dev/null 2>&1 ||
		fail "softhsm2-util not found"
fi

T=$(mktemp -d -t devid-witness.XXXXXX) || fail "mktemp failed"
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM
chmod 700 "$T"

"$bin" --help | grep -q 'add-checkpoint' || fail "devid-witness --help"
for cmd in init vkey run status evidence; do
	"$bin" "$cmd" --help | grep -q "Usage: devid-witness $cmd" ||
		fail "devid-witness $cmd --help"
done
if "$bin" run --key "$T/none" --name w --state "$T/s" \
    --listen 127.0.0.1:0 2>/dev/null; then
	fail "run without --log started"
fi

# run DIR: the test program on DIR, the witness's log shown on failure.
run() {
	rc=0
	"$prog" "$1" || rc=$?
	if [ $rc -ne 0 ] && [ -f "$1/witness.log" ]; then
		echo "--- devid-witness log:" >&2
		cat "$1/witness.log" >&2
	fi
	[ $rc -eq 0 ] || exit $rc
}

mkdir -m 700 "$T/file" "$T/token" "$T/hsm"
run "$T/file"

conf=$("$top_srcdir/swtpm-ci/softhsm-token" "$T/hsm" witness 2468 86421357) ||
	fail "cannot create a SoftHSM2 token"
export "${conf?}"
printf '2468\n' > "$T/hsm/pin"
chmod 600 "$T/hsm/pin"
DEVID_TEST_WITNESS_KEY="pkcs11:token=witness;object=wit"
DEVID_TEST_WITNESS_KEY="$DEVID_TEST_WITNESS_KEY?module-path=$SOFTHSM2_MODULE"
DEVID_TEST_WITNESS_KEY="$DEVID_TEST_WITNESS_KEY&pin-source=file:$T/hsm/pin"
export DEVID_TEST_WITNESS_KEY
run "$T/token"
echo "test-witness: file and token keys: ok"
