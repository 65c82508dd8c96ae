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
# split view of a contact's log too, from the same message's views, and
# hands it to her agent (gossip_alert), which keeps one fork alert of
# bob's account with both signed heads.
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
[ "$(open_alerts A fork)" -ge 2 ] || fail "no fork alerts on A: $(ag A status)"
ag A alerts --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
a = [x for x in d['alerts'] if x['kind'] == 'fork' and x['account'] == '$ALICE'][0]
v = a['details']['verified_head']; c = a['details']['conflicting_head']
assert v['seq'] == c['seq'] == 2 and v['hash'] != c['hash'], (v, c)
assert v['sig'] and c['sig']
" || fail "the fork alert lacks the two heads"
note "A's alert: $(js A status "[a['message'] for a in d['alerts'] if a['kind']=='fork' and a['account']=='$ALICE'][0]")"

note "devid-msg handed the split view of bob's log to alice's agent"
err_has "devid-agent keeps the alert"
if grep -q "was not kept" "$T/msg.err"; then
	fail "devid-msg: $(cat "$T/msg.err")"
fi
ID_B=$(device_id B)
ag A alerts --json >"$T/alerts.json" || fail "alerts"
python3 - "$T/alerts.json" "$BOB" "$ID_B" "$T/bob-fork.json" <<'PYX' || fail "no fork alert of $BOB with both heads on A: $(cat "$T/alerts.json")"
import json, sys
d = json.load(open(sys.argv[1]))
bob, reporter = sys.argv[2], sys.argv[3]
f = [x for x in d['alerts'] if x['kind'] == 'fork' and x['account'] == bob]
assert len(f) == 1, f
det = f[0]['details']
v, c = det['verified_head'], det['conflicting_head']
assert v['account'] == c['account'] == bob, det
assert v['seq'] == c['seq'] == 2 and v['hash'] != c['hash'], det
assert v['sig'] and c['sig'], det
assert det['report'] == 'split_view' and det['reporter'] == reporter, det
assert 'split view of ' + bob in f[0]['message'], f[0]
json.dump({"id": f[0]['id'], "v": v, "c": c}, open(sys.argv[4], "w"))
PYX
grep -q "ALERT [0-9a-f]* \[fork, critical\]: split view of $BOB" "$T/A.log" ||
	fail "no alert line for $BOB in A's log"
note "A's alert: $(js A status "[a['message'] for a in d['alerts'] if a['kind']=='fork' and a['account']=='$BOB'][0]")"

note "the same pair reported again (either way round) keeps one alert"
python3 - "$T" "$T/A/run/devid/agent.sock" "$T/bob-fork.json" "$BOB" <<'PYX' || fail "duplicate report"
import json, sys
sys.path.insert(0, sys.argv[1])
import raw
path, f, bob = sys.argv[2], json.load(open(sys.argv[3])), sys.argv[4]
for v, c in ((f["v"], f["c"]), (f["c"], f["v"])):
    r = raw.call(path, {"op": "gossip_alert", "account": bob,
                        "kind": "split_view", "verified_head": v,
                        "conflicting_head": c})
    assert r["ok"] is True and r["alert"] == f["id"], r
    assert r["new"] is False, r
PYX
[ "$(js A status "sum(1 for a in d['alerts'] if a['kind']=='fork' and a['account']=='$BOB')")" -eq 1 ] ||
	fail "a second alert for the same pair"

kill "$(cat "$T/split.pid")" 2>/dev/null || true
for n in A B; do
	agent_alive "$n"
	agent_stop "$n"
done
note "PASS"
