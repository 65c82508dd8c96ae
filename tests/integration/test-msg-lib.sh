# test-msg-lib.sh - shared set-up for the devid-msg integration tests
# (sourced, not run).  It builds on test-agent-lib.sh (a temporary
# directory, a devid-directory on a free loopback port, swtpm, SoftHSM2,
# cleanup on every exit path) and adds the messaging client and a
# standard cast:
#
#   A  alice@example.org 'laptop'  TPM (swtpm)
#   C  alice@example.org 'card'    SoftHSM2 token
#   B  bob@example.org   'laptop'  SoftHSM2 token
#
# Every device runs its own devid-agent with its own XDG directories.
# The cleanup of test-agent-lib.sh stops every agent started (restarts
# included), then whatever a test put into $T/NAME.pid (a second
# directory, a following client) and any devid- process that still names
# $T, then swtpm, before it removes $T.

. "$top_srcdir/tests/integration/test-agent-lib.sh"

MSG=$top_builddir/msgclient/devid-msg
[ -x "$MSG" ] || fail "$MSG is not built"
ALICE=alice@example.org
BOB=bob@example.org
INTERVAL=${INTERVAL:-2}
AGENT_FLAGS="--check-interval $INTERVAL --long-poll 5 --max-stale 600 --http-timeout 5"

# msg NAME ARGS...: devid-msg as device NAME.  Output goes to stdout and
# stderr as usual; a sanitizer report fails the test.
msg() {
	n=$1
	shift
	rc=0
	XDG_CONFIG_HOME=$T/$n/cfg XDG_DATA_HOME=$T/$n/data \
	    XDG_RUNTIME_DIR=$T/$n/run "$MSG" "$@" >"$T/msg.out" 2>"$T/msg.err" ||
		rc=$?
	if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' \
	    "$T/msg.out" "$T/msg.err"; then
		cat "$T/msg.err" >&2
		fail "devid-msg $*: sanitizer report"
	fi
	cat "$T/msg.out"
	cat "$T/msg.err" >&2
	return $rc
}

# msg_ok NAME ARGS...: devid-msg must succeed; its output is in
# $T/msg.out and $T/msg.err.
msg_ok() {
	msg "$@" >/dev/null 2>&1 ||
		fail "devid-msg $* failed: $(cat "$T/msg.out" "$T/msg.err")"
}

# msg_fails NAME ARGS...: devid-msg must fail (exit 1).
msg_fails() {
	rc=0
	msg "$@" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 1 ] ||
		fail "devid-msg $* exited with $rc, expected 1: $(cat "$T/msg.out" "$T/msg.err")"
}

# out_has TEXT / err_has TEXT: the last devid-msg output contains TEXT.
out_has() {
	grep -qF -- "$1" "$T/msg.out" ||
		fail "expected '$1' in the output of devid-msg: $(cat "$T/msg.out" "$T/msg.err")"
}
err_has() {
	grep -qF -- "$1" "$T/msg.err" ||
		fail "expected '$1' on devid-msg's standard error: $(cat "$T/msg.out" "$T/msg.err")"
}

# cast_start: the directory, both accounts, the three devices registered
# and running, alice's two devices approving each other.
cast_start() {
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
	register_device A
	register_device C
	register_device B
	ID_A=$(device_id A)
	ID_C=$(device_id C)
	ID_B=$(device_id B)
	agent_start A
	agent_start C
	agent_start B
	wait_alert A device_added 15 >/dev/null
	wait_alert C device_added 15 >/dev/null
	ag A approve "$(echo "$ID_C" | cut -c1-8)" >/dev/null || fail "approve C on A"
	ag C approve "$(echo "$ID_A" | cut -c1-8)" >/dev/null || fail "approve A on C"
}

# db_tail ACCOUNT: "SEQ HASH" of the account's last event in the database.
db_tail() {
	sql "SELECT seq, lower(hex(hash)) FROM events WHERE account='$1' ORDER BY seq DESC LIMIT 1;" |
	    tr '|' ' '
}

# phantom DB ACCOUNT LABEL: writes a valid device record and its add
# event straight into the directory database DB (what a compromised
# directory can do; with DEVID_TEST_DIR_BACKEND=pg2 into the cluster,
# whatever DB says).  Sets PH_ID.
phantom() {
	if [ "$DIR_BACKEND" = pg2 ]; then
		phantom_pg "$2" "$3"
		return
	fi
	db=$1
	acct=$2
	label=$3
	set -- $(sqlite3 -cmd ".timeout 5000" "$db" \
	    "SELECT seq, lower(hex(hash)) FROM events WHERE account='$acct' ORDER BY seq DESC LIMIT 1;" |
	    tr '|' ' ')
	seq=$(($1 + 1))
	now=$(date +%s)
	"$FORGE" "$acct" "$label" "$seq" "$2" "$now" >"$T/forged" || fail "forge"
	PH_ID=$(sed -n 1p "$T/forged")
	ph_hash=$(sed -n 2p "$T/forged")
	ph_event=$(sed -n 3p "$T/forged")
	ph_rec=$(sed -n 4p "$T/forged")
	ph_spki=$(sed -n 5p "$T/forged")
	sqlite3 -cmd ".timeout 5000" "$db" \
	    "INSERT INTO events(account, seq, time, type, prev, hash, json) VALUES('$acct', $seq, $now, 'add', X'$2', X'$ph_hash', '$ph_event');
	     INSERT INTO devices(device, account, active, record, sig_pub, added_time) VALUES('$PH_ID', '$acct', 1, '$ph_rec', X'$ph_spki', $now);" ||
		fail "cannot write the phantom into $db"
	# The directory answers from memory what it read less than a second
	# ago (docs/directory.md): a change behind its back shows after that.
	sleep 1.1
}

# phantom_pg ACCOUNT LABEL: phantom on the pg2 cluster.
phantom_pg() {
	acct=$1
	label=$2
	set -- $(sql_pg "SELECT seq, encode(hash, 'hex') FROM events WHERE account='$acct' ORDER BY seq DESC LIMIT 1;" |
	    tr '|' ' ')
	seq=$(($1 + 1))
	now=$(date +%s)
	"$FORGE" "$acct" "$label" "$seq" "$2" "$now" >"$T/forged" || fail "forge"
	PH_ID=$(sed -n 1p "$T/forged")
	sql_pg "INSERT INTO events(account, seq, time, type, prev, hash, json) VALUES('$acct', $seq, $now, 'add', '\x$2', '\x$(sed -n 2p "$T/forged")', '$(sed -n 3p "$T/forged")');
	    INSERT INTO devices(device, account, active, record, sig_pub, added_time) VALUES('$PH_ID', '$acct', true, '$(sed -n 4p "$T/forged")', '\x$(sed -n 5p "$T/forged")', $now);" >/dev/null
	sleep 1.1
}

# inject ENVELOPE_FILE DEVICE_ID: queues the envelope in the file for a
# device straight in the database, as a directory that replays or
# forwards tampered messages would.
inject() {
	python3 - "$T/dir.db" "$1" "$2" <<'PYEOF' || fail "cannot inject $1"
import base64, json, sqlite3, sys, os
db, path, dev = sys.argv[1:4]
env = open(path).read().strip()
msg_id = base64.urlsafe_b64decode(json.loads(env)["id"] + "==")
c = sqlite3.connect(db, timeout=5)
cur = c.cursor()
# A sender column of its own keeps the (sender, msg_id) pair unique.
cur.execute("INSERT INTO messages(sender, msg_id, envelope, refs) VALUES(?, ?, ?, 1)",
            ("inject-" + os.urandom(8).hex(), msg_id, env))
cur.execute("INSERT INTO queue(device, message) VALUES(?, ?)", (dev, cur.lastrowid))
c.commit()
PYEOF
}

# inbox_copy DEVICE_ID OUT: the newest envelope queued for a device, as
# the directory stores it (for the attack tests: a captured message).
inbox_copy() {
	sql "SELECT m.envelope FROM queue q JOIN messages m ON m.id = q.message WHERE q.device='$1' ORDER BY q.seq DESC LIMIT 1;" >"$2"
	[ -s "$2" ] || fail "nothing queued for $1"
}
