#!/bin/sh
# test-dir-pg-instances.sh - long-polls woken across two devid-directory
# processes on one PostgreSQL database: a throw-away cluster
# (swtpm-ci/pg-start), instances A and B on it, and
# tests/integration/test_dir_pg_wake driving them: a registration
# through A wakes a log long-poll on B, a message through A an inbox
# long-poll on B, and after a restart of PostgreSQL (which the program
# asks for) B listens again and is still woken.  Both instances must
# then stop cleanly.  Before them, tests/unit/test_dir_shutdown stops
# and restarts the in-process server under load on the database, with
# the listening thread started and stopped in every cycle.  After them,
# the transparency log: one instance (the sequencer) makes checkpoints
# of the tree both append to, and both serve the same one, covering
# every event in the database.
#
# A missing PostgreSQL is a failure, not a skip.
set -eu

fail() {
	echo "test-dir-pg-instances: FAIL: $*" >&2
	exit 1
}

note() {
	echo "test-dir-pg-instances: $*"
}

. "$top_srcdir/tests/integration/pg-lib.sh"
pg_begin pgi

note "stops and restarts of the in-process server under load, listening"
DEVID_TEST_PG_URI=$URI "$top_builddir/tests/unit/test_dir_shutdown" ||
    fail "tests/unit/test_dir_shutdown against PostgreSQL"
# A fresh database for the instances.
pg_psql -q "$URI" -c "SET client_min_messages = warning;
    DROP SCHEMA public CASCADE; CREATE SCHEMA public;" ||
    fail "cannot empty the database"

D=$top_builddir/directory/devid-directory
"$D" key --db "$URI" --signing-key "$T/head.key" > "$T/out" 2>&1 ||
    { cat "$T/out" >&2; fail "key with --signing-key"; }

# serve N: instance N on a port of the kernel's choosing.
serve() {
	"$D" serve --db "$URI" --signing-key "$T/head.key" --open-signup \
	    --scrypt-cost 10 --rate 0 --listen 127.0.0.1:0 \
	    --ready-file "$T/ready$1" > "$T/serve$1.log" 2>&1 &
	eval "PID$1=$!"
	DIR_PID="$DIR_PID $!"
	i=0
	while [ ! -s "$T/ready$1" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || { cat "$T/serve$1.log" >&2;
		    fail "instance $1 wrote no ready file"; }
		kill -0 $! 2>/dev/null ||
		    { cat "$T/serve$1.log" >&2; fail "instance $1 exited"; }
		sleep 0.1
	done
}
serve 1
serve 2

note "wake-ups from A to B, and again after a restart of PostgreSQL"
DEVID_TEST_DIR_A="http://$(cat "$T/ready1")" \
DEVID_TEST_DIR_B="http://$(cat "$T/ready2")" \
DEVID_TEST_LOG_B="$T/serve2.log" \
DEVID_TEST_PG_RESTART="'$top_srcdir/swtpm-ci/pg-stop' '$T/pg' &&
    '$top_srcdir/swtpm-ci/pg-start' '$T/pg' > /dev/null" \
    "$top_builddir/tests/integration/test_dir_pg_wake" || {
	tail -n 20 "$T/serve1.log" "$T/serve2.log" >&2
	fail "tests/integration/test_dir_pg_wake"
}

note "one transparency log: the same checkpoint of every event from both"
events=$(pg_psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$URI" \
    -c "SELECT count(*) FROM events") || fail "psql"
[ "$events" -gt 0 ] || fail "no event in the database"
i=0
while :; do
	c1=$(curl -sf "http://$(cat "$T/ready1")/v1/tlog/checkpoint") || c1=
	c2=$(curl -sf "http://$(cat "$T/ready2")/v1/tlog/checkpoint") || c2=
	size=$(printf '%s' "$c1" | python3 -c '
import json, sys
print(json.load(sys.stdin)["checkpoint"].split("\n")[1])' 2>/dev/null) ||
	    size=
	[ -n "$c1" ] && [ "$c1" = "$c2" ] && [ "$size" = "$events" ] && break
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the instances serve different checkpoints" \
	    "or not one of all $events events: '$c1' and '$c2'"
	sleep 0.1
done
leaves=$(curl -sf "http://$(cat "$T/ready2")/v1/tlog/leaves?start=0&end=$events" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["leaves"]))') ||
    fail "leaves from instance 2"
[ "$leaves" = "$events" ] || fail "$leaves leaves for $events events"

# SIGTERM: each drains and exits 0 (under the sanitizers: no leak, no
# thread left behind).
for n in 1 2; do
	eval "p=\$PID$n"
	kill "$p"
	st=0
	wait "$p" || st=$?
	[ "$st" -eq 0 ] || { tail -n 40 "$T/serve$n.log" >&2;
	    fail "instance $n exited with status $st"; }
done
DIR_PID=""
note "ok"
