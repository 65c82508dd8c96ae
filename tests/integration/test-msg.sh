#!/bin/sh
# test-msg.sh - devid-msg end to end with real agents (swtpm, SoftHSM2)
# and a real directory:
#
#  - bob writes to alice: first contact pins alice's two devices, both of
#    alice's devices read the message, a second read finds nothing;
#  - alice answers: bob reads it, and alice's other device gets the copy;
#  - recv --follow; a file, saved with -o and never over an existing
#    file; standard input; --json; contacts;
#  - errors a user can act on: agent not running, recipient unknown,
#    directory unreachable;
#  - a phantom device written into the directory's database on alice's
#    account: bob's client refuses to encrypt to it and says which device
#    and when it was added, alice's agents alert, alice's own client
#    leaves it out; trust accepts it explicitly;
#  - a phantom device on the sender's own account (bob's): never
#    encrypted to;
#  - a message from a contact's new device is held (shown only after
#    trust, acknowledged only then).
set -eu
prog=test-msg
. "$top_srcdir/tests/integration/test-msg-lib.sh"

cast_start

# queued DEVICE_ID: envelopes queued for a device.
queued() {
	sql "SELECT count(*) FROM queue WHERE device='$1';"
}

note "bob writes to alice (first contact)"
msg_ok B send "$ALICE" -m "hello alice"
out_has "First contact with $ALICE: pinned its 2 device(s)"
out_has "'laptop'"
out_has "'card'"
out_has "Sent to $ALICE: 2 device(s)"
[ "$(queued "$ID_A")" -eq 1 ] && [ "$(queued "$ID_C")" -eq 1 ] ||
	fail "the message is not queued for both of alice's devices"

note "both of alice's devices read it"
for n in A C; do
	msg_ok "$n" recv
	out_has "From $BOB 'laptop' $(echo "$ID_B" | cut -c1-4)-"
	out_has "hello alice"
done
[ "$(queued "$ID_A")" -eq 0 ] || fail "A did not acknowledge"
msg_ok A recv
[ ! -s "$T/msg.out" ] || fail "a second recv showed something: $(cat "$T/msg.out")"

note "alice answers; her card gets the copy"
msg_ok A send "$BOB" -m "hi bob, from the laptop"
out_has "Sent to $BOB: 2 device(s)"
msg_ok B recv
out_has "From $ALICE 'laptop'"
out_has "hi bob, from the laptop"
msg_ok C recv --json
python3 - "$T/msg.out" "$ALICE" "$ID_A" <<'EOF' || fail "C's --json output"
import base64, json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 1, lines
m = lines[0]
assert m["status"] == "ok" and m["sender"]["account"] == sys.argv[2], m
assert m["sender"]["device"] == sys.argv[3] and m["sender"]["label"] == "laptop", m
body = base64.urlsafe_b64decode(m["body"] + "=" * (-len(m["body"]) % 4))
assert body == b"hi bob, from the laptop", body
EOF

note "recv --follow waits for the next message"
XDG_CONFIG_HOME=$T/A/cfg XDG_DATA_HOME=$T/A/data XDG_RUNTIME_DIR=$T/A/run \
    "$MSG" recv --follow --count 1 >"$T/follow.out" 2>&1 &
echo $! >"$T/follow.pid"
msg_ok B send "$ALICE" -m "worth the wait"
i=0
while kill -0 "$(cat "$T/follow.pid")" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 300 ] || fail "recv --follow --count 1 did not return"
	sleep 0.1
done
rc=0
wait "$(cat "$T/follow.pid")" || rc=$?
rm -f "$T/follow.pid"
[ "$rc" -eq 0 ] || fail "recv --follow exited with $rc: $(cat "$T/follow.out")"
grep -q "worth the wait" "$T/follow.out" || fail "recv --follow: $(cat "$T/follow.out")"
msg_ok C recv
out_has "worth the wait"

note "a file, never saved over an existing one; standard input"
head -c 3000 /dev/urandom >"$T/report.bin"
msg_ok B send "$ALICE" -f "$T/report.bin"
mkdir -p "$T/dl-A" "$T/dl-C"
echo "keep me" >"$T/dl-C/report.bin"
msg_ok A recv -o "$T/dl-A"
cmp "$T/report.bin" "$T/dl-A/report.bin" || fail "A saved another file"
msg_ok C recv -o "$T/dl-C"
[ "$(cat "$T/dl-C/report.bin")" = "keep me" ] || fail "an existing file was overwritten"
cmp "$T/report.bin" "$T/dl-C/report.bin (1)" || fail "C did not save beside it"
echo "typed on standard input" | msg B send "$ALICE" >/dev/null 2>&1 ||
	fail "send from standard input: $(cat "$T/msg.err")"
msg_ok A recv
out_has "typed on standard input"
msg_ok C recv

note "contacts"
msg_ok B contacts
out_has "$ALICE (log entry 2"
out_has "accepted $(echo "$ID_A" | cut -c1-4)-"
out_has "accepted $(echo "$ID_C" | cut -c1-4)-"
[ -f "$T/B/data/devid/contacts/$ALICE.json" ] && [ -f "$T/B/data/devid/contacts/$ALICE.sig" ] ||
	fail "no pin files"
msg_ok B contacts --json
python3 - "$T/msg.out" "$ALICE" <<'EOF' || fail "contacts --json"
import json, sys
d = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(d) == 1 and d[0]["account"] == sys.argv[2] and d[0]["verified"], d
assert sorted(x["label"] for x in d[0]["devices"] if x["accepted"]) == ["card", "laptop"], d
EOF
msg_ok B --help
out_has "Usage: devid-msg send"

note "errors a user can act on"
rc=0
XDG_RUNTIME_DIR=$T/nowhere XDG_DATA_HOME=$T/B/data "$MSG" send "$ALICE" -m x \
    >"$T/msg.out" 2>"$T/msg.err" || rc=$?
[ "$rc" -eq 1 ] || fail "no agent: exit $rc"
err_has "devid-agent is not running"
msg_fails B send carol@example.org -m "anyone?"
err_has "recipient unknown"
err_has "carol@example.org"
msg_fails B --directory http://127.0.0.1:1 send "$ALICE" -m x
err_has "unreachable"
rc=0
msg B send "Not An Account" -m x >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "a bad account name: exit $rc"
ag B lock >/dev/null || fail "lock"
msg_fails B send "$ALICE" -m "while locked"
err_has "devid-agent unlock"
ag B unlock --pin-file "$T/pin" >/dev/null || fail "unlock"

note "a tampered pin is refused and trust pins anew"
cp "$T/B/data/devid/contacts/$ALICE.json" "$T/pin.orig"
sed 's/"approved"/"pending"/' "$T/pin.orig" >"$T/B/data/devid/contacts/$ALICE.json"
msg_fails B send "$ALICE" -m x
err_has "changed outside devid-msg"
msg_ok B trust "$ALICE"
ls "$T/B/data/devid/contacts/$ALICE.json.rejected-"* >/dev/null 2>&1 ||
	fail "the tampered pin was not kept aside"
msg_ok B send "$ALICE" -m "after re-pinning"
for n in A C; do msg_ok "$n" recv; out_has "after re-pinning"; done

note "phantom device on alice's account, written into the database"
phantom "$T/dir.db" "$ALICE" phantom
PH_ALICE=$PH_ID
PH_SHORT=$(echo "$PH_ALICE" | cut -c1-4)
msg_fails B send "$ALICE" -m "for alice only"
err_has "has a device you have not accepted"
err_has "'phantom' $PH_SHORT-"
err_has "not endorsed"
err_has "devid-msg trust $ALICE"
[ "$(queued "$PH_ALICE")" -eq 0 ] || fail "something was queued for the phantom"
[ "$(queued "$ID_A")" -eq 0 ] || fail "the refused message was sent anyway"
msg_fails B send "$ALICE" -m "again"
err_has "'phantom' $PH_SHORT-"
for n in A C; do
	ms=$(wait_alert "$n" device_added $((INTERVAL + 10)))
	note "alice's $n alerted on the phantom after $ms ms"
done
note "alice's own client leaves the unapproved phantom out"
msg_ok A send "$BOB" -m "laptop to bob"
err_has "not encrypting to your device 'phantom' $PH_SHORT-"
out_has "Sent to $BOB: 2 device(s), 1 own device(s) left out"
[ "$(queued "$PH_ALICE")" -eq 0 ] || fail "alice encrypted to her phantom"
msg_ok B recv
out_has "laptop to bob"
msg_ok C recv
out_has "laptop to bob"

note "trust accepts a device explicitly"
msg_ok B trust "$ALICE" --device "$PH_SHORT"
out_has "Accepted device 'phantom' $PH_SHORT-"
msg_ok B send "$ALICE" -m "now to three"
out_has "Sent to $ALICE: 3 device(s)"
[ "$(queued "$PH_ALICE")" -eq 1 ] || fail "trust did not take"
for n in A C; do msg_ok "$n" recv; done

note "phantom device on the sender's own account (bob)"
phantom "$T/dir.db" "$BOB" ghost
PH_BOB=$PH_ID
ms=$(wait_alert B device_added $((INTERVAL + 10)))
note "bob's agent alerted on the ghost after $ms ms"
msg_ok B send "$ALICE" -m "bob with a ghost"
err_has "not encrypting to your device 'ghost'"
[ "$(queued "$PH_BOB")" -eq 0 ] || fail "bob encrypted to the ghost on his own account"
msg_ok A recv
out_has "bob with a ghost"
# alice sees bob's ghost as new: her send stops.
msg_fails A send "$BOB" -m "to bob"
err_has "'ghost'"
[ "$(queued "$PH_BOB")" -eq 0 ] || fail "alice encrypted to bob's ghost"

note "a message from bob's new phone is held until alice trusts it"
hsm_token bobphone
# shellcheck disable=SC2086
init_device P "$BOB" phone "$HSM_URI" --pin-file "$T/pin" $AGENT_FLAGS
register_device P
ID_P=$(device_id P)
P_SHORT=$(echo "$ID_P" | cut -c1-4)
agent_start P
wait_alert P device_added 15 >/dev/null
ag P approve "$(echo "$ID_B" | cut -c1-8)" >/dev/null || fail "approve B on P"
msg_ok P send "$ALICE" -m "new phone, who dis"
out_has "Sent to $ALICE: 4 device(s)"
# bob's laptop has not approved the phone yet: its copy is held too.
msg_ok B recv
out_has "Held a message from your device 'phone' $P_SHORT"
if grep -q "who dis" "$T/msg.out"; then fail "B showed a held message"; fi
ag B approve "$(echo "$ID_P" | cut -c1-8)" >/dev/null || fail "approve P on B"
msg_ok B recv
out_has "From $BOB 'phone' $P_SHORT-"
out_has "who dis"
msg_ok A recv
out_has "Held a message from $BOB: device 'phone' $P_SHORT-"
out_has "devid-msg trust $BOB"
if grep -q "who dis" "$T/msg.out"; then fail "a held message was shown"; fi
[ "$(queued "$ID_A")" -eq 1 ] || fail "the held message was acknowledged"
msg_ok A trust "$BOB" --device "$P_SHORT"
out_has "Accepted device 'phone' $P_SHORT-"
msg_ok A contacts
out_has "pending  "
msg_ok A recv
out_has "From $BOB 'phone' $P_SHORT-"
out_has "new phone, who dis"
[ "$(queued "$ID_A")" -eq 0 ] || fail "not acknowledged after trust"

for n in A B C P; do
	agent_alive "$n"
	agent_stop "$n"
done
note "PASS"
