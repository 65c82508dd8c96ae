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
#  - a reflection of alice's own message back to the device that sent it;
#  - the replay window: a message from alice's card sent 29 days ago
#    (queued that long) is shown; one captured 31 days ago, delivered
#    after both replay stores were deleted, is refused although no store
#    remembers it; so is one sent an hour ahead of the recipient's clock.
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
	if grep -qE "attack at dawn|reflect me|captured|from the future" \
	    "$T/msg.out" "$T/msg.err"; then
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

note "the replay window"
SOCK_C=$T/C/run/devid/agent.sock
# Messages from alice's card to alice's laptop, as they would look had
# they been sealed AGE seconds ago (test_msg_tamper seal-at).
"$TAMPER" seal-at $((29 * 86400)) "$T/orig.json" "$T/old-29d.json" \
    "$SOCK_C" "queued for 29 days" || fail "seal-at 29 days"
"$TAMPER" seal-at $((31 * 86400)) "$T/orig.json" "$T/old-31d.json" \
    "$SOCK_C" "captured 31 days ago" || fail "seal-at 31 days"
"$TAMPER" seal-at -3600 "$T/orig.json" "$T/ahead-1h.json" \
    "$SOCK_C" "from the future" || fail "seal-at -1 hour"
# Old, but inside the window: a device that was away for weeks still
# gets what was queued for it.
inject "$T/old-29d.json" "$ID_A"
msg_ok A recv
out_has "queued for 29 days"
# Both replay stores deleted (the agent reads its own at start): a capture
# older than the window is refused all the same.
agent_stop A
rm -f "$T/A/data/devid/msg-replay.jsonl" "$T/A/data/devid/replay.jsonl"
agent_start A
attack "a capture from 31 days ago, both stores deleted" "$T/old-31d.json" A \
    "check 4 (replay): outside the replay window" "$MLOG_A"
attack "a message sent an hour ahead" "$T/ahead-1h.json" A \
    "ahead of this device's clock" "$MLOG_A"
# The agent refuses them as well, asked directly (any client of its
# socket, not only devid-msg), and says why in its own log only.
for f in old-31d ahead-1h; do
	ans=$(rawcall A "{\"op\":\"open\",\"envelope\":$(cat "$T/$f.json")}")
	echo "$ans" | grep -q '"code": "rejected"' ||
		fail "the agent opened $f: $ans"
done
grep -q "rejected at check 4 (replay): outside the replay window" "$T/A.log" ||
	fail "the agent's log does not name check 4 for the old message"
grep -q "ahead of this device's clock" "$T/A.log" ||
	fail "the agent's log does not name the message from the future"

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
