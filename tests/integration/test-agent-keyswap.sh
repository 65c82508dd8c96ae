#!/bin/sh
# test-agent-keyswap.sh - malware that runs as the user, without the token
# PIN, swaps a device's keys for a key pair of its own and re-signs the
# registry with it; the agent must say so at its next start (or its first
# check) with a `key_replaced` alert naming what changed, and never use
# the substituted key: no directory login, no signature, no registry
# write.  Real agents on swtpm and SoftHSM2 against a real devid-directory
# on loopback; one account with a TPM laptop (A, keys with a PIN) and a
# SoftHSM2 card (C):
#
#  - a device set up but not registered (B) is not taken for a swap: no
#    alert, and the watcher says how to register it;
#  - TPM key files replaced by keys the malware made in the same TPM
#    (with devid-agent init of its own):
#      1. the registry left alone (signed by the old key): alert at start;
#      2. the registry re-signed by the new key, its view of the account
#         kept: alert at start (the view lists 'laptop' under the old key);
#      3. the view forged as well (the new key put in the old one's place,
#         the directory's head kept): nothing to see at start and no login
#         (the directory does not know the key); once the user is fooled
#         into registering it, the first check re-reads the log from seq 1
#         and alerts; the other device announces the second 'laptop';
#  - PKCS#11 objects relabelled without login, the registry made afresh:
#      4. public-key objects of software keys under the device keys'
#         labels and CKA_ID: the token's private key does not sign for
#         them, alerted at start, or at unlock when the agent starts
#         locked;
#      5. a key pair generated on the token as public objects (no PIN
#         protects it) under those labels and CKA_ID: the agent does not
#         take it for a device key, and the swapped public objects are
#         alerted as in 4;
#  - after each, the original keys and registry back: the agent works;
#  - 6. a long log (1041 events, two directory answers): after a restart
#    the agent reads it again from seq 1, finds the registry's view, and
#    raises nothing.
# Nothing may crash; the agents' logs must be free of sanitizer reports.
set -eu
prog=test-agent-keyswap
. "$top_srcdir/tests/integration/test-agent-lib.sh"
SWAP=$top_builddir/tests/integration/test_agent_keyswap
LONGLOG=$top_builddir/tests/integration/test_agent_longlog
for p in "$SWAP" "$LONGLOG"; do
	[ -x "$p" ] || fail "$p is not built (make check builds it)"
done
command -v cmp >/dev/null 2>&1 || fail "cmp not found"

ACCT=alice@example.org
FLAGS="--check-interval 1 --long-poll 0 --max-stale 60 --http-timeout 5"

dir_start
account_add "$ACCT"
DIR_ID=$(dir_id 2>/dev/null)
tpm_start
hsm_token alicecard
URI_C=$HSM_URI

# short ID: the short form of an id.
short() {
	echo "$1" | cut -c1-16 | sed 's/\(....\)\(....\)\(....\)\(....\)/\1-\2-\3-\4/'
}

# alert_field NAME KIND FIELD: FIELD of NAME's open alert of KIND.
alert_field() {
	js "$1" status "[a['$3'] for a in d['alerts'] if a['kind'] == '$2'][0]"
}

# blocked_checks NAME: the agent has an open, critical key_replaced alert,
# refuses to sign or to make a session, its watcher never logs in (it
# says why), and the registry is as it was before the start
# ($T/NAME.reg-before): neither rewritten nor set aside.
blocked_checks() {
	n=$1
	[ "$(open_alerts "$n" key_replaced)" -eq 1 ] ||
		fail "$n: no key_replaced alert: $(ag "$n" status)"
	[ "$(alert_field "$n" key_replaced severity)" = critical ] ||
		fail "$n: the alert is not critical"
	r=$(rawcall "$n" "{\"op\":\"sign\",\"transcript\":\"$(tagged_b64 devid-login-v1 x)\"}")
	echo "$r" | grep -q '"code": "denied"' ||
		fail "$n signed with the substituted key: $r"
	r=$(rawcall "$n" '{"op":"session"}')
	echo "$r" | grep -q '"code": "denied"' ||
		fail "$n made a directory session: $r"
	sleep 2.5       # more than two check intervals
	js "$n" status "d['watcher']['last_error']" | grep -q "were replaced" ||
		fail "$n: the watcher does not say why: $(ag "$n" status)"
	[ "$(js "$n" status "d['watcher']['checks']")" -eq 0 ] ||
		fail "$n: the watcher checked with the substituted key"
	ls "$T/$n/data/devid/"registry.json.rejected-* >/dev/null 2>&1 &&
		fail "$n set the registry aside and wrote its own"
	cmp -s "$T/$n/data/devid/registry.json" "$T/$n.reg-before" ||
		fail "$n rewrote the registry with the substituted key"
	agent_alive "$n"
}

# keep_registry NAME: remembers the registry as it is before a start.
keep_registry() {
	cp "$T/$1/data/devid/registry.json" "$T/$1.reg-before"
}

# pristine_save NAME FILES...: keeps a copy of the device's own files.
pristine_save() {
	n=$1
	shift
	mkdir -p "$T/$n.pristine"
	for f in "$@"; do
		cp -p "$T/$n/data/devid/$f" "$T/$n.pristine/$f"
	done
}

pristine_restore() {
	n=$1
	shift
	for f in "$@"; do
		cp -p "$T/$n.pristine/$f" "$T/$n/data/devid/$f"
	done
}

# works_again NAME: started on its own files, it checks successfully.
works_again() {
	t0=$(date +%s)
	agent_start "$1"
	i=0
	until [ "$(js "$1" status "d['watcher']['last_success']")" -gt "$t0" ] &&
	    [ "$(js "$1" status "d['watcher']['checks']")" -gt 0 ]; do
		i=$((i + 1))
		[ $i -lt 150 ] || fail "$1 does not work with its own keys: $(ag "$1" status)"
		sleep 0.1
	done
	js "$1" status "d['watcher']['last_error']" | grep -q . &&
		fail "$1: $(js "$1" status "d['watcher']['last_error']")"
	# The alerts stay until the user acknowledges them.
	for id in $(js "$1" status "' '.join(a['id'] for a in d['alerts'] if a['kind'] == 'key_replaced')"); do
		ag "$1" ack "$id" >/dev/null || fail "ack on $1"
	done
	[ "$(open_alerts "$1" key_replaced)" -eq 0 ] || fail "ack on $1"
	agent_stop "$1"
}

note "set up: laptop A (TPM, keys with a PIN), card C (SoftHSM2)"
# shellcheck disable=SC2086
init_device A "$ACCT" laptop tpm2 --tcti "$TCTI" --pin-file "$T/pin" $FLAGS
# shellcheck disable=SC2086
init_device C "$ACCT" card "$URI_C" --pin-file "$T/pin" $FLAGS
register_device A
register_device C
ID_A=$(device_id A)
ID_C=$(device_id C)
agent_start A
agent_start C
wait_alert A device_added 10 >/dev/null
wait_alert C device_added 10 >/dev/null
ag A approve "$(echo "$ID_C" | cut -c1-8)" >/dev/null || fail "approve on A"
ag C approve "$(echo "$ID_A" | cut -c1-8)" >/dev/null || fail "approve on C"
for n in A C; do
	[ "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['log']['seq'])" \
	    "$T/$n/data/devid/registry.json")" -eq 2 ] ||
		fail "$n's registry is not at seq 2"
done
agent_stop A
agent_stop C
pristine_save A tpm-sig.pem tpm-enc.pem registry.json registry.sig
pristine_save C registry.json registry.sig

# --- not registered yet: no alert ---
note "a device set up but not registered: no alert"
# shellcheck disable=SC2086
init_device B "$ACCT" tablet tpm2 --tcti "$TCTI" $FLAGS
agent_start B
i=0
until js B status "d['watcher']['last_error']" | grep -q "not registered yet"; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "B does not say it is not registered: $(ag B status)"
	sleep 0.1
done
note "B: $(js B status "d['watcher']['last_error']")"
js B status "d['watcher']['last_error']" | grep -q "devid-agent register" ||
	fail "B does not say how to register"
[ "$(open_alerts B key_replaced)" -eq 0 ] || fail "B was taken for a swap"
agent_stop B

# --- the malware's own TPM keys ---
note "the malware makes keys of its own in the same TPM"
ag M init --account "$ACCT" --label laptop --token tpm2 --tcti "$TCTI" \
    --directory "$URL" --directory-key "$DIR_ID" >"$T/M.init" 2>&1 ||
	fail "the malware's init: $(cat "$T/M.init")"
ID_M=$(device_id M)
[ ${#ID_M} -eq 64 ] || fail "no id for the malware's keys"
swap_tpm_keys() {
	cp "$T/M/data/devid/tpm-sig.pem" "$T/M/data/devid/tpm-enc.pem" \
	    "$T/A/data/devid/"
}

note "1. TPM key files replaced, the registry left as it was"
swap_tpm_keys
keep_registry A
agent_start A
blocked_checks A
msg=$(alert_field A key_replaced message)
note "A: $msg"
for want in "$(short "$ID_M")" "$(short "$ID_A")" "(tpm-sig.pem)" "'laptop'"; do
	echo "$msg" | grep -qF -- "$want" || fail "the alert does not name $want"
done
[ "$(alert_field A key_replaced device)" = "$ID_A" ] ||
	fail "the alert is not about device A"
[ "$(js A status "d['token']['signs']")" -eq 0 ] ||
	fail "A signed with the substituted key"
agent_stop A
pristine_restore A tpm-sig.pem tpm-enc.pem registry.json registry.sig
works_again A

note "2. TPM key files replaced, the registry re-signed with the new key"
swap_tpm_keys
[ "$("$SWAP" resign keep "$T/A.pristine" "$T/A/data/devid" tpm "$TCTI" \
    "$T/M/data/devid")" = "$ID_M" ] || fail "resign keep"
keep_registry A
agent_start A
blocked_checks A
msg=$(alert_field A key_replaced message)
note "A: $msg"
for want in "$(short "$ID_M")" "$(short "$ID_A")" "seq 2" "'laptop'"; do
	echo "$msg" | grep -qF -- "$want" || fail "the alert does not name $want"
done
[ "$(js A status "d['token']['signs']")" -eq 0 ] ||
	fail "A signed with the substituted key"
agent_stop A
pristine_restore A tpm-sig.pem tpm-enc.pem registry.json registry.sig
works_again A

note "3. ... and the registry's view of the account forged too"
swap_tpm_keys
"$SWAP" resign view "$T/A.pristine" "$T/A/data/devid" tpm "$TCTI" \
    "$T/M/data/devid" >/dev/null || fail "resign view"
agent_start A
i=0
until js A status "d['watcher']['last_error']" |
    grep -q "does not know this device's key"; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "A's login was not refused: $(ag A status)"
	sleep 0.1
done
note "A before registering: $(js A status "d['watcher']['last_error']")"
js A status "d['watcher']['last_error']" | grep -q "registry says it was registered" ||
	fail "A does not say its registry claims a registration"
[ "$(open_alerts A key_replaced)" -eq 0 ] ||
	fail "an alert without evidence (this step is about the first check)"
agent_stop A
note "   the user is fooled into registering the malware's key"
agent_start C
register_device A
ms=$(wait_alert C device_added 10)
note "C announced the second 'laptop' after $ms ms"
[ "$(alert_field C device_added device)" = "$ID_M" ] ||
	fail "C announced another device"
keep_registry A
agent_start A
ms=$(wait_alert A key_replaced 15)
note "A: key_replaced at its first check after $ms ms"
msg=$(alert_field A key_replaced message)
note "A: $msg"
for want in "$(short "$ID_M")" "$(short "$ID_A")" "seq 2" "rewritten too"; do
	echo "$msg" | grep -qF -- "$want" || fail "the alert does not name $want"
done
[ "$(js A status "[a['details']['reason'] for a in d['alerts'] if a['kind'] == 'key_replaced'][0]")" = view_forged ] ||
	fail "the alert does not come from the first check"
sleep 2.5
r=$(rawcall A "{\"op\":\"sign\",\"transcript\":\"$(tagged_b64 devid-login-v1 y)\"}")
echo "$r" | grep -q '"code": "denied"' || fail "A signed after the alert: $r"
cmp -s "$T/A/data/devid/registry.json" "$T/A.reg-before" ||
	fail "A rewrote the registry after the alert"
agent_alive A
agent_stop A
# The account as it was: C revokes the malware's device.
ag C revoke "$(echo "$ID_M" | cut -c1-8)" >/dev/null || fail "revoke on C"
agent_stop C

# --- PKCS#11: objects relabelled without the PIN ---
note "4. PKCS#11 public-key objects replaced by software keys"
"$SWAP" p11-swap "$SOFTHSM2_MODULE" alicecard devid soft \
    "$T/soft-sig.pem" "$T/soft-enc.pem" || fail "p11-swap soft"
ID_S=$("$SWAP" resign fresh "$T/C.pristine" "$T/C/data/devid" soft \
    "$T/soft-sig.pem" "$T/soft-enc.pem") || fail "resign fresh soft"
keep_registry C
agent_start C
blocked_checks C
msg=$(alert_field C key_replaced message)
note "C: $msg"
for want in "$(short "$ID_S")" "object 'devid-sig' on token 'alicecard'" \
    "does not sign"; do
	echo "$msg" | grep -qF -- "$want" || fail "the alert does not name $want"
done
# One signature, the proof, by the real private key; none after.
[ "$(js C status "d['token']['signs']")" -eq 1 ] ||
	fail "C used the token beyond the proof: $(ag C status)"
agent_stop C
note "   the same on an agent that starts locked: noticed at unlock"
cp "$T/C/cfg/devid/agent.conf" "$T/C.conf"
sed -i '/^pin_file/d' "$T/C/cfg/devid/agent.conf"
agent_start C
[ "$(js C status "d['locked']")" = True ] || fail "C did not start locked"
[ "$(open_alerts C key_replaced)" -eq 1 ] || fail "a new alert while locked"
if ag C unlock --pin-file "$T/pin" >"$T/unlock.out" 2>&1; then
	fail "unlock took the substituted key"
fi
grep -q "were replaced" "$T/unlock.out" ||
	fail "unlock does not say why: $(cat "$T/unlock.out")"
[ "$(js C status "[a['details']['reason'] for a in d['alerts'] if a['kind'] == 'key_replaced'][-1]")" = key_refused ] ||
	fail "no alert from the unlock: $(ag C status)"
r=$(rawcall C "{\"op\":\"sign\",\"transcript\":\"$(tagged_b64 devid-login-v1 z)\"}")
echo "$r" | grep -q '"code": "denied"' || fail "C signed after unlock: $r"
agent_stop C
cp "$T/C.conf" "$T/C/cfg/devid/agent.conf"
"$SWAP" p11-restore "$SOFTHSM2_MODULE" alicecard devid || fail "p11-restore"
pristine_restore C registry.json registry.sig
works_again C

note "5. a key pair made on the token without the PIN under those labels"
"$SWAP" p11-swap "$SOFTHSM2_MODULE" alicecard devid token ||
	fail "p11-swap token"
ID_P=$("$SWAP" resign fresh "$T/C.pristine" "$T/C/data/devid" p11 \
    "$SOFTHSM2_MODULE" alicecard devid) || fail "resign fresh p11"
keep_registry C
agent_start C
blocked_checks C
msg=$(alert_field C key_replaced message)
note "C: $msg"
echo "$msg" | grep -qF -- "$(short "$ID_P")" ||
	fail "the alert does not name the malware's key"
agent_stop C
"$SWAP" p11-restore "$SOFTHSM2_MODULE" alicecard devid || fail "p11-restore"
pristine_restore C registry.json registry.sig
works_again C

note "6. a long log, read again from seq 1 after a restart"
account_add bob@example.org
hsm_token bobcard
# shellcheck disable=SC2086
init_device D bob@example.org phone "$HSM_URI" --pin-file "$T/pin" $FLAGS
register_device D
set -- $(sql "SELECT seq, lower(hex(hash)) FROM events WHERE account='bob@example.org' ORDER BY seq DESC LIMIT 1;" | tr '|' ' ')
[ "$1" = 1 ] || fail "bob's log does not start with D"
"$LONGLOG" bob@example.org 2 "$2" "$(date +%s)" 520 > "$T/burst.sql" ||
	fail "cannot make the long log"
python3 - "$T/dir.db" "$T/burst.sql" <<'PYX' || fail "cannot write the long log"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
db.executescript(open(sys.argv[2]).read())
db.close()
PYX
agent_start D
i=0
until [ "$(js D status "d['watcher']['seq']")" -eq 1041 ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || fail "D did not verify the long log: $(ag D status)"
	sleep 0.2
done
agent_stop D
agent_start D
i=0
until grep -q "view of bob@example.org (seq 1041) is the directory's log" \
    "$T/D.log"; do
	i=$((i + 1))
	[ $i -lt 150 ] || fail "D did not read the log again: $(tail -n 5 "$T/D.log")"
	sleep 0.1
done
[ "$(open_alerts D key_replaced)" -eq 0 ] || fail "D raised key_replaced"
[ "$(open_alerts D log_invalid)" -eq 0 ] || fail "D raised log_invalid"
agent_stop D

note "PASS"
