#!/bin/sh
# test-agent-migrate.sh - a directory moved from SQLite to PostgreSQL
# under running agents (swtpm, SoftHSM2), the way an operator would:
#
#  - alice's laptop (TPM) and card (SoftHSM2) run against a directory on
#    SQLite, each having approved the other;
#  - the directory is stopped, `devid-directory migrate` copies it into a
#    fresh PostgreSQL cluster and verifies every log, and the same URL is
#    served from PostgreSQL with the same head key;
#  - both agents go on checking with no failure and no alert (no
#    rollback, fork, wrong key or stale view): they do not notice;
#  - a device registered afterwards is announced on both, as before.
set -eu
prog=test-agent-migrate
. "$top_srcdir/tests/integration/test-agent-lib.sh"

[ "$DIR_BACKEND" != pg2 ] || fail "this test starts on SQLite by itself"
ACCT=alice@example.org
FLAGS="--check-interval 1 --long-poll 5 --max-stale 600 --http-timeout 5"

# checks_past NAME N: waits until NAME's watcher made more than N checks.
checks_past() {
	i=0
	until [ "$(js "$1" status "d['watcher']['checks']")" -gt "$2" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || fail "$1 made no check: $(ag "$1" status)"
		sleep 0.1
	done
}
# no_alerts NAME: NAME has no open alert of any kind.
no_alerts() {
	n=$(js "$1" status "len(d['alerts'])")
	[ "$n" -eq 0 ] || fail "$1 has $n open alert(s): $(ag "$1" alerts)"
}

note "alice's laptop and card on a SQLite directory"
dir_start
account_add "$ACCT"
DIR_ID=$(dir_id 2>/dev/null)
tpm_start
hsm_token card
# shellcheck disable=SC2086
init_device A "$ACCT" laptop tpm2 --tcti "$TCTI" $FLAGS
# shellcheck disable=SC2086
init_device C "$ACCT" card "$HSM_URI" --pin-file "$T/pin" $FLAGS
register_device A
register_device C
ID_A=$(device_id A)
ID_C=$(device_id C)
agent_start A
agent_start C
wait_alert A device_added 15 >/dev/null
wait_alert C device_added 15 >/dev/null
ag A approve "$(echo "$ID_C" | cut -c1-8)" >/dev/null || fail "approve C on A"
ag C approve "$(echo "$ID_A" | cut -c1-8)" >/dev/null || fail "approve A on C"
no_alerts A
no_alerts C

note "migrate the directory to PostgreSQL; the same URL, the same key"
dir_stop
chmod 711 "$T"          # the cluster runs as another user under root
PG_URI=$("$CI/pg-start" "$T/pg") || fail "cannot start PostgreSQL"
"$DIRECTORY" migrate --from "$T/dir.db" --to "$PG_URI" >"$T/migrate.out" \
    2>&1 || fail "migrate: $(cat "$T/migrate.out")"
grep -q "every log verifies" "$T/migrate.out" ||
	fail "migrate did not verify: $(cat "$T/migrate.out")"
DIR_DB=$PG_URI
DIR_KEY_ARGS="--signing-key $T/dir.db.key"
dir_serve_pg 1 "$DIR_PORT"
[ "http://$(cat "$T/dir.addr")" = "$URL" ] || fail "not the same URL"

note "both agents go on without noticing"
checks_a=$(js A status "d['watcher']['checks']")
checks_c=$(js C status "d['watcher']['checks']")
checks_past A $((checks_a + 3))
checks_past C $((checks_c + 3))
no_alerts A
no_alerts C
# Checks that failed while the directory was down may count; none since.
for n in A C; do
	failed=$(js "$n" status "d['watcher']['failed']")
	checks=$(js "$n" status "d['watcher']['checks']")
	checks_past "$n" $((checks + 3))
	[ "$(js "$n" status "d['watcher']['failed']")" -eq "$failed" ] ||
		fail "$n's checks fail against PostgreSQL: $(ag "$n" status)"
done

note "a device added afterwards is announced on both"
hsm_token phone
# shellcheck disable=SC2086
init_device P "$ACCT" phone "$HSM_URI" --pin-file "$T/pin" $FLAGS
register_device P
wait_alert A device_added 15 >/dev/null
wait_alert C device_added 15 >/dev/null
js A status "[a['label'] for a in d['alerts']]" | grep -q phone ||
	fail "A's alert is not about the phone: $(ag A alerts)"
agent_check_log A
agent_check_log C

note "ok"
