#!/bin/sh
# test-pkcs11.sh - the PKCS#11 backend against throwaway tokens.
#
# SoftHSM2: creates four tokens in a fresh temporary directory ("devid"
# for the hpke-p256 keys, "devrsa" for rsa-oaep-sha256 and existing keys,
# "devpin" for the wrong-PIN test, "devsig" for a signing key alone),
# runs tests/integration/test_pkcs11 in three separate processes (create,
# use, loss), checks the tokens' signatures with the openssl tool, and
# asks pkcs11-tool, independently of devid, whether the private keys are
# "never extractable" and whether "devsig" holds no encryption key.
#
# tpm2-pkcs11 on a software TPM: SoftHSM 2.6 does RSA-OAEP only with SHA-1,
# so rsa-oaep-sha256 decryption inside a token is tested on a second module
# that has no ECDH (devid must choose RSA-OAEP by itself there): swtpm,
# tpm2-abrmd on a private D-Bus session bus, a token made by tpm2_ptool.
#
# A missing tool is a failure, not a skip.
set -eu

prog=test-pkcs11

fail() {
	echo "$prog: FAIL: $*" >&2
	exit 1
}

: "${top_srcdir:?run through make check (top_srcdir is not set)}"
: "${top_builddir:?run through make check (top_builddir is not set)}"
# need PATH WHAT: PATH (from configure) must exist and be usable.
need() {
	if [ -z "$1" ] || { [ ! -x "$1" ] && [ ! -f "$1" ]; }; then
		fail "$2 not found ('$1'): install it and re-run configure"
	fi
}
need "${SOFTHSM2_MODULE:-}" "the SoftHSM2 module (Debian package softhsm2)"
need "${SOFTHSM2_UTIL:-}" "softhsm2-util (Debian package softhsm2)"
need "${PKCS11_TOOL:-}" "pkcs11-tool (Debian package opensc)"
need "${OPENSSL_BIN:-}" "openssl (Debian package openssl)"
bin=$top_builddir/tests/integration/test_pkcs11
[ -x "$bin" ] || fail "$bin is not built (make check builds it)"

for tool in swtpm tpm2_getcap dbus-daemon tpm2-abrmd tpm2_ptool pkg-config; do
	command -v "$tool" >/dev/null 2>&1 ||
		fail "$tool not found: run swtpm-ci/install-deps"
done
tpm_module=$(pkg-config --variable=p11_module_path p11-kit-1)/libtpm2_pkcs11.so
[ -f "$tpm_module" ] ||
	fail "tpm2-pkcs11 module not found ('$tpm_module'): install libtpm2-pkcs11-1"

dir=$(mktemp -d -t devid-p11.XXXXXX) || fail "mktemp failed"
dbus_pid=""
abrmd_pid=""
cleanup() {
	[ -z "$abrmd_pid" ] || kill "$abrmd_pid" 2>/dev/null || true
	[ -z "$dbus_pid" ] || kill "$dbus_pid" 2>/dev/null || true
	"$top_srcdir/swtpm-ci/swtpm-stop" --kill "$dir/tpm" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

export SOFTHSM2_UTIL
for label in devid devrsa devpin devsig; do
	line=$("$top_srcdir/swtpm-ci/softhsm-token" "$dir" "$label" 1234 5678) ||
		fail "cannot create SoftHSM token '$label'"
done
case $line in
SOFTHSM2_CONF=*) SOFTHSM2_CONF=${line#SOFTHSM2_CONF=} ;;
*) fail "softhsm-token printed '$line'" ;;
esac
export SOFTHSM2_CONF
P11_TEST_DIR=$dir
export P11_TEST_DIR
(umask 077 && printf '1234\n' >"$dir/pin")

"$bin" create || fail "test_pkcs11 create"
"$bin" use || fail "test_pkcs11 use"

# The signatures made in the tokens, checked by the openssl tool with the
# public keys exported when the keys were created.
# verify_sig PREFIX: PREFIX.der, PREFIX-digest.bin (or digest.bin for
# "sig") and PREFIX-sig.bin (or sig.bin).
verify_sig() {
	case $1 in
	sig) digest=$dir/digest.bin sig=$dir/sig.bin ;;
	*) digest=$dir/$1-digest.bin sig=$dir/$1-sig.bin ;;
	esac
	"$OPENSSL_BIN" pkeyutl -verify -pubin -keyform DER -inkey "$dir/$1.der" \
	    -in "$digest" -sigfile "$sig" >"$dir/verify.out" 2>&1 ||
		{ cat "$dir/verify.out" >&2; fail "openssl rejects the signature ($1)"; }
	grep -q "Signature Verified Successfully" "$dir/verify.out" ||
		fail "openssl did not verify the signature ($1)"
}
verify_sig sig
verify_sig sigonly

"$bin" loss || fail "test_pkcs11 loss"

# Independent inspection: pkcs11-tool (not devid) must call the device keys
# "always sensitive" and "never extractable".
# check_keys MODULE TOKEN LABEL...: the private keys LABEL... on TOKEN.
check_keys() {
	module=$1
	token=$2
	shift 2
	out=$dir/objects.$token
	"$PKCS11_TOOL" --module "$module" --token-label "$token" \
	    --login --pin 1234 -O >"$out" 2>&1 ||
		{ cat "$out" >&2; fail "pkcs11-tool -O on '$token'"; }
	for key in "$@"; do
		access=$(awk -v want="$key" '
			/^[A-Za-z].*Object/ { priv = ($0 ~ /^Private Key Object/); label = "" }
			/^[ \t]*label:/ { sub(/^[ \t]*label:[ \t]*/, ""); label = $0 }
			/^[ \t]*Access:/ { if (priv && label == want) print }
		' "$out")
		[ -n "$access" ] ||
			{ cat "$out" >&2; fail "no private key '$key' on '$token'"; }
		case $access in
		*"never extractable"*) ;;
		*) fail "'$key' on '$token' is not never extractable: $access" ;;
		esac
		case $access in
		*"always sensitive"*) ;;
		*) fail "'$key' on '$token' is not always sensitive: $access" ;;
		esac
	done
}
# devid's own keys on "devid", the existing ones on "devrsa".
check_keys "$SOFTHSM2_MODULE" devid devid-sig devid-enc
check_keys "$SOFTHSM2_MODULE" devrsa card-sig card-enc
# The signing key alone on "devsig": one key pair, no encryption key.
check_keys "$SOFTHSM2_MODULE" devsig head-sig
[ "$(grep -c '^Private Key Object' "$dir/objects.devsig")" -eq 1 ] ||
	{ cat "$dir/objects.devsig" >&2; fail "'devsig' holds more than one private key"; }
! grep -q 'label:.*-enc' "$dir/objects.devsig" ||
	{ cat "$dir/objects.devsig" >&2; fail "'devsig' holds an encryption key"; }

# --- tpm2-pkcs11 ---
tcti=$("$top_srcdir/swtpm-ci/swtpm-start" "$dir/tpm") || fail "swtpm-start"
dbus-daemon --session --fork --nopidfile --print-address=1 --print-pid=1 \
    >"$dir/dbus.out" 2>"$dir/dbus.err" ||
	{ cat "$dir/dbus.err" >&2; fail "cannot start a D-Bus session bus"; }
DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p "$dir/dbus.out")
dbus_pid=$(sed -n 2p "$dir/dbus.out")
export DBUS_SESSION_BUS_ADDRESS
# tpm2-abrmd keeps tpm2-pkcs11 within swtpm's three object slots.
tpm2-abrmd --session --allow-root --tcti="$tcti" >"$dir/abrmd.log" 2>&1 &
abrmd_pid=$!
TPM2TOOLS_TCTI=tabrmd:bus_type=session
TPM2_PKCS11_TCTI=tabrmd:bus_type=session
TPM2_PKCS11_STORE=$dir/tpm2-store
TPM2_PKCS11_LOG_LEVEL=0
export TPM2TOOLS_TCTI TPM2_PKCS11_TCTI TPM2_PKCS11_STORE TPM2_PKCS11_LOG_LEVEL
tries=0
until tpm2_getcap properties-fixed >/dev/null 2>&1; do
	tries=$((tries + 1))
	if [ "$tries" -gt 100 ] || ! kill -0 "$abrmd_pid" 2>/dev/null; then
		cat "$dir/abrmd.log" >&2
		fail "tpm2-abrmd did not answer within 10 s"
	fi
	sleep 0.1
done
mkdir "$TPM2_PKCS11_STORE"
if ! { tpm2_ptool init &&
    tpm2_ptool addtoken --pid=1 --sopin=5678 --userpin=1234 \
	--label=tpmtok; } >"$dir/ptool.log" 2>&1; then
	cat "$dir/ptool.log" >&2
	fail "tpm2_ptool could not create the token"
fi

# tpm2-pkcs11 1.9 leaks in its own OpenSSL calls; devid's leaks still count.
# Full stacks (no fast unwinding) let the suppression see the module's frames.
printf 'leak:libtpm2_pkcs11.so\n' >"$dir/lsan-tpm2-pkcs11.supp"
(
	P11_TPM_MODULE=$tpm_module
	LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$dir/lsan-tpm2-pkcs11.supp
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0
	export P11_TPM_MODULE LSAN_OPTIONS ASAN_OPTIONS
	"$bin" tpm-create || fail "test_pkcs11 tpm-create"
	"$bin" tpm-use || fail "test_pkcs11 tpm-use"
)
check_keys "$tpm_module" tpmtok devid-sig devid-enc

echo "$prog: PASS"
