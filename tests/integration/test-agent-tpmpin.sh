#!/bin/sh
# test-agent-tpmpin.sh - devid-agent with TPM device keys protected by a
# PIN (the keys' auth value), on a fresh swtpm, against a real
# devid-directory on loopback.
#
#  - init with --pin-file makes keys with a PIN; register; the pin_file
#    setting is then removed, so `run` has no PIN source and is locked
#    (for a TPM the lock shows once the key is first used, which the
#    watcher's login does at start): the watcher cannot log in, no PIN
#    reaches the TPM, and the staleness alert fires after max_stale;
#  - `unlock --pin-file` with a wrong PIN fails naming the rejected PIN,
#    the agent stays locked and the TPM's dictionary-attack counter moves
#    by exactly one;
#  - unlock with the right PIN: unlocked, the counter does not move, a
#    check succeeds, the stale alert clears, the token signs (status
#    counters) and a sign request is answered;
#  - lock: locked again, the PIN is forgotten (a sign request over the
#    socket answers `locked`, and no PIN reaches the TPM); no PIN appears
#    in the agent's log.
#
# The dictionary-attack counter (TPM2_PT_LOCKOUT_COUNTER) is read with
# tpm2_getcap through the swtpm socket while the agent runs: the swtpm
# TCTI opens a connection per command, so both clients take turns, and
# TPM2_GetCapability needs no session or object slot (the agent keeps
# two keys and one session loaded).  swtpm-start --da-limits sets 8 tries
# (one wrong PIN cannot lock the TPM), one failure forgiven every 600 s
# (so the counter cannot heal while the test runs) and 10 s lockout
# recovery.
set -eu
prog=test-agent-tpmpin
. "$top_srcdir/tests/integration/test-agent-lib.sh"
command -v tpm2_dictionarylockout >/dev/null 2>&1 ||
	fail "tpm2_dictionarylockout not found: run swtpm-ci/install-deps"

# da_counter: the TPM's dictionary-attack counter, in decimal.
da_counter() {
	_v=$(TPM2TOOLS_TCTI=$TCTI tpm2_getcap properties-variable |
	    sed -n 's/^TPM2_PT_LOCKOUT_COUNTER:[[:space:]]*//p') ||
		fail "tpm2_getcap properties-variable failed"
	[ -n "$_v" ] || fail "tpm2_getcap shows no TPM2_PT_LOCKOUT_COUNTER"
	echo $((_v))
}

# sign_req NAME TEXT: a sign request with a devid-login-v1 transcript.
sign_req() {
	rawcall "$1" "{\"op\":\"sign\",\"transcript\":\"$(tagged_b64 devid-login-v1 "$2")\"}"
}

# wait_locked NAME True|False MAX_S
wait_locked() {
	t0=$(now_ms)
	until [ "$(js "$1" status "d['locked']")" = "$2" ]; do
		[ $(($(now_ms) - t0)) -lt $(($3 * 1000)) ] ||
			fail "$1: locked is not $2 within $3 s: $(ag "$1" status)"
		sleep 0.1
	done
}

dir_start
account_add alice@example.org
DIR_ID=$(dir_id 2>/dev/null)
[ ${#DIR_ID} -eq 64 ] || fail "no directory id"
TCTI=$("$CI/swtpm-start" --da-limits 8 600 10 "$T/tpm") ||
	fail "swtpm did not start"
[ "$(TPM2TOOLS_TCTI=$TCTI tpm2_getcap properties-variable |
    sed -n 's/^TPM2_PT_MAX_AUTH_FAIL:[[:space:]]*//p')" = 0x8 ] ||
	fail "the dictionary-attack limits were not set"
[ "$(da_counter)" -eq 0 ] || fail "a fresh TPM has failed authorizations"

note "init the TPM laptop with a PIN, register it"
init_device A alice@example.org laptop tpm2 --tcti "$TCTI" \
    --pin-file "$T/pin" --check-interval 1 --long-poll 0 --max-stale 4 \
    --http-timeout 10
python3 - "$T/A/data/devid/tpm-sig.pem" <<'PYX' || fail "the signing key has no PIN"
import base64, sys
der = base64.b64decode("".join(l for l in open(sys.argv[1]) if not l.startswith("-----")))
# TSSPrivKey ::= SEQUENCE { type OID, emptyAuth [0] EXPLICIT BOOLEAN
# OPTIONAL, parent INTEGER, ... }: a key with a PIN has no emptyAuth TRUE
# (a0 03 01 01 ff) after the OID 2.23.133.10.1.3.
oid = bytes.fromhex("06066781050a0103")
i = der.index(oid) + len(oid)
assert der[i] == 0x02 or der[i:i + 5] == bytes.fromhex("a003010100"), \
    der[i:i + 5].hex()
PYX
register_device A
grep -q '^pin_file = ' "$T/A/cfg/devid/agent.conf" ||
	fail "init did not record the PIN file"
sed -i '/^pin_file/d' "$T/A/cfg/devid/agent.conf"

note "run without a PIN source: locked, the watcher cannot log in"
agent_start A
wait_locked A True 5
r=$(sign_req A locked-1)
echo "$r" | grep -q '"code": "locked"' || fail "a locked agent signed: $r"
sleep 1.5
[ "$(js A status "d['token']['signs']")" -eq 0 ] ||
	fail "the locked agent signed: $(ag A status)"
js A status "d['watcher']['last_error']" | grep -q locked ||
	fail "the watcher does not say it is locked: $(ag A status)"
t_start=$(js A status "d['watcher']['last_success']")
[ "$(da_counter)" -eq 0 ] || fail "the locked agent sent a PIN to the TPM"
ms=$(wait_alert A stale 12)
note "stale alert while locked after $ms ms (max_stale 4 s)"
[ "$(js A status "d['watcher']['last_success']")" -eq "$t_start" ] ||
	fail "a check succeeded while locked"
[ "$(js A status "d['locked']")" = True ] || fail "A is not locked"

note "unlock with a wrong PIN: refused, still locked, one DA failure"
(umask 077 && echo wrong-7e2d > "$T/badpin")
if ag A unlock --pin-file "$T/badpin" >"$T/unlock.out" 2>&1; then
	fail "a wrong PIN unlocked"
fi
grep -q "rejected the PIN" "$T/unlock.out" ||
	fail "wrong-PIN message: $(cat "$T/unlock.out")"
grep -q "1 of 8 failed authorizations" "$T/unlock.out" ||
	fail "the message does not give the DA state: $(cat "$T/unlock.out")"
note "$(cat "$T/unlock.out")"
[ "$(js A status "d['locked']")" = True ] || fail "a wrong PIN unlocked"
da=$(da_counter)
[ "$da" -eq 1 ] || fail "the DA counter is $da after one wrong PIN, not 1"
r=$(sign_req A wrong-1)
echo "$r" | grep -q '"code": "locked"' ||
	fail "the rejected PIN was kept: $r"
[ "$(da_counter)" -eq 1 ] || fail "the rejected PIN was tried again"
[ "$(open_alerts A stale)" -eq 1 ] || fail "the stale alert closed"

note "unlock with the right PIN: a check succeeds, the alert clears"
t_unlock=$(date +%s)
ag A unlock --pin-file "$T/pin" >"$T/unlock.out" 2>&1 ||
	fail "unlock: $(cat "$T/unlock.out")"
[ "$(js A status "d['locked']")" = False ] || fail "still locked"
ms=$(wait_no_alert A stale 10)
note "stale alert cleared $ms ms after unlock"
[ "$(js A status "d['watcher']['last_success']")" -ge "$t_unlock" ] ||
	fail "no successful check after unlock: $(ag A status)"
# One signature proves the PIN at unlock, one logs the watcher in.
signs=$(js A status "d['token']['signs']")
[ "$signs" -ge 2 ] || fail "only $signs token signature(s) after unlock"
r=$(sign_req A unlocked-1)
echo "$r" | grep -q '"sig"' || fail "the unlocked agent did not sign: $r"
[ "$(js A status "d['token']['signs']")" -eq $((signs + 1)) ] ||
	fail "the sign request was not counted"
[ "$(da_counter)" -eq 1 ] || fail "the right PIN moved the DA counter"

note "lock: locked again, the PIN is forgotten"
ag A lock >/dev/null || fail "lock"
[ "$(js A status "d['locked']")" = True ] || fail "lock did not lock"
signs=$(js A status "d['token']['signs']")
r=$(sign_req A lock-1)
echo "$r" | grep -q '"code": "locked"' || fail "a locked agent signed: $r"
[ "$(js A status "d['token']['signs']")" -eq "$signs" ] ||
	fail "a signature after lock"
[ "$(da_counter)" -eq 1 ] || fail "the DA counter moved after lock"
if grep -q "pin-81c3\|wrong-7e2d" "$T/A.log"; then
	fail "a PIN appears in the log"
fi

agent_alive A
agent_stop A
note "PASS"
