#!/bin/sh
# test-msg-endorsed.sh - devid-msg and a contact's endorsed new device,
# with real agents (swtpm, SoftHSM2) and a real directory:
#
#  - alice writes to bob: first contact pins bob's laptop;
#  - bob enrols a phone through his laptop (devid-agent enroll/endorse):
#    alice's send stops, naming the phone as endorsed by bob's laptop
#    which she accepted, because trust_endorsed is off by default;
#  - alice turns trust_endorsed on for bob: the phone is accepted at once
#    and named, the pin says so, and the send goes to both devices;
#  - bob registers a tablet without an endorsement: the send stops again,
#    trust_endorsed notwithstanding;
#  - trust_endorsed cannot be turned on by editing the pin: the edited pin
#    no longer verifies.
set -eu
prog=test-msg-endorsed
. "$top_srcdir/tests/integration/test-msg-lib.sh"

cast_start

code_of() {
	sed -n 's/^\(devid-enrol1:[A-Za-z0-9_-]*\).*$/\1/p' "$1" | head -n 1
}
endorsement_of() {
	sed -n 's/^\(devid-endorsement1:[A-Za-z0-9_-]*\).*$/\1/p' "$1" |
	    head -n 1
}
# queued DEVICE_ID: envelopes queued for a device.
queued() {
	sql "SELECT count(*) FROM queue WHERE device='$1';"
}

note "alice writes to bob (first contact)"
msg_ok A send "$BOB" -m "hello bob"
out_has "First contact with $BOB: pinned its 1 device(s)"

note "bob enrols a phone through his laptop"
hsm_token bobphone
# shellcheck disable=SC2086
init_device P "$BOB" phone "$HSM_URI" --pin-file "$T/pin" $AGENT_FLAGS
ID_P=$(device_id P)
ag P enroll --no-qr </dev/null >"$T/P.enroll" 2>&1 || true
CODE=$(code_of "$T/P.enroll")
[ -n "$CODE" ] || fail "enroll shows no code: $(cat "$T/P.enroll")"
ag B endorse "$CODE" --yes --no-qr >"$T/B.endorse" 2>&1 ||
	fail "endorse: $(cat "$T/B.endorse")"
ENDORSEMENT=$(endorsement_of "$T/B.endorse")
[ -n "$ENDORSEMENT" ] || fail "endorse printed no endorsement: $(cat "$T/B.endorse")"
ag P enroll --endorsement "$ENDORSEMENT" --password-file "$PASSWORD_FILE" \
    >"$T/P.enroll2" 2>&1 || fail "enroll: $(cat "$T/P.enroll2")"
agent_start P

note "trust_endorsed off (the default): the send stops and says why"
before=$(queued "$ID_B")
msg_fails A send "$BOB" -m "not yet"
err_has "$BOB has a device you have not accepted"
err_has "'phone' $(echo "$ID_P" | cut -c1-4)-"
err_has "endorsed by its device 'laptop'"
err_has "(which you accepted)"
[ "$(queued "$ID_B")" -eq "$before" ] || fail "a refused send was queued"
[ "$(queued "$ID_P")" -eq 0 ] || fail "a refused send reached the phone"

note "trust --endorsed yes: the phone is accepted and named"
msg_ok A trust "$BOB" --endorsed yes
out_has "Accepted device 'phone'"
out_has "trust_endorsed is on for $BOB"
msg_ok A contacts
out_has "$BOB (log entry 2, pinned"
out_has "trust_endorsed"
msg_ok A contacts --json
python3 - "$T/msg.out" "$BOB" "$ID_P" <<'EOF' || fail "contacts --json"
import json, sys
pins = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bob = [p for p in pins if p["account"] == sys.argv[2]][0]
assert bob["trust_endorsed"] is True, bob
phone = [d for d in bob["devices"] if d["device"] == sys.argv[3]][0]
assert phone["accepted"] is True, phone
EOF
msg_ok A send "$BOB" -m "to both of bob's devices"
# bob's laptop and phone, and alice's card (the sender's copy)
out_has "Sent to $BOB: 3 device(s)"
msg_ok P recv
out_has "to both of bob's devices"

note "a device endorsed after trust_endorsed is on: accepted and shown"
hsm_token bobwatch
# shellcheck disable=SC2086
init_device W "$BOB" watch "$HSM_URI" --pin-file "$T/pin" $AGENT_FLAGS
ID_W=$(device_id W)
ag W enroll --no-qr </dev/null >"$T/W.enroll" 2>&1 || true
CODE=$(code_of "$T/W.enroll")
[ -n "$CODE" ] || fail "enroll (watch) shows no code: $(cat "$T/W.enroll")"
# endorsed by the phone, itself accepted through trust_endorsed (its
# agent endorses once its watcher has verified the phone on the log)
i=0
until ag P endorse "$CODE" --yes --no-qr >"$T/P.endorse" 2>&1; do
	i=$((i + 1))
	[ $i -lt 50 ] || fail "endorse by the phone: $(cat "$T/P.endorse")"
	sleep 0.2
done
ag W enroll --endorsement "$(endorsement_of "$T/P.endorse")" \
    --password-file "$PASSWORD_FILE" >"$T/W.enroll2" 2>&1 ||
	fail "enroll (watch): $(cat "$T/W.enroll2")"
msg_ok A send "$BOB" -m "three devices"
err_has "accepted because trust_endorsed is on for $BOB"
err_has "'watch' $(echo "$ID_W" | cut -c1-4)-"
out_has "Sent to $BOB: 4 device(s)"

note "an unendorsed device still stops the send"
hsm_token bobtablet
# shellcheck disable=SC2086
init_device T1 "$BOB" tablet "$HSM_URI" --pin-file "$T/pin" $AGENT_FLAGS
register_device T1
msg_fails A send "$BOB" -m "not to the tablet"
err_has "'tablet'"
err_has "not endorsed by any other device of $BOB"

note "trust_endorsed is signed with the pin"
pin=$T/A/data/devid/contacts/$BOB.json
python3 - "$pin" <<'EOF' || fail "edit the pin"
import json, sys
p = json.load(open(sys.argv[1]))
p.pop("trust_endorsed", None)
json.dump(p, open(sys.argv[1], "w"), indent=1, sort_keys=True)
EOF
msg_fails A send "$BOB" -m "edited pin"
err_has "was changed outside devid-msg"

note "ok"
