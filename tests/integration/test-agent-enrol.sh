#!/bin/sh
# test-agent-enrol.sh - adding a device through an existing one, with real
# agents on swtpm and SoftHSM2 and the real devid-directory on loopback.
#
#  - alice's laptop (A, TPM) registers; her card (C, SoftHSM2) runs
#    `enroll`, which shows its id and enrolment code and waits; the laptop
#    shows the card's label and id, asks on the terminal, endorses it in
#    its token (one signature) and prints the endorsement (and a QR code
#    on a UTF-8 terminal); the waiting `enroll` takes it and registers;
#  - the laptop approves the card by itself and still announces it (an
#    info alert closed at once as "endorsed": log line, journal,
#    alert_command); the card approves the laptop that vouched for it;
#  - a second card (D) enrolled through the first card: approved on both,
#    while D announces the laptop as a pending addition, as before;
#  - what is refused: endorse without a terminal and without --yes, a
#    "no" on the terminal, a code of another account, a code whose label
#    was changed on its way, a device already on the account, an
#    endorsement made for another code;
#  - a directory that swaps what it logs: the endorsement copied onto a
#    record of its own (the log does not verify: log_invalid, nothing
#    added), the genuine record logged without its endorsement (a pending
#    alert, never approved), the new device's record logged with an
#    endorsement by a phantom of the directory's (the new device does not
#    approve its true endorser on the directory's word, nor the phantom);
#  - require_endorsement: an unendorsed registration is a critical alert
#    (status, alerts, --json, the journal, DEVID_ALERT_SEVERITY) that
#    approve refuses without --force; the account's first device is
#    exempt.
# Nothing may crash; the agents' logs must be free of sanitizer reports.
set -eu
prog=test-agent-enrol
. "$top_srcdir/tests/integration/test-agent-lib.sh"

for tool in script openssl zbarimg; do
	command -v "$tool" >/dev/null 2>&1 ||
		fail "$tool not found: run swtpm-ci/install-deps"
done

ACCT=alice@example.org
FLAGS="--check-interval 2 --long-poll 5 --http-timeout 5"
echo wrong-password > "$T/badpw"
chmod 600 "$T/badpw"

dir_start
account_add "$ACCT"
account_add bob@example.org
DIR_ID=$(dir_id 2>/dev/null)
[ ${#DIR_ID} -eq 64 ] || fail "no directory id"
tpm_start
for tok in alicecard alicecard2 alicecard3 alicecard4 alicecard5 bobcard; do
	hsm_token "$tok"
done
uri() {
	echo "pkcs11:token=$1?module-path=$SOFTHSM2_MODULE"
}

# What a compromised directory writes into its own database, and what the
# test reads out of codes and endorsements (PROTOCOL.md sections 2, 3).
cat >"$T/logtool.py" <<'PYEOF'
import base64, hashlib, json, sqlite3, struct, sys

def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def b64e(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")

def lp(b):
    return struct.pack(">I", len(b)) + b

def binding(r):
    return (b"devid-device-v1\0" + lp(r["account"].encode()) +
            lp(r["label"].encode()) + lp(b64d(r["sig_pub"])) +
            lp(r["enc_alg"].encode()) + lp(b64d(r["enc_pub"])) +
            struct.pack(">Q", r["created"]))

def endorse_transcript(r):
    return (b"devid-endorse-v1\0" + lp(r["account"].encode()) +
            lp(r["device"].encode()) +
            lp(hashlib.sha256(binding(r)).digest()))

def event(seq, prev, time, r):
    en = r.get("endorsement")
    p = lp(binding(r)) + lp(b64d(r["binding_sig"]))
    if en:
        p += lp(en["by"].encode()) + lp(b64d(en["sig"]))
    else:
        p += lp(b"") + lp(b"")
    h = hashlib.sha256(b"devid-event-v1\0" + struct.pack(">QQ", seq, time) +
                       lp(b"add") + lp(bytes.fromhex(prev)) + lp(p)).hexdigest()
    return h, {"seq": seq, "time": time, "type": "add", "prev": prev,
               "record": r, "hash": h}

def unwrap(s, prefix):
    assert s.startswith(prefix), s[:30]
    return json.loads(b64d(s[len(prefix):]))

def der_to_raw(der):
    # SEQUENCE { INTEGER r, INTEGER s }, short lengths only (P-256)
    assert der[0] == 0x30
    i, out = 2, b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(32, b"\0")
        i += 2 + n
    return out

cmd = sys.argv[1]
if cmd == "code-record":            # CODE -> the record's JSON
    print(json.dumps(unwrap(sys.argv[2], "devid-enrol1:")))
elif cmd == "relabel":              # CODE LABEL -> the code, label changed
    r = unwrap(sys.argv[2], "devid-enrol1:")
    r["label"] = sys.argv[3]
    print("devid-enrol1:" + b64e(json.dumps(r).encode()))
elif cmd == "endorsement":          # STRING -> {"by", "sig"}
    en = unwrap(sys.argv[2], "devid-endorsement1:")
    print(json.dumps({"by": en["by"], "sig": en["sig"]}))
elif cmd == "endorse":              # RECORD ENDORSEMENT -> record with it
    r = json.loads(sys.argv[2])
    r["endorsement"] = json.loads(sys.argv[3])
    print(json.dumps(r))
elif cmd == "transcript":           # RECORD FILE: the endorsement transcript
    open(sys.argv[3], "wb").write(endorse_transcript(json.loads(sys.argv[2])))
elif cmd == "raw-sig":              # DERFILE -> b64url r||s
    print(b64e(der_to_raw(open(sys.argv[2], "rb").read())))
elif cmd == "insert":               # DB ACCOUNT RECORD -> appends its add event
    db = sqlite3.connect(sys.argv[2], timeout=10)
    acct, r = sys.argv[3], json.loads(sys.argv[4])
    seq, prev = db.execute("SELECT seq, lower(hex(hash)) FROM events WHERE "
                           "account=? ORDER BY seq DESC LIMIT 1",
                           (acct,)).fetchone()
    t = int(__import__("time").time())
    h, ev = event(seq + 1, prev, t, r)
    db.execute("INSERT INTO events(account, seq, time, type, prev, hash, "
               "json) VALUES(?, ?, ?, 'add', ?, ?, ?)",
               (acct, seq + 1, t, bytes.fromhex(prev), bytes.fromhex(h),
                json.dumps(ev, separators=(",", ":"))))
    db.execute("INSERT INTO devices(device, account, active, record, sig_pub, "
               "added_time) VALUES(?, ?, 1, ?, ?, ?)",
               (r["device"], acct, json.dumps(r, separators=(",", ":")),
                b64d(r["sig_pub"]), t))
    db.commit()
    print(seq + 1)
elif cmd == "delete":               # DB ACCOUNT SEQ DEVICE
    db = sqlite3.connect(sys.argv[2], timeout=10)
    db.execute("DELETE FROM events WHERE account=? AND seq=?",
               (sys.argv[3], int(sys.argv[4])))
    db.execute("DELETE FROM devices WHERE device=?", (sys.argv[5],))
    db.commit()
else:
    sys.exit("unknown command " + cmd)
PYEOF
lt() {
	python3 "$T/logtool.py" "$@"
}
# qr_decode FILE: the text of the QR code that FILE shows in half blocks
# (white on black, two modules a character), read back by zbarimg.
qr_decode() {
	python3 - "$1" "$T/qr.pgm" <<'PYX' || return 1
import re, sys
t = open(sys.argv[1], encoding="utf-8").read().replace("\r", "")
t = re.sub(r"\x1b\[[0-9;]*m", "", t)
lines = [l for l in t.split("\n") if l and set(l) <= set(" \u2580\u2584\u2588")
         and "\u2588" in l]
rows = []
for l in lines:
    rows.append([c in "\u2588\u2580" for c in l])
    rows.append([c in "\u2588\u2584" for c in l])
w, scale, q = max(len(r) for r in rows), 4, 4
out = bytearray()
for y in range((len(rows) + 2 * q) * scale):
    ry = y // scale - q
    for x in range((w + 2 * q) * scale):
        rx = x // scale - q
        ok = 0 <= ry < len(rows) and 0 <= rx < len(rows[ry])
        out.append(255 if not ok or rows[ry][rx] else 0)
open(sys.argv[2], "wb").write(b"P5 %d %d 255\n" % ((w + 2 * q) * scale,
    (len(rows) + 2 * q) * scale) + bytes(out))
PYX
	zbarimg -q --raw "$T/qr.pgm" 2>/dev/null
}
# insert_record RECORD: the directory logs RECORD behind the API's back;
# prints the seq.  The directory serves what it read a second ago.
insert_record() {
	lt insert "$T/dir.db" "$ACCT" "$1" || fail "cannot insert a record"
	sleep 1.1
}

short() {
	echo "$1" | cut -c1-16 | sed 's/\(....\)/\1-/g; s/-$//'
}
# state_of NAME ID: the state of device ID in NAME's registry file.
state_of() {
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(([x['state'] for x in d['devices'] if x['device']==sys.argv[2]] + ['absent'])[0])" \
	    "$T/$1/data/devid/registry.json" "$2"
}
# wait_state NAME ID STATE
wait_state() {
	i=0
	until [ "$(state_of "$1" "$2")" = "$3" ]; do
		i=$((i + 1))
		[ $i -lt 150 ] || fail "$(short "$2") is $(state_of "$1" "$2") on $1, not $3: $(ag "$1" status)"
		sleep 0.1
	done
}
# open_added NAME ID: open device_added alerts of device ID on NAME.
open_added() {
	js "$1" status "len([a for a in d['alerts'] if a['kind']=='device_added' and a['device']=='$2'])"
}
# journal_closed NAME ID HOW: 1 when NAME's journal raised an alert for
# device ID with severity info that was closed with HOW.
journal_closed() {
	python3 - "$T/$1/data/devid/alerts.jsonl" "$2" "$3" <<'PYX'
import json, sys
raised, closed = {}, {}
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o["op"] == "raise" and o["alert"]["device"] == sys.argv[2]:
        raised[o["alert"]["id"]] = o["alert"]
    elif o["op"] == "close":
        closed[o["id"]] = o["how"]
ok = [a for i, a in raised.items() if closed.get(i) == sys.argv[3] and
      a["severity"] == "info" and a["kind"] == "device_added"]
print(1 if ok else 0)
PYX
}
# code_of FILE: the enrolment code line in FILE.
code_of() {
	sed -n 's/^\(devid-enrol1:[A-Za-z0-9_-]*\).*$/\1/p' "$1" | head -n 1
}
endorsement_of() {
	tr -d '\r' <"$1" |
	    sed -n 's/^\(devid-endorsement1:[A-Za-z0-9_-]*\).*$/\1/p' | head -n 1
}

# --- the laptop ---
note "the laptop (A, TPM) is the account's first device"
init_device A "$ACCT" laptop tpm2 --tcti "$TCTI" $FLAGS \
    --alert-command "env | grep '^DEVID_ALERT_' | sort > $T/alertA-\$DEVID_ALERT_ID.env"
register_device A
agent_start A
ID_A=$(device_id A)

# --- enrol the card through the laptop ---
note "the card (C) runs enroll: id and code, then it waits"
init_device C "$ACCT" card "$(uri alicecard)" --pin-file "$T/pin" $FLAGS
ID_C=$(device_id C)
mkfifo "$T/C.in"
ag C enroll --password-file "$PASSWORD_FILE" <"$T/C.in" >"$T/C.enroll" 2>&1 &
echo $! >"$T/enroll-C.pid"
exec 7>"$T/C.in"
i=0
until [ -n "$(code_of "$T/C.enroll")" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "enroll shows no code: $(cat "$T/C.enroll")"
	sleep 0.1
done
CODE_C=$(code_of "$T/C.enroll")
grep -q "This device: 'card' $(short "$ID_C") of $ACCT" "$T/C.enroll" ||
	fail "enroll does not show the card's id: $(cat "$T/C.enroll")"
grep -q "devid-agent endorse CODE" "$T/C.enroll" || fail "no instructions"
grep -q "$(printf '\342\226')" "$T/C.enroll" && fail "a QR code into a file"

note "endorse without a terminal and without --yes: refused, nothing signed"
signs0=$(js A status "d['token']['signs']")
if ag A endorse "$CODE_C" </dev/null >"$T/out" 2>&1; then
	fail "endorse without a terminal went ahead"
fi
grep -q -- "--yes" "$T/out" || fail "no hint: $(cat "$T/out")"
grep -q "'card' $(short "$ID_C")" "$T/out" || fail "the card is not shown: $(cat "$T/out")"

note "endorse on a terminal answered 'n': refused"
printf 'n\n' | XDG_CONFIG_HOME=$T/A/cfg XDG_DATA_HOME=$T/A/data \
    XDG_RUNTIME_DIR=$T/A/run LANG=C.UTF-8 \
    script -qec "'$AGENT' endorse '$CODE_C'" /dev/null >"$T/out" 2>&1 || true
grep -q "Does the new device show this label and id" "$T/out" ||
	fail "no question: $(cat "$T/out")"
grep -q "not endorsed" "$T/out" || fail "'n' did not refuse: $(cat "$T/out")"
[ -z "$(endorsement_of "$T/out")" ] || fail "an endorsement after 'n'"
[ "$(js A status "d['token']['signs']")" -eq "$signs0" ] ||
	fail "a refused endorse used the token"

note "endorse on a UTF-8 terminal answered 'y': one signature, a QR code"
printf 'y\n' | XDG_CONFIG_HOME=$T/A/cfg XDG_DATA_HOME=$T/A/data \
    XDG_RUNTIME_DIR=$T/A/run LANG=C.UTF-8 \
    script -qec "'$AGENT' endorse '$CODE_C'" /dev/null >"$T/A.endorse" 2>&1 ||
	fail "endorse: $(cat "$T/A.endorse")"
EN_C=$(endorsement_of "$T/A.endorse")
[ -n "$EN_C" ] || fail "no endorsement: $(cat "$T/A.endorse")"
grep -q "'card' $(short "$ID_C")" "$T/A.endorse" || fail "card not shown"
grep -q "this device 'laptop' $(short "$ID_A")" "$T/A.endorse" ||
	fail "the endorser is not named: $(cat "$T/A.endorse")"
grep -q "$(printf '\342\226\200')" "$T/A.endorse" ||
	fail "no QR code on a UTF-8 terminal"
[ "$(qr_decode "$T/A.endorse")" = "$EN_C" ] ||
	fail "the QR code does not read back as the endorsement"
[ "$(js A status "d['token']['signs']")" -eq $((signs0 + 1)) ] ||
	fail "endorse did not cost exactly one signature"
grep -q "endorsed the enrolment of device 'card'" "$T/A.log" || fail "no log line"
# --no-qr, and no QR code without UTF-8
printf 'y\n' | XDG_CONFIG_HOME=$T/A/cfg XDG_DATA_HOME=$T/A/data \
    XDG_RUNTIME_DIR=$T/A/run LANG=C.UTF-8 \
    script -qec "'$AGENT' endorse --no-qr '$CODE_C'" /dev/null >"$T/out" 2>&1 ||
	fail "endorse --no-qr: $(cat "$T/out")"
grep -q "$(printf '\342\226')" "$T/out" && fail "a QR code despite --no-qr"
printf 'y\n' | XDG_CONFIG_HOME=$T/A/cfg XDG_DATA_HOME=$T/A/data \
    XDG_RUNTIME_DIR=$T/A/run LANG=C LC_ALL=C \
    script -qec "'$AGENT' endorse '$CODE_C'" /dev/null >"$T/out" 2>&1 ||
	fail "endorse: $(cat "$T/out")"
grep -q "$(printf '\342\226')" "$T/out" && fail "a QR code on a non-UTF-8 terminal"
[ -n "$(endorsement_of "$T/out")" ] || fail "no endorsement: $(cat "$T/out")"

note "what endorse refuses: another account, a changed label"
init_device B bob@example.org card "$(uri bobcard)" --pin-file "$T/pin"
ag B enroll </dev/null >"$T/B.enroll" 2>&1 && fail "enroll without endorsement succeeded"
CODE_B=$(code_of "$T/B.enroll")
[ -n "$CODE_B" ] || fail "no code for B: $(cat "$T/B.enroll")"
if ag A endorse "$CODE_B" --yes >"$T/out" 2>&1; then
	fail "endorsed a device of another account"
fi
grep -q "for a device of bob@example.org, not of $ACCT" "$T/out" ||
	fail "wrong-account message: $(cat "$T/out")"
if ag A endorse "$(lt relabel "$CODE_C" laptop2)" --yes >"$T/out" 2>&1; then
	fail "endorsed a code whose label was changed"
fi
grep -q "does not verify" "$T/out" || fail "relabel message: $(cat "$T/out")"
if ag A endorse "${CODE_C%??????????}" --yes >"$T/out" 2>&1; then
	fail "endorsed a code cut short"
fi
# the socket operation checks the same without the client
r=$(rawcall A "{\"op\":\"endorse\",\"record\":$(lt code-record "$CODE_B")}")
echo "$r" | grep -q '"denied"' || fail "op endorse of bob's card: $r"
r=$(rawcall A "{\"op\":\"endorse\",\"record\":$(lt code-record "$(lt relabel "$CODE_C" x)")}")
echo "$r" | grep -q '"rejected"' || fail "op endorse of a changed record: $r"
r=$(rawcall A '{"op":"endorse","record":"x"}')
echo "$r" | grep -q '"bad_request"' || fail "op endorse of a string: $r"
r=$(rawcall A "{\"op\":\"endorse\",\"record\":$(lt code-record "$CODE_C"),\"x\":1}")
echo "$r" | grep -q '"bad_request"' || fail "op endorse with an unknown field: $r"
[ "$(js A status "d['token']['signs']")" -eq $((signs0 + 3)) ] ||
	fail "a refused endorse used the token"

note "the card takes the endorsement and registers"
echo "$EN_C" >&7
exec 7>&-
pid=$(cat "$T/enroll-C.pid")
rc=0
wait "$pid" || rc=$?
rm -f "$T/enroll-C.pid"
[ "$rc" -eq 0 ] || fail "enroll failed: $(cat "$T/C.enroll")"
grep -q "'card' registered for $ACCT" "$T/C.enroll" &&
    grep -q "^with the endorsement of device $(short "$ID_A")" "$T/C.enroll" ||
	fail "enroll output: $(cat "$T/C.enroll")"
python3 - "$T/C/data/devid/registry.json" "$ID_C" "$ID_A" <<'PYX' ||
import json, sys
d = json.load(open(sys.argv[1]))
me = [x for x in d["devices"] if x["device"] == sys.argv[2]][0]
assert me["record"]["endorsement"]["by"] == sys.argv[3], me
PYX
	fail "the card's registry does not keep its endorsement"

note "the laptop approves the card by itself and announces it"
wait_state A "$ID_C" approved
[ "$(open_added A "$ID_C")" -eq 0 ] || fail "an open alert for the endorsed card"
[ "$(journal_closed A "$ID_C" endorsed)" = 1 ] ||
	fail "no info alert closed as endorsed in A's journal"
grep -q "ALERT .*device_added, info.*'card' $(short "$ID_C").*endorsed by approved device 'laptop' $(short "$ID_A") (this device): approved" \
    "$T/A.log" || fail "no announcement in A's log"
i=0
until grep -lq "DEVID_ALERT_DEVICE=$ID_C" "$T"/alertA-*.env 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "alert_command did not run"; sleep 0.1
done
envf=$(grep -l "DEVID_ALERT_DEVICE=$ID_C" "$T"/alertA-*.env | head -n 1)
grep -qx "DEVID_ALERT_SEVERITY=info" "$envf" || fail "severity: $(cat "$envf")"
grep -q "^DEVID_ALERT_MESSAGE=new device 'card'.*: approved" "$envf" ||
	fail "message: $(cat "$envf")"

note "endorse of a device already on the account: refused"
if ag A endorse "$CODE_C" --yes >"$T/out" 2>&1; then
	fail "endorsed a device that is active already"
fi
grep -q "on the account already" "$T/out" || fail "message: $(cat "$T/out")"

note "enroll while the agent runs, and on a registered card: refused"
agent_start C
i=0
until [ "$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print([x['add_seq'] for x in d['devices'] if x['device']==sys.argv[2]][0])" \
    "$T/C/data/devid/registry.json" "$ID_C")" -gt 0 ]; do
	i=$((i + 1)); [ $i -lt 150 ] || fail "C does not see its registration"; sleep 0.1
done
if ag C enroll --endorsement "$EN_C" >"$T/out" 2>&1; then
	fail "enroll while the agent runs went ahead"
fi
grep -q "is running" "$T/out" || fail "message: $(cat "$T/out")"
agent_stop C
if ag C enroll --endorsement "$EN_C" >"$T/out" 2>&1; then
	fail "enroll of a registered card went ahead"
fi
grep -q "registered already" "$T/out" || fail "message: $(cat "$T/out")"
agent_start C

note "the card approves the laptop that vouched for it"
wait_state C "$ID_A" approved
[ "$(open_added C "$ID_A")" -eq 0 ] || fail "C asks about the laptop: $(ag C status)"
[ "$(journal_closed C "$ID_A" endorsed)" = 1 ] ||
	fail "no info alert closed as endorsed in C's journal"
grep -q "device 'laptop' $(short "$ID_A") .*endorsed the enrolment of this device: approved" \
    "$T/C.log" || fail "no announcement in C's log"

# --- a second card, enrolled through the first card ---
note "card2 (D) enrolls through the card; D watches with require_endorsement"
init_device D "$ACCT" card2 "$(uri alicecard2)" --pin-file "$T/pin" $FLAGS \
    --require-endorsement
grep -q "^require_endorsement = yes" "$T/D/cfg/devid/agent.conf" ||
	fail "init did not keep require_endorsement"
ID_D=$(device_id D)
# on a UTF-8 terminal: the code as a QR code too; Ctrl-D ends it
XDG_CONFIG_HOME=$T/D/cfg XDG_DATA_HOME=$T/D/data XDG_RUNTIME_DIR=$T/D/run \
    LANG=C.UTF-8 script -qec "'$AGENT' enroll" /dev/null </dev/null \
    >"$T/D.enroll" 2>&1 || true
grep -q "no endorsement was given" "$T/D.enroll" || fail "message: $(cat "$T/D.enroll")"
CODE_D=$(tr -d '\r' <"$T/D.enroll" | code_of /dev/stdin)
[ -n "$CODE_D" ] || fail "no code: $(cat "$T/D.enroll")"
[ "$(qr_decode "$T/D.enroll")" = "$CODE_D" ] ||
	fail "the QR code does not read back as the enrolment code"
ag C endorse "$CODE_D" --yes --no-qr >"$T/C.endorse" 2>&1 ||
	fail "C endorse: $(cat "$T/C.endorse")"
EN_D=$(endorsement_of "$T/C.endorse")
[ -n "$EN_D" ] || fail "no endorsement from C"
ag D enroll --endorsement "$EN_D" --password-file "$PASSWORD_FILE" \
    >"$T/D.enroll" 2>&1 || fail "enroll D: $(cat "$T/D.enroll")"
wait_state A "$ID_D" approved
wait_state C "$ID_D" approved
[ "$(open_added A "$ID_D")" -eq 0 ] || fail "A asks about card2"
grep -q "'card2' $(short "$ID_D").*endorsed by approved device 'card' $(short "$ID_C"): approved" \
    "$T/A.log" || fail "A's announcement of card2"
agent_start D
wait_state D "$ID_C" approved
note "D announces the laptop as before (the account's first device: no --force)"
wait_state D "$ID_A" pending
[ "$(js D status "[a['severity'] for a in d['alerts'] if a['device']=='$ID_A'][0]")" = warning ] ||
	fail "the first device is not a warning on D"
ag D approve "$(echo "$ID_A" | cut -c1-8)" >"$T/out" 2>&1 ||
	fail "approve of the first device under require_endorsement: $(cat "$T/out")"

# --- an endorsement made for another code ---
note "an endorsement made for another code: refused by enroll"
init_device E "$ACCT" card3 "$(uri alicecard3)" --pin-file "$T/pin" $FLAGS
ID_E=$(device_id E)
ag E enroll --no-qr </dev/null >"$T/E.enroll" 2>&1 || true
CODE_E=$(code_of "$T/E.enroll")
cp "$T/E/data/devid/registry.json" "$T/E.registry.before"
if ag E enroll --endorsement "$EN_D" --password-file "$PASSWORD_FILE" \
    >"$T/out" 2>&1; then
	fail "enroll took an endorsement of card2"
fi
grep -q "not one of this device" "$T/out" || fail "message: $(cat "$T/out")"
cmp -s "$T/E.registry.before" "$T/E/data/devid/registry.json" ||
	fail "a refused endorsement changed the registry"
if ag E enroll --endorsement "${EN_D%?????}" >"$T/out" 2>&1; then
	fail "enroll took an endorsement cut short"
fi
[ "$(sql "SELECT count(*) FROM devices WHERE device='$ID_E';")" -eq 0 ] ||
	fail "registered with a refused endorsement"

# --- the directory swaps what it logs ---
ag A endorse "$CODE_E" --yes --no-qr >"$T/A.endorseE" 2>&1 || fail "endorse E"
EN_E=$(endorsement_of "$T/A.endorseE")
REC_E=$(lt code-record "$CODE_E")

note "swap 1: the genuine endorsement copied onto the directory's own record"
now=$(date +%s)
set -- $(sql "SELECT seq, lower(hex(hash)) FROM events WHERE account='$ACCT' ORDER BY seq DESC LIMIT 1;" | tr '|' ' ')
seq_before=$1
"$FORGE" "$ACCT" card3 $(($1 + 1)) "$2" "$now" >"$T/forged" || fail "forge"
PH_ID=$(sed -n 1p "$T/forged")
REC_PH=$(lt endorse "$(sed -n 4p "$T/forged")" "$(lt endorsement "$EN_E")")
seq=$(insert_record "$REC_PH")
for n in A C D; do
	wait_alert "$n" log_invalid 15 >/dev/null
	[ "$(state_of "$n" "$PH_ID")" = absent ] || fail "$n took the copied record"
	[ "$(js "$n" status "d['watcher']['seq']")" -eq "$seq_before" ] ||
		fail "$n moved past the invalid event"
	[ "$(js "$n" status "[a['severity'] for a in d['alerts'] if a['kind']=='log_invalid'][0]")" = critical ] ||
		fail "log_invalid is not critical on $n"
done
lt delete "$T/dir.db" "$ACCT" "$seq" "$PH_ID"
sleep 1.1
for n in A C D; do
	ag "$n" ack "$(js "$n" status "[a['id'] for a in d['alerts'] if a['kind']=='log_invalid'][0]")" \
	    >/dev/null || fail "ack on $n"
done

note "swap 2: card3's record logged without its endorsement"
# card3 takes the laptop's endorsement, but the registration fails (a
# wrong password): its registry keeps the endorsement it vouched for.
if ag E enroll --endorsement "$EN_E" --password-file "$T/badpw" \
    >"$T/E.enroll" 2>&1; then
	fail "enroll with a wrong password succeeded"
fi
grep -q "not registered" "$T/E.enroll" || fail "message: $(cat "$T/E.enroll")"
insert_record "$REC_E" >/dev/null
for n in A C; do
	wait_alert "$n" device_added 15 >/dev/null
	wait_state "$n" "$ID_E" pending
	[ "$(js "$n" status "[a['details']['endorsed'] for a in d['alerts'] if a['device']=='$ID_E'][0]")" = False ] ||
		fail "$n: card3 counts as endorsed"
	[ "$(js "$n" status "[a['severity'] for a in d['alerts'] if a['device']=='$ID_E'][0]")" = warning ] ||
		fail "$n: the unendorsed card3 is not a warning"
done
wait_state D "$ID_E" pending
[ "$(js D status "[a['severity'] for a in d['alerts'] if a['device']=='$ID_E'][0]")" = critical ] ||
	fail "D (require_endorsement): card3 is not critical"
agent_start E
wait_state E "$ID_A" pending
[ "$(open_added E "$ID_A")" -eq 1 ] ||
	fail "E approved the laptop though its record was logged without the endorsement"

note "swap 3: card4's record logged with the endorsement of a phantom"
init_device F "$ACCT" card4 "$(uri alicecard4)" --pin-file "$T/pin" $FLAGS
ID_F=$(device_id F)
ag F enroll --no-qr </dev/null >"$T/F.enroll" 2>&1 || true
CODE_F=$(code_of "$T/F.enroll")
ag A endorse "$CODE_F" --yes --no-qr >"$T/A.endorseF" 2>&1 || fail "endorse F"
ag F enroll --endorsement "$(endorsement_of "$T/A.endorseF")" \
    --password-file "$T/badpw" >/dev/null 2>&1 && fail "registered with a wrong password"
set -- $(sql "SELECT seq, lower(hex(hash)) FROM events WHERE account='$ACCT' ORDER BY seq DESC LIMIT 1;" | tr '|' ' ')
"$FORGE" "$ACCT" phantom $(($1 + 1)) "$2" "$now" "$T/phantom.pem" >"$T/forged" ||
	fail "forge"
PH2_ID=$(sed -n 1p "$T/forged")
insert_record "$(sed -n 4p "$T/forged")" >/dev/null
REC_F=$(lt code-record "$CODE_F")
lt transcript "$REC_F" "$T/tr.bin"
openssl dgst -sha256 -sign "$T/phantom.pem" -out "$T/sig.der" "$T/tr.bin" ||
	fail "openssl dgst"
insert_record "$(lt endorse "$REC_F" "{\"by\":\"$PH2_ID\",\"sig\":\"$(lt raw-sig "$T/sig.der")\"}")" \
    >/dev/null
wait_state A "$ID_F" pending
js A status "[a['message'] for a in d['alerts'] if a['device']=='$ID_F'][0]" |
    grep -q "endorsed by unapproved device 'phantom'" || fail "A's alert for card4"
agent_start F
wait_state F "$PH2_ID" pending
wait_state F "$ID_A" pending
[ "$(open_added F "$ID_A")" -eq 1 ] || fail "F approved the laptop on the phantom's word"

# --- require_endorsement ---
note "require_endorsement: an unendorsed registration is critical"
agent_stop A
agent_start A --require-endorsement
init_device U "$ACCT" card5 "$(uri alicecard5)" --pin-file "$T/pin"
ID_U=$(device_id U)
register_device U
wait_state A "$ID_U" pending
al=$(js A status "[a for a in d['alerts'] if a['device']=='$ID_U'][0]['severity']")
[ "$al" = critical ] || fail "the unendorsed addition is $al on A"
js A status "[a['message'] for a in d['alerts'] if a['device']=='$ID_U'][0]" |
    grep -q "require_endorsement is on.*approve --force $(short "$ID_U")" ||
	fail "the message does not say what to do"
ag A alerts | grep "$(short "$ID_U")" | grep -q " critical " ||
	fail "alerts does not show the severity: $(ag A alerts)"
ag A alerts --json | grep -q '"severity": "critical"' || fail "alerts --json"
python3 - "$T/A/data/devid/alerts.jsonl" "$ID_U" <<'PYX' ||
import json, sys
sev = [json.loads(l)["alert"]["severity"] for l in open(sys.argv[1])
       if '"raise"' in l and json.loads(l)["alert"]["device"] == sys.argv[2]]
assert sev == ["critical"], sev
PYX
	fail "the journal lacks the severity"
i=0
until grep -lq "DEVID_ALERT_DEVICE=$ID_U" "$T"/alertA-*.env 2>/dev/null; do
	i=$((i + 1)); [ $i -lt 50 ] || fail "alert_command did not run"; sleep 0.1
done
grep -qx "DEVID_ALERT_SEVERITY=critical" "$(grep -l "DEVID_ALERT_DEVICE=$ID_U" "$T"/alertA-*.env)" ||
	fail "DEVID_ALERT_SEVERITY"
if ag A approve "$(short "$ID_U")" >"$T/out" 2>&1; then
	fail "approve without --force accepted an unendorsed device"
fi
grep -q "approve --force $(short "$ID_U")" "$T/out" || fail "message: $(cat "$T/out")"
[ "$(state_of A "$ID_U")" = pending ] || fail "refused, yet approved"
r=$(rawcall A "{\"op\":\"approve\",\"device\":\"$ID_U\",\"force\":\"yes\"}")
echo "$r" | grep -q '"bad_request"' || fail "force must be a boolean: $r"
# card3 (its endorsement dropped by the directory) needs --force too
ag A approve "$(short "$ID_E")" >/dev/null 2>&1 &&
	fail "approved card3 without --force"
ag A approve --force "$(short "$ID_U")" >"$T/out" 2>&1 ||
	fail "approve --force: $(cat "$T/out")"
[ "$(state_of A "$ID_U")" = approved ] || fail "not approved with --force"
[ "$(open_added A "$ID_U")" -eq 0 ] || fail "--force left the alert open"
note "without require_endorsement, approve alone does"
wait_state C "$ID_U" pending
[ "$(js C status "[a['severity'] for a in d['alerts'] if a['device']=='$ID_U'][0]")" = warning ] ||
	fail "C: not a warning"
ag C approve "$(short "$ID_U")" >/dev/null || fail "approve on C"

for n in A C D E F; do
	agent_alive "$n"
done
for n in A C D E F; do
	agent_stop "$n"
done
note "PASS"
