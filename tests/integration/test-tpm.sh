#!/bin/sh
# test-tpm.sh - the TPM token against swtpm.
#
# Starts its own swtpm instances in a temporary directory and runs
# tests/integration/test_tpm in phases, each a separate process:
#   create  fresh keys; sign (OpenSSL verifies), ECDH (equals OpenSSL's),
#           HPKE open through the TPM, attributes read back, parent
#           pinning, a swtpm restart between two operations
#   reload  the same keys in a new process
#   (here)  the key files checked with openssl asn1parse and tpm2_print,
#           the storage parent compared with one made by tpm2-tools
#   kill    swtpm killed: a prompt ERR_TOKEN_NOT_PRESENT
#   pin     on a second, fresh swtpm (3 tries, 1000 s recovery): PINs,
#           the dictionary-attack counter, lockout
# Every exit path stops every swtpm it started.  A missing tool fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
ci="$top_srcdir/swtpm-ci"
prog="$top_builddir/tests/integration/test_tpm"
openssl_bin=${OPENSSL_BIN:-openssl}
if [ -n "${SWTPM:-}" ]; then
	export SWTPM
fi

fail()
{
	echo "test-tpm: FAIL: $*" >&2
	exit 1
}

for tool in "$openssl_bin" tpm2_print tpm2_createprimary tpm2_readpublic \
    tpm2_flushcontext; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool not found"
done
[ -x "$prog" ] || fail "$prog not built (make check builds it)"

work=$(mktemp -d -t devid-tpm.XXXXXX)
cleanup()
{
	"$ci/swtpm-stop" "$work/tpm-a" >/dev/null 2>&1 || true
	"$ci/swtpm-stop" "$work/tpm-b" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Bounded: a hung TPM must not hang the suite.
run()
{
	echo "== test_tpm $1"
	timeout 120 "$prog" "$1" || fail "test_tpm $1 (exit $?)"
}

# --- TPM A: keys without PIN ---
mkdir -p "$work/state-a"
tcti=$("$ci/swtpm-start" --da-limits 3 1000 1 "$work/tpm-a")
export DEVID_TCTI="$tcti" DEVID_TPM_STATE="$work/state-a"
export DEVID_SWTPM_DIR="$work/tpm-a" DEVID_SWTPM_CI="$ci"
run create
run reload

echo "== key files"
for f in tpm-sig.pem tpm-enc.pem; do
	pem="$work/state-a/$f"
	mode=$(stat -c %a "$pem")
	[ "$mode" = 600 ] || fail "$f has mode $mode, not 600"
	head -n 1 "$pem" | grep -qx -- '-----BEGIN TSS2 PRIVATE KEY-----' ||
	    fail "$f is not a TSS2 PRIVATE KEY PEM"
	asn=$("$openssl_bin" asn1parse -in "$pem") ||
	    fail "openssl asn1parse cannot read $f"
	echo "$asn"
	echo "$asn" | grep -q 'OBJECT *:2\.23\.133\.10\.1\.3$' ||
	    fail "$f: no loadable-key OID 2.23.133.10.1.3"
	echo "$asn" | grep -q 'BOOLEAN *:255$' ||
	    fail "$f: emptyAuth TRUE missing on a key without PIN"
	echo "$asn" | grep -q 'INTEGER *:40000001$' ||
	    fail "$f: parent is not 0x40000001"
	# tpm2-tools parses it with its own TSS2 key reader.
	attrs=$(TPM2TOOLS_TCTI="$tcti" tpm2_print -t TSSPRIVKEY_OBJ "$pem" |
	    sed -n 's/^ *value: \(.*fixedtpm.*\)$/\1/p' | head -n 1)
	echo "$f: tpm2_print attributes: $attrs"
	for a in fixedtpm fixedparent sensitivedataorigin userwithauth; do
		echo "|$attrs|" | grep -q "|$a|" || fail "$f: no $a"
	done
	if echo "|$attrs|" | grep -q '|noda|'; then
		fail "$f: noDA is set"
	fi
done

echo "== storage parent is the standard H-2 key"
TPM2TOOLS_TCTI="$tcti" tpm2_createprimary -Q -C o -g sha256 \
    -G ecc256:aes128cfb \
    -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt' \
    -c "$work/h2.ctx" || fail "tpm2_createprimary"
TPM2TOOLS_TCTI="$tcti" tpm2_readpublic -Q -c "$work/h2.ctx" -n "$work/h2.name" ||
    fail "tpm2_readpublic"
TPM2TOOLS_TCTI="$tcti" tpm2_flushcontext -t || fail "tpm2_flushcontext"
h2=$(od -An -v -tx1 "$work/h2.name" | tr -d ' \n')
pinned=$(cat "$work/state-a/tpm-parent.name")
[ "$h2" = "$pinned" ] || fail "pinned parent $pinned is not the H-2 key $h2"

run kill

# --- TPM B: fresh, for exact dictionary-attack counts ---
mkdir -p "$work/state-b"
tcti=$("$ci/swtpm-start" --da-limits 3 1000 1 "$work/tpm-b")
export DEVID_TCTI="$tcti" DEVID_TPM_STATE="$work/state-b"
export DEVID_SWTPM_DIR="$work/tpm-b"
run pin
asn=$("$openssl_bin" asn1parse -in "$work/state-b/tpm-sig.pem")
if echo "$asn" | grep -q 'BOOLEAN'; then
	fail "emptyAuth present on a key with a PIN"
fi

echo "test-tpm: all passed"
