#!/bin/sh
# test-agent-longlog.sh - a log longer than one directory answer.
#
# The directory answers at most 1024 events at a time.  Here 1040 valid
# events (520 devices, each added and then revoked by itself) land on the
# account at once, written straight into the directory's database.  The
# agent must fetch the pages, verify them as one chain against the last
# signed head, announce every addition, and raise no log_invalid alert.
set -eu
prog=test-agent-longlog
. "$top_srcdir/tests/integration/test-agent-lib.sh"

LONGLOG=$top_builddir/tests/integration/test_agent_longlog
[ -x "$LONGLOG" ] || fail "$LONGLOG is not built (make check builds it)"
CYCLES=520
ACCT=alice@example.org

dir_start
account_add "$ACCT"
DIR_ID=$(dir_id 2>/dev/null)
hsm_token alicecard
init_device A "$ACCT" card "$HSM_URI" --pin-file "$T/pin" \
    --check-interval 2 --long-poll 2 --max-stale 600 --http-timeout 10
register_device A
agent_start A

set -- $(sql "SELECT seq, lower(hex(hash)) FROM events WHERE account='$ACCT' ORDER BY seq DESC LIMIT 1;" | tr '|' ' ')
[ "$1" = 1 ] || fail "expected one event before the burst, found $1"
"$LONGLOG" "$ACCT" 2 "$2" "$(date +%s)" "$CYCLES" > "$T/burst.sql" ||
	fail "cannot make the long log"
python3 - "$T/dir.db" "$T/burst.sql" <<'PYX' || fail "cannot write the long log"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
db.executescript(open(sys.argv[2]).read())
db.close()
PYX
last=$((1 + 2 * CYCLES))
note "wrote events 2 to $last into the directory's database"

i=0
while :; do
	seq=$(js A status "d['watcher']['seq']")
	[ "$seq" = "$last" ] && break
	i=$((i + 1))
	[ $i -lt 600 ] ||
		fail "the agent stayed at seq $seq of $last: $(tail -n 5 "$T/A.log")"
	sleep 0.2
done
note "the agent verified the whole log up to seq $last"
[ "$(open_alerts A log_invalid)" = 0 ] ||
	fail "log_invalid raised: $(ag A alerts)"
added=$(open_alerts A device_added)
[ "$added" = "$CYCLES" ] ||
	fail "$added device_added alerts, expected $CYCLES"
revoked=$(open_alerts A device_revoked)
[ "$revoked" = "$CYCLES" ] ||
	fail "$revoked device_revoked alerts, expected $CYCLES"
note "all $CYCLES additions and revocations announced"
agent_stop A
echo "$prog: all passed"
