#!/bin/sh
# test-dir-store-pg.sh - the directory on PostgreSQL, with a throw-away
# cluster (swtpm-ci/pg-start) in a temporary directory:
#
#  - the storage unit tests (tests/unit/test_dir_store) against it: the
#    cases both backends share, and those of several stores on one
#    database (one chain from two stores, nonces once, migrations
#    together, connections cut);
#  - devid-directory with --db postgresql://...: account add, list and
#    show, the head key required with --signing-key; two instances
#    serving one database, with one sign-up raced through both winning
#    once; a lost database answered with 503 and Retry-After by both,
#    then full service again without a restart once PostgreSQL is back.
#
# A missing PostgreSQL is a failure, not a skip.
set -eu

fail() {
	echo "test-dir-store-pg: FAIL: $*" >&2
	exit 1
}

note() {
	echo "test-dir-store-pg: $*"
}

. "$top_srcdir/tests/integration/pg-lib.sh"
pg_begin pg

note "storage unit tests on PostgreSQL"
DEVID_TEST_PG_URI=$URI "$top_builddir/tests/unit/test_dir_store" ||
    fail "tests/unit/test_dir_store against PostgreSQL"

# A fresh database for the command line.
pg_psql -q "$URI" -c "SET client_min_messages = warning;
    DROP SCHEMA public CASCADE; CREATE SCHEMA public;" ||
    fail "cannot empty the database"

D=$top_builddir/directory/devid-directory
note "devid-directory account commands on PostgreSQL"
printf 'correct horse battery staple\n' > "$T/pw"
chmod 600 "$T/pw"
"$D" account add alice@example.org --db "$URI" --password-file "$T/pw" \
    > "$T/out" 2>&1 || { cat "$T/out" >&2; fail "account add"; }
if "$D" account add alice@example.org --db "$URI" \
    --password-file "$T/pw" > "$T/out" 2>&1; then
	fail "a second account add of one name succeeded"
fi
grep -q "already exists" "$T/out" || { cat "$T/out" >&2; fail "exists"; }
"$D" account list --db "$URI" > "$T/out" 2>&1 || fail "account list"
grep -q "alice@example.org" "$T/out" || fail "account list shows alice"
"$D" account show alice@example.org --db "$URI" > "$T/out" 2>&1 ||
    fail "account show"
grep -q "log at seq 0" "$T/out" || { cat "$T/out" >&2; fail "show"; }

note "a password in the URI is refused (the process list shows it)"
if "$D" account list --db "postgresql://devid:s3cr3t@localhost/devid" \
    > "$T/out" 2>&1; then
	fail "a URI with a password was accepted"
fi
grep -q "process list" "$T/out" || { cat "$T/out" >&2; fail "password msg"; }
if grep -q "s3cr3t" "$T/out"; then
	fail "the password was shown"
fi

note "the head key needs --signing-key with PostgreSQL"
if "$D" key --db "$URI" > "$T/out" 2>&1; then
	fail "key without --signing-key on PostgreSQL succeeded"
fi
grep -q -- "--signing-key" "$T/out" || { cat "$T/out" >&2; fail "key msg"; }
"$D" key --db "$URI" --signing-key "$T/head.key" > "$T/out" 2>&1 ||
    { cat "$T/out" >&2; fail "key with --signing-key"; }

note "two instances on one database; a lost database gives 503, then both recover"
serve() {
	"$D" serve --db "$URI" --signing-key "$T/head.key" --open-signup \
	    --scrypt-cost 10 --rate 0 --listen 127.0.0.1:0 \
	    --ready-file "$T/ready$1" > "$T/serve$1.log" 2>&1 &
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
A=$(cat "$T/ready1")
B=$(cat "$T/ready2")
# status ADDR PATH [curl arguments]: the HTTP status of one request.
status() {
	addr=$1
	path=$2
	shift 2
	curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' "$@" \
	    "http://$addr$path" || :
}
for x in "$A" "$B"; do
	[ "$(status "$x" /v1/health)" = 200 ] || fail "health on PostgreSQL"
done

# signup_body ACCOUNT: the body of POST /v1/accounts.
signup_body() {
	printf '{"account":"%s","password":"%s"}' "$1" \
	    "correct horse battery staple"
}

# One sign-up raced through both instances at once (one request in
# flight at each, under their per-network password throttles): exactly
# one of each pair wins.
for n in 1 2 3; do
	rm -f "$T/signup.A" "$T/signup.B"
	body=$(signup_body "carol$n@example.org")
	curl -s -o /dev/null -w '%{http_code}' -H \
	    'Content-Type: application/json' --data "$body" \
	    "http://$A/v1/accounts" > "$T/signup.A" &
	ja=$!
	curl -s -o /dev/null -w '%{http_code}' -H \
	    'Content-Type: application/json' --data "$body" \
	    "http://$B/v1/accounts" > "$T/signup.B" &
	jb=$!
	wait $ja $jb || :
	got=$(cat "$T/signup.A" "$T/signup.B" | sort | tr '\n' ' ')
	[ "$(cat "$T/signup.A")$(cat "$T/signup.B")" = 201409 ] ||
	    [ "$(cat "$T/signup.A")$(cat "$T/signup.B")" = 409201 ] ||
	    fail "sign-up of carol$n through both instances: $got"
done
"$D" account list --db "$URI" > "$T/out" 2>&1 || fail "account list"
[ "$(grep -c 'carol[123]@example.org' "$T/out")" = 3 ] ||
    fail "the carols are not listed once each"
grep -q "$URI" "$T/serve1.log" "$T/serve2.log" &&
    fail "a log shows the connection URI"

"$top_srcdir/swtpm-ci/pg-stop" "$T/pg" || fail "pg-stop"
for x in "$A" "$B"; do
	code=$(status "$x" /v1/health)
	[ "$code" = 503 ] || { cat "$T/body" >&2; fail "health without the" \
	    "database: $code, not 503"; }
	grep -qi '^retry-after:' "$T/headers" || fail "503 without Retry-After"
	# A request whose session must be looked up in the database.
	code=$(status "$x" /v1/accounts/alice@example.org/log -H \
	    "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	[ "$code" = 503 ] || { cat "$T/body" >&2; fail "a read without the" \
	    "database: $code, not 503"; }
	grep -qi '^retry-after:' "$T/headers" || fail "503 without Retry-After"
	grep -q "PostgreSQL" "$T/body" &&
	    fail "the answer shows database details"
done
for p in $DIR_PID; do
	kill -0 "$p" 2>/dev/null || fail "an instance died with the database"
done

"$top_srcdir/swtpm-ci/pg-start" "$T/pg" > /dev/null || fail "pg restart"
n=0
for x in "$A" "$B"; do
	n=$((n + 1))
	# 503 until the instance tries again (within half a second).
	i=0
	until [ "$(status "$x" /v1/health)" = 200 ]; do
		i=$((i + 1))
		[ $i -lt 50 ] || fail "no service after PostgreSQL came back"
		sleep 0.1
	done
	code=$(status "$x" /v1/accounts -H 'Content-Type: application/json' \
	    --data "$(signup_body "dave$n@example.org")")
	[ "$code" = 201 ] || { cat "$T/body" >&2; fail "sign-up after the" \
	    "restart: $code"; }
done
"$D" account list --db "$URI" > "$T/out" 2>&1 || fail "account list again"
[ "$(grep -c '@example.org' "$T/out")" = 6 ] ||
    { cat "$T/out" >&2; fail "accounts after the restart"; }

for p in $DIR_PID; do
	kill "$p"
	wait "$p" 2>/dev/null || :
done
DIR_PID=""
note "ok"
