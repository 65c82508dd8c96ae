#!/bin/sh
# test-agent-attacks.sh - devid-agent against a directory that lies and a
# network that blocks, with a TPM device (A) and a SoftHSM2 device (C) of
# one account:
#
#  - phantom device: a valid device record and add event written straight
#    into the directory's SQLite file, bypassing the API (a compromised
#    directory): every agent alerts; the registry does not approve it
#    until the user does;
#  - a tampered registry file (a device added by hand): an alert, the
#    agent keeps running and announces the account's devices again;
#  - a rolled-back log, a rewritten event, a head signed by another key:
#    each alerts with its evidence;
#  - a blocked directory: a staleness alert on both devices within
#    max_stale + one check interval, cleared on each only after a
#    successful check once it is back.
# Nothing may crash; the agents' logs must be free of sanitizer reports.
set -eu
prog=test-agent-attacks
. "$top_srcdir/tests/integration/test-agent-lib.sh"

INTERVAL=2
MAX_STALE=6

dir_start
account_add alice@example.org
DIR_ID=$(dir_id 2>/dev/null)
tpm_start
hsm_token alicecard
URI_C=$HSM_URI

FLAGS="--check-interval $INTERVAL --long-poll 5 --max-stale $MAX_STALE --http-timeout 3"
# shellcheck disable=SC2086
init_device A alice@example.org laptop tpm2 --tcti "$TCTI" $FLAGS
# shellcheck disable=SC2086
init_device C alice@example.org card "$URI_C" --pin-file "$T/pin" $FLAGS
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
ACCT=alice@example.org

# tail_of: "SEQ HASH" of the account's last event in the database.
tail_of() {
	sql "SELECT seq, lower(hex(hash)) FROM events WHERE account='$ACCT' ORDER BY seq DESC LIMIT 1;" |
	    tr '|' ' '
}

# --- phantom device ---
note "phantom device written into the directory's database"
set -- $(tail_of)
seq=$(($1 + 1))
now=$(date +%s)
"$FORGE" "$ACCT" phantom "$seq" "$2" "$now" "$T/phantom.pem" > "$T/forged" ||
	fail "forge"
PH_ID=$(sed -n 1p "$T/forged")
PH_HASH=$(sed -n 2p "$T/forged")
PH_EVENT=$(sed -n 3p "$T/forged")
PH_REC=$(sed -n 4p "$T/forged")
PH_SPKI=$(sed -n 5p "$T/forged")
sql "INSERT INTO events(account, seq, time, type, prev, hash, json) VALUES('$ACCT', $seq, $now, 'add', X'$2', X'$PH_HASH', '$PH_EVENT');
     INSERT INTO devices(device, account, active, record, sig_pub, added_time) VALUES('$PH_ID', '$ACCT', 1, '$PH_REC', X'$PH_SPKI', $now);" ||
	fail "cannot insert the phantom"
for n in A C; do
	ms=$(wait_alert "$n" device_added $((INTERVAL + 8)))
	note "$n announced the phantom after $ms ms"
	[ "$(js "$n" status "[a['label'] for a in d['alerts'] if a['kind']=='device_added'][0]")" = phantom ] ||
		fail "$n: the alert does not name the phantom"
done
for n in A C; do
	st=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print([x['state'] for x in d['devices'] if x['device']==sys.argv[2]][0])" \
	    "$T/$n/data/devid/registry.json" "$PH_ID")
	[ "$st" = pending ] || fail "$n's registry has the phantom as $st"
done
# The messaging client must not encrypt to it: the registry says pending.
[ "$(js A devices "[x['state'] for x in d['devices'] if x['device']=='$PH_ID'][0]")" = pending ] ||
	fail "devices shows the phantom as accepted"
# Acknowledging does not approve.
id=$(js A status "[a['id'] for a in d['alerts'] if a['kind']=='device_added'][0]")
ag A ack "$id" >/dev/null || fail "ack"
[ "$(js A devices "[x['state'] for x in d['devices'] if x['device']=='$PH_ID'][0]")" = pending ] ||
	fail "ack approved the phantom"

# --- rollback ---
note "rolled-back log: the phantom's event disappears"
saved_event=$PH_EVENT
sql "DELETE FROM events WHERE account='$ACCT' AND seq=$seq;" || fail "delete"
for n in A C; do
	ms=$(wait_alert "$n" rollback $((INTERVAL + 8)))
	note "$n reported the rollback after $ms ms"
done
ag A status --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
a = [x for x in d['alerts'] if x['kind'] == 'rollback'][0]
v = a['details']['verified_head']; c = a['details']['conflicting_head']
assert v['seq'] == $seq and c['seq'] == $seq - 1, (v, c)
assert v['sig'] and c['sig']
" || fail "rollback evidence"
sql "INSERT INTO events(account, seq, time, type, prev, hash, json) VALUES('$ACCT', $seq, $now, 'add', X'$2', X'$PH_HASH', '$saved_event');" ||
	fail "restore"
for n in A C; do
	ag "$n" ack "$(js "$n" status "[a['id'] for a in d['alerts'] if a['kind']=='rollback'][0]")" \
	    >/dev/null || fail "ack rollback"
done

# --- rewritten event ---
note "rewritten event: the last event's hash changes under the same seq"
sql "UPDATE events SET hash=X'$(printf '%064d' 7)' WHERE account='$ACCT' AND seq=$seq;" ||
	fail "rewrite"
for n in A C; do
	ms=$(wait_alert "$n" fork $((INTERVAL + 8)))
	note "$n reported the rewritten history after $ms ms"
done
ag A status --json | python3 -c "
import json, sys
d = json.load(sys.stdin)
a = [x for x in d['alerts'] if x['kind'] == 'fork'][0]
v = a['details']['verified_head']; c = a['details']['conflicting_head']
assert v['seq'] == c['seq'] == $seq and v['hash'] != c['hash'], (v, c)
" || fail "fork evidence"
sql "UPDATE events SET hash=X'$PH_HASH' WHERE account='$ACCT' AND seq=$seq;" ||
	fail "restore"

# --- endorsed additions ---
# insert_forged FILE: appends the forged add event in FILE (test_agent_forge
# output made for the current tail) to the log.
insert_forged() {
	ff=$1
	set -- $(tail_of)
	sql "INSERT INTO events(account, seq, time, type, prev, hash, json) VALUES('$ACCT', $(($1 + 1)), $now, 'add', X'$2', X'$(sed -n 2p "$ff")', '$(sed -n 3p "$ff")');
	     INSERT INTO devices(device, account, active, record, sig_pub, added_time) VALUES('$(sed -n 1p "$ff")', '$ACCT', 1, '$(sed -n 4p "$ff")', X'$(sed -n 5p "$ff")', $now);" ||
		fail "cannot insert $ff"
}
# forge_endorsed LABEL OUT: a device endorsed by the phantom, for the tail.
forge_endorsed() {
	set -- $(tail_of) "$1" "$2"
	rm -f "$T/tmpkey.pem"
	"$FORGE" "$ACCT" "$3" $(($1 + 1)) "$2" "$now" "$T/tmpkey.pem" \
	    "$T/phantom.pem" > "$4" || fail "forge $3"
	rm -f "$T/tmpkey.pem"
	insert_forged "$4"
}
# endorsed_alert NAME LABEL: "endorsed endorser_approved" of its alert.
endorsed_alert() {
	js "$1" status "' '.join(str(a['details'][k]) for a in d['alerts'] if a['label']=='$2' for k in ('endorsed', 'endorser_approved'))"
}
note "an addition endorsed by an unapproved device"
forge_endorsed endorsed1 "$T/forged-e1"
wait_alert A device_added $((INTERVAL + 8)) >/dev/null
i=0
until [ -n "$(endorsed_alert A endorsed1)" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "no alert for endorsed1"; sleep 0.1
done
[ "$(endorsed_alert A endorsed1)" = "True False" ] ||
	fail "endorsed1: $(endorsed_alert A endorsed1)"
js A status "[a['message'] for a in d['alerts'] if a['label']=='endorsed1'][0]" |
    grep -q "endorsed by unapproved device 'phantom'" || fail "endorsed1 message"
note "an addition endorsed by an approved device: approved, still announced"
ag A approve "$(echo "$PH_ID" | cut -c1-8)" >/dev/null || fail "approve phantom"
forge_endorsed endorsed2 "$T/forged-e2"
state_by_label() {
	js "$1" devices "([x['state'] for x in d['devices'] if x['label']=='$2'] + ['absent'])[0]"
}
i=0
until [ "$(state_by_label A endorsed2)" = approved ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "endorsed2 is $(state_by_label A endorsed2) on A"; sleep 0.1
done
grep -q "ALERT .*device_added, info.*'endorsed2'.*endorsed by approved device 'phantom'.*: approved" \
    "$T/A.log" || fail "endorsed2 was not announced"
[ "$(js A status "len([a for a in d['alerts'] if a['label']=='endorsed2'])")" -eq 0 ] ||
	fail "endorsed2 left an open alert"
# C never approved the phantom: there, endorsed2 waits for the user.
i=0
until [ "$(state_by_label C endorsed2)" = pending ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "endorsed2 is $(state_by_label C endorsed2) on C"; sleep 0.1
done

# --- tampered registry ---
note "tampered registry: a device added by hand to C's registry"
agent_stop C
python3 - "$T/C/data/devid/registry.json" "$PH_ID" <<'EOF' || fail "edit"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
# a device added by hand, approved, and the phantom approved too
extra = dict(d["devices"][0])
extra.pop("record", None)
extra["device"] = "ab" * 32
extra["label"] = "added by hand"
extra["state"] = "approved"
d["devices"].append(extra)
for x in d["devices"]:
    if x["device"] == sys.argv[2]:
        x["state"] = "approved"
json.dump(d, open(p, "w"), indent=1, sort_keys=True)
EOF
agent_start C
[ "$(open_alerts C registry_tampered)" -eq 1 ] || fail "no registry alert: $(ag C status)"
ls "$T/C/data/devid/"registry.json.rejected-* >/dev/null 2>&1 ||
	fail "the rejected registry was not kept"
[ "$(js C status "d['registry_verified']")" = True ] || fail "C not running on its own registry"
ms=$(wait_alert C device_added 10)
note "C announced the account's devices again after $ms ms"
[ "$(js C devices "[x['state'] for x in d['devices'] if x['device']=='$PH_ID'][0]")" = pending ] ||
	fail "the hand-approved phantom was trusted"
[ "$(js C devices "len([x for x in d['devices'] if x['label']=='added by hand'])")" -eq 0 ] ||
	fail "the device added by hand was kept"

note "registry changed while the agent runs"
python3 - "$T/A/data/devid/registry.json" <<'PYX' || fail "edit"
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["devices"][0]["label"] = "renamed"
json.dump(d, open(p, "w"), indent=1, sort_keys=True)
PYX
ms=$(wait_alert A registry_tampered $((INTERVAL + 8)))
note "A noticed the changed registry after $ms ms"
ls "$T/A/data/devid/"registry.json.rejected-* >/dev/null 2>&1 ||
	fail "the changed registry was not kept"
agent_stop A
agent_start A
[ "$(open_alerts A registry_tampered)" -eq 1 ] ||
	fail "the rewritten registry does not verify after a restart"

# --- head under another key ---
note "head signed by another key"
dir_stop
mv "$T/dir.db.key" "$T/dir.db.key.orig"
dir_start "$DIR_PORT"
[ "$(dir_id 2>/dev/null)" != "$DIR_ID" ] || fail "the key did not change"
for n in A C; do
	ms=$(wait_alert "$n" wrong_key $((INTERVAL + 10)))
	note "$n reported the foreign head key after $ms ms"
done
dir_stop
mv "$T/dir.db.key.orig" "$T/dir.db.key"
dir_start "$DIR_PORT"

# --- blocked directory ---
note "blocked directory: staleness within max_stale + one interval"
# Both fresh again and without a stale alert from the checks that failed
# under the foreign key: what follows is the blocked directory's doing.
for n in A C; do
	i=0
	until [ "$(js "$n" status "d['watcher']['age']")" -le 1 ]; do
		i=$((i + 1)); [ $i -lt 150 ] || fail "$n does not recover"; sleep 0.1
	done
	wait_no_alert "$n" stale $((INTERVAL + 10)) >/dev/null
done
last=$(js A status "d['watcher']['last_success']")
dir_stop
stopped=$(now_ms)
ms=$(wait_alert A stale $((MAX_STALE + INTERVAL + 10)))
since_last=$(( $(now_ms) - last * 1000 ))
note "stale alert $ms ms after the directory stopped, ${since_last} ms after the last fresh check (max_stale ${MAX_STALE} s, interval ${INTERVAL} s)"
[ "$since_last" -le $(( (MAX_STALE + INTERVAL + 3) * 1000 )) ] ||
	fail "staleness took too long"
# C (PKCS#11) watches the same way as A (TPM).
ms=$(wait_alert C stale $((MAX_STALE + INTERVAL + 10)))
note "C raised its stale alert too ($ms ms after A)"
sleep $INTERVAL
for n in A C; do
	[ "$(open_alerts "$n" stale)" -eq 1 ] ||
		fail "the stale alert of $n cleared without a check"
done
dir_start "$DIR_PORT"
back=$(date +%s)
for n in A C; do
	ms=$(wait_no_alert "$n" stale $((INTERVAL + 10)))
	note "stale alert of $n cleared $ms ms after the directory came back"
	[ "$(js "$n" status "d['watcher']['last_success']")" -ge "$back" ] ||
		fail "$n cleared without a successful check"
	grep -q '"how":"clear"' "$T/$n/data/devid/alerts.jsonl" ||
		fail "clear not journalled on $n"
done

for n in A C; do
	agent_alive "$n"
	agent_stop "$n"
done
note "PASS"
