#!/bin/sh
# test-msg-attacks.sh - the 2016 iMessage attacks against devid-msg, with
# real agents (swtpm, SoftHSM2) and a real directory.  A captured
# envelope from bob to alice is changed and queued for alice's devices
# straight in the directory's database (a directory or network that
# tampers):
#
#  - its signature stripped and the envelope signed again by another
#    registered device (alice's card): the wraps are bound to the header,
#    so alice's laptop cannot unwrap (check 5, in the agent);
#  - a bit flipped in the ciphertext, a bit flipped in a wrap, a wrap
#    moved to another device's slot: the signature fails (check 3), before
#    anything is decrypted or parsed;
#  - an exact replay (check 4 in devid-msg), and again after devid-msg's
#    replay store was lost (check 4 in the agent);
#  - a replay to another device of the same account;
#  - a reflection of alice's own message back to the device that sent it.
# Each is reported as rejected, its text never shown, the reason only in
# the local logs.  A real message still gets through afterwards.
set -eu
prog=test-msg-attacks
. "$top_srcdir/tests/integration/test-msg-lib.sh"

TAMPER=$top_builddir/tests/integration/test_msg_tamper
[ -x "$TAMPER" ] || fail "$TAMPER is not built (make check builds it)"

cast_start

note "captured: bob's message to alice and alice's to bob"
msg_ok B send "$ALICE" -m "attack at dawn"
inbox_copy "$ID_A" "$T/orig.json"
msg_ok A recv
out_has "attack at dawn"
msg_ok C recv
out_has "attack at dawn"
msg_ok A send "$BOB" -m "reflect me"
inbox_copy "$ID_B" "$T/own.json"
msg_ok B recv
msg_ok C recv

# attack NAME FILE DEVICE CHECK_TEXT LOGFILE: queues FILE for DEVICE
# (A or C), runs recv there and expects a rejection whose reason
# (CHECK_TEXT) is in LOGFILE only.
attack() {
	name=$1
	file=$2
	dev=$3
	check=$4
	log=$5
	eval "id=\$ID_$dev"
	inject "$file" "$id"
	before=$(grep -c -F "$check" "$log" 2>/dev/null || true)
	msg_ok "$dev" recv
	out_has "Rejected a message"
	if grep -qE "attack at dawn|reflect me" "$T/msg.out" "$T/msg.err"; then
		fail "$name: plaintext shown"
	fi
	if grep -qF "$check" "$T/msg.out" "$T/msg.err"; then
		fail "$name: the reason was shown to the user"
	fi
	after=$(grep -c -F "$check" "$log" 2>/dev/null || true)
	[ "$after" -gt "$before" ] ||
		fail "$name: '$check' not logged in $log: $(tail -n 3 "$log")"
	[ "$(sql "SELECT count(*) FROM queue WHERE device='$id';")" -eq 0 ] ||
		fail "$name: the rejected envelope was not acknowledged"
	note "$name: rejected ($check)"
}
MLOG_A=$T/A/data/devid/msg.log
MLOG_C=$T/C/data/devid/msg.log

"$TAMPER" resign "$T/orig.json" "$T/resigned.json" "$T/C/run/devid/agent.sock" ||
	fail "resign"
attack "re-signed by alice's card" "$T/resigned.json" A \
    "rejected at check 5" "$T/A.log"

"$TAMPER" flip-ct "$T/orig.json" "$T/flip-ct.json" || fail "flip-ct"
attack "bit flip in the ciphertext" "$T/flip-ct.json" A \
    "check 3 (signature)" "$MLOG_A"
"$TAMPER" flip-wrap "$T/orig.json" "$T/flip-wrap.json" || fail "flip-wrap"
attack "bit flip in a wrap" "$T/flip-wrap.json" A \
    "check 3 (signature)" "$MLOG_A"
"$TAMPER" move-wrap "$T/orig.json" "$T/move-wrap.json" || fail "move-wrap"
attack "wrap moved to another slot" "$T/move-wrap.json" A \
    "check 3 (signature)" "$MLOG_A"

attack "exact replay" "$T/orig.json" A "check 4 (replay)" "$MLOG_A"
rm -f "$T/A/data/devid/msg-replay.jsonl"
attack "replay after devid-msg lost its store" "$T/orig.json" A \
    "rejected at check 4" "$T/A.log"
attack "replay to another device of the account" "$T/orig.json" C \
    "check 4 (replay)" "$MLOG_C"
attack "reflection of alice's own message" "$T/own.json" A \
    "check 2 (sender)" "$MLOG_A"

note "a real message still gets through"
msg_ok B send "$ALICE" -m "the real one"
msg_ok A recv
out_has "the real one"
msg_ok C recv
out_has "the real one"

for n in A B C; do
	agent_alive "$n"
	agent_stop "$n"
done
note "PASS"
