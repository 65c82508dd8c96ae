#!/bin/sh
# test-agent-secretfiles.sh - PIN and password files are refused when
# group or others may read them, as ssh refuses such key files, with a
# message that says to run chmod 600, and nothing is changed; the same
# files with mode 0600 work.  With a SoftHSM2 token and a real directory:
#
#  - devid-directory account add --password-file: no account made;
#  - devid-agent init --pin-file: no config, no keys (init then works);
#  - devid-agent register --password-file: no device on the directory;
#  - devid-agent run with pin_file: the daemon does not start;
#  - devid-agent unlock --pin-file: the daemon stays locked.
set -eu
prog=test-agent-secretfiles
. "$top_srcdir/tests/integration/test-agent-lib.sh"

ACCT=alice@example.org

# open_copy FILE MODE: a copy of $T/FILE at $T/FILE-open with MODE.
open_copy() {
	cp "$T/$1" "$T/$1-open"
	chmod "$2" "$T/$1-open"
}

# refused WHAT FILE: the last command's output ($T/out) names FILE and
# the command that fixes it, and does not show the secret.
refused() {
	grep -qF "run chmod 600 $2" "$T/out" ||
		fail "$1: no 'chmod 600' hint: $(cat "$T/out")"
	if grep -qF -e pw-for-tests -e pin-81c3 "$T/out"; then
		fail "$1: the secret was shown"
	fi
	note "$1: refused ($(head -n 1 "$T/out"))"
}

[ "$(stat -c %a "$T/pin")" = 600 ] || fail "the test's PIN file is not 0600"

dir_start
DIR_ID=$(dir_id 2>/dev/null)

note "devid-directory account add --password-file"
open_copy password 644
if "$DIRECTORY" account add "$ACCT" --db "$T/dir.db" --scrypt-cost 10 \
    --password-file "$T/password-open" >"$T/out" 2>&1; then
	fail "account add read a password file of mode 0644"
fi
refused "account add" "$T/password-open"
[ "$(sql "SELECT count(*) FROM accounts WHERE name='$ACCT';")" -eq 0 ] ||
	fail "account add made the account anyway"
account_add "$ACCT"
[ "$(sql "SELECT count(*) FROM accounts WHERE name='$ACCT';")" -eq 1 ] ||
	fail "account add with a 0600 file made no account"

note "devid-agent init --pin-file"
hsm_token card
open_copy pin 640
if ag C init --account "$ACCT" --label card --token "$HSM_URI" \
    --directory "$URL" --directory-key "$DIR_ID" \
    --pin-file "$T/pin-open" >"$T/out" 2>&1; then
	fail "init read a PIN file of mode 0640"
fi
refused "init" "$T/pin-open"
[ ! -e "$T/C/cfg/devid/agent.conf" ] || fail "init wrote its config anyway"
# No keys were made either: init would find them and refuse.
init_device C "$ACCT" card "$HSM_URI" --pin-file "$T/pin" \
    --check-interval 2 --long-poll 5

note "devid-agent register --password-file"
if ag C register --password-file "$T/password-open" >"$T/out" 2>&1; then
	fail "register read a password file of mode 0644"
fi
refused "register" "$T/password-open"
[ "$(sql "SELECT count(*) FROM devices WHERE account='$ACCT';")" -eq 0 ] ||
	fail "register sent the device anyway"
register_device C
[ "$(sql "SELECT count(*) FROM devices WHERE account='$ACCT';")" -eq 1 ] ||
	fail "register with a 0600 file registered nothing"

note "devid-agent run with pin_file"
mkdir -p "$T/C/run"
chmod 700 "$T/C/run"
CONF=$T/C/cfg/devid/agent.conf
grep -q "^pin_file = $T/pin\$" "$CONF" || fail "init did not record the PIN file"
sed -i "s|^pin_file = .*|pin_file = $T/pin-open|" "$CONF"
# It stops at start-up; should it start, timeout ends it (and the test).
rc=0
XDG_CONFIG_HOME=$T/C/cfg XDG_DATA_HOME=$T/C/data XDG_RUNTIME_DIR=$T/C/run \
    timeout 60 "$AGENT" run --foreground >"$T/out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "run with a PIN file of mode 0640 exited with $rc: $(cat "$T/out")"
refused "run" "$T/pin-open"
[ ! -e "$T/C/run/devid/agent.sock" ] || fail "the daemon opened its socket"

note "devid-agent unlock --pin-file"
sed -i '/^pin_file = /d' "$CONF"
agent_start C
[ "$(js C status "d['locked']")" = True ] || fail "the agent is not locked without a PIN"
if ag C unlock --pin-file "$T/pin-open" >"$T/out" 2>&1; then
	fail "unlock read a PIN file of mode 0640"
fi
refused "unlock" "$T/pin-open"
[ "$(js C status "d['locked']")" = True ] || fail "unlocked by a refused PIN file"
chmod 600 "$T/pin-open"
ag C unlock --pin-file "$T/pin-open" >"$T/out" 2>&1 ||
	fail "unlock with the file now 0600: $(cat "$T/out")"
[ "$(js C status "d['locked']")" = False ] || fail "still locked after unlock"
if grep -qF -e pw-for-tests -e pin-81c3 "$T/C.log"; then
	fail "a secret is in the agent's log"
fi

agent_alive C
agent_stop C
note "PASS"
