#!/bin/sh
# test-msg-splitview.sh - a directory that shows the sender another log
# of the recipient's account than the recipient sees (a split view), and
# the recipient catching it from the signed heads the message carries.
#
# The lying directory is a second devid-directory on a copy of the
# database with the same head-signing key (what an operator who splits
# views holds).  In the copy, alice's log continues with a phantom
# device; in the real database with her card.  Both logs are signed by
# the directory and consistent on their own: only comparing them shows
# the lie.  bob, on first contact through the copy, pins the phantom and
# encrypts to it; the message is carried over to alice's real queue.
# alice's laptop rejects it, devid-msg reports the split view, and her
# agent keeps a fork alert with both signed heads.
#
# The copy also forks bob's own log (a ghost device where the real log
# has bob's phone), and alice pinned bob before: her devid-msg finds that
# split view of a contact's log too, from the same message's views.
set -eu
prog=test-msg-splitview
. "$top_srcdir/tests/integration/test-msg-lib.sh"

dir_start
account_add "$ALICE"
account_add "$BOB"
DIR_ID=$(dir_id 2>/dev/null)
tpm_start
hsm_token alicecard
URI_C=$HSM_URI
hsm_token boblaptop
URI_B=$HSM_URI
# shellcheck disable=SC2086
init_device A "$ALICE" laptop tpm2 --tcti "$TCTI" $AGENT_FLAGS
# shellcheck disable=SC2086
init_device C "$ALICE" card "$URI_C" --pin-file "$T/pin" $AGENT_FLAGS
# shellcheck disable=SC2086
init_device B "$BOB" laptop "$URI_B" --pin-file "$T/pin" $AGENT_FLAGS
hsm_token bobphone
URI_P=$HSM_URI
# shellcheck disable=SC2086
init_device P "$BOB" phone "$URI_P" --pin-file "$T/pin" $AGENT_FLAGS
register_device A
register_device B
ID_A=$(device_id A)
agent_start A
agent_start B

note "alice writes to bob first: she pins bob's laptop"
msg_ok A send "$BOB" -m "hello bob"
out_has "First contact with $BOB"
# bob has not read it (he has no pin of alice); his agent takes its
# directory session.
rawcall B '{"op":"session"}' | grep -q '"ok": true' || fail "B's session"

note "the directory forks: a copy of its database with the same key"
sqlite3 "$T/dir.db" ".backup '$T/split.db'" || fail "backup"
cp "$T/dir.db.key" "$T/split.db.key"
chmod 600 "$T/split.db.key"
phantom "$T/split.db" "$ALICE" phantom
PH_SHORT=$(echo "$PH_ID" | cut -c1-4)
phantom "$T/split.db" "$BOB" ghost
"$DIRECTORY" serve --db "$T/split.db" --listen 127.0.0.1:0 \
    --ready-file "$T/split.addr" --scrypt-cost 10 --rate 0 \
    >>"$T/split.log" 2>&1 &
echo $! >"$T/split.pid"
i=0
while [ ! -s "$T/split.addr" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the second directory did not start: $(cat "$T/split.log")"
	sleep 0.1
done
SPLIT_URL=http://$(cat "$T/split.addr")

note "the real logs go on with alice's card and bob's phone"
register_device P
register_device C
ID_C=$(device_id C)
wait_alert A device_added 15 >/dev/null
ag A approve "$(echo "$ID_C" | cut -c1-8)" >/dev/null || fail "approve"
i=0
until [ "$(js A status "d['watcher']['seq']")" -eq 2 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "A did not verify seq 2"; sleep 0.1
done

note "bob is shown the forked log: first contact pins the phantom"
msg_ok B --directory "$SPLIT_URL" send "$ALICE" -m "meant for alice only"
out_has "'phantom' $PH_SHORT-"
out_has "Sent to $ALICE: 2 device(s)"
# The lying directory hands the message on to alice's real queue.
python3 - "$T/split.db" "$T/dir.db" "$ID_A" <<'EOF' || fail "carry the message over"
import sqlite3, sys
src = sqlite3.connect(sys.argv[1], timeout=5)
row = src.execute("SELECT m.sender, m.msg_id, m.envelope FROM queue q JOIN messages m ON m.id = q.message WHERE q.device = ?", (sys.argv[3],)).fetchone()
assert row is not None, "nothing queued for alice's laptop in the copy"
dst = sqlite3.connect(sys.argv[2], timeout=5)
cur = dst.cursor()
cur.execute("INSERT INTO messages(sender, msg_id, envelope, refs) VALUES(?, ?, ?, 1)", row)
cur.execute("INSERT INTO queue(device, message) VALUES(?, ?)", (sys.argv[3], cur.lastrowid))
dst.commit()
EOF

note "alice's laptop catches the split view from the message's views"
msg_ok A recv
sed 's/^/    /' "$T/msg.out" "$T/msg.err"
out_has "Rejected a message"
err_has "ALERT: split view of $ALICE"
err_has "ALERT: split view of $BOB"
if grep -q "meant for alice only" "$T/msg.out"; then
	fail "the message was shown"
fi
[ "$(open_alerts A fork)" -ge 1 ] || fail "no fork alert on A: $(ag A status)"
ag A alerts --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
a = [x for x in d['alerts'] if x['kind'] == 'fork'][0]
v = a['details']['verified_head']; c = a['details']['conflicting_head']
assert v['seq'] == c['seq'] == 2 and v['hash'] != c['hash'], (v, c)
assert v['sig'] and c['sig']
" || fail "the fork alert lacks the two heads"
note "A's alert: $(js A status "[a['message'] for a in d['alerts'] if a['kind']=='fork'][0]")"

kill "$(cat "$T/split.pid")" 2>/dev/null || true
for n in A B; do
	agent_alive "$n"
	agent_stop "$n"
done
note "PASS"
