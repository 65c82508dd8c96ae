#!/bin/sh
# test-dir-migrate.sh - devid-directory migrate, from a SQLite directory
# that real clients populated into a throw-away PostgreSQL cluster
# (swtpm-ci/pg-start):
#
#  - tests/integration/dir-migrate-client registers accounts and devices
#    (one revoked), posts messages and acknowledges one through a serve
#    on SQLite; migrate copies it and says what it copied; the source is
#    unchanged; account show prints the same on both databases, and the
#    copy's transparency log has the source's leaves and stored nodes;
#  - a serve on PostgreSQL with the same head key: the same clients log
#    in again, read the same logs and inboxes (same seqs), post and
#    register further, and the copy's tree grows by one leaf per event;
#  - a migrate into the database that now holds data is refused and
#    changes nothing;
#  - a source with one event hash changed (the stored column and the
#    event's JSON) is caught by the verification, and the target keeps
#    nothing.
#
# Then the migrate unit tests (tests/unit/test_dir_migrate) against the
# cluster: what the verification refuses, each leaving the target empty.
#
# A missing PostgreSQL is a failure, not a skip.
set -eu

fail() {
	echo "test-dir-migrate: FAIL: $*" >&2
	exit 1
}

note() {
	echo "test-dir-migrate: $*"
}

: "${top_srcdir:?}" "${top_builddir:?}"
D=$top_builddir/directory/devid-directory
CLIENT=$top_builddir/tests/integration/dir-migrate-client
UNIT=$top_builddir/tests/unit/test_dir_migrate
[ -x "$D" ] || fail "$D is not built"
[ -x "$CLIENT" ] || fail "$CLIENT is not built"
[ -x "$UNIT" ] || fail "$UNIT is not built"
command -v python3 >/dev/null || fail "no python3"
T=$(mktemp -d "${TMPDIR:-/tmp}/devid-migrate-XXXXXX")
# The cluster runs as another user when this runs as root: let it in.
chmod 711 "$T"
DIR_PID=""
CLIENT_PID=""
cleanup() {
	for p in $DIR_PID $CLIENT_PID; do
		kill "$p" 2>/dev/null || :
		wait "$p" 2>/dev/null || :
	done
	"$top_srcdir/swtpm-ci/pg-stop" "$T/pg" 2>/dev/null || :
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# serve DB [options]: a directory on DB on a free loopback port; its
# address in $ADDR, its process in $DIR_PID.
serve() {
	db=$1
	shift
	rm -f "$T/ready"
	"$D" serve --db "$db" --open-signup --scrypt-cost 10 --rate 0 \
	    --listen 127.0.0.1:0 --ready-file "$T/ready" "$@" \
	    > "$T/serve.log" 2>&1 &
	DIR_PID=$!
	i=0
	while [ ! -s "$T/ready" ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || { cat "$T/serve.log" >&2;
		    fail "the directory wrote no ready file"; }
		kill -0 "$DIR_PID" 2>/dev/null ||
		    { cat "$T/serve.log" >&2; fail "the directory exited"; }
		sleep 0.1
	done
	ADDR=$(cat "$T/ready")
}

stop() {
	kill "$DIR_PID"
	wait "$DIR_PID" 2>/dev/null || :
	DIR_PID=""
}

# show DB FILE: account list and show of both accounts into FILE.
show() {
	{
		"$D" account list --db "$1"
		"$D" account show alice@example.org --db "$1"
		"$D" account show bob@example.org --db "$1"
	} > "$2" 2>&1 || { cat "$2" >&2; fail "account show on $1"; }
}

# The source, populated through the real server.
note "clients populate a SQLite directory"
SRC=$T/dir.db
serve "$SRC"
mkfifo "$T/fifo"
"$CLIENT" "http://$ADDR" < "$T/fifo" > "$T/client.out" 2> "$T/client.err" &
CLIENT_PID=$!
# Holds the fifo open for writing until the second URL is sent.
exec 3> "$T/fifo"
i=0
until grep -q '^populated$' "$T/client.out"; do
	i=$((i + 1))
	kill -0 "$CLIENT_PID" 2>/dev/null ||
	    { cat "$T/client.err" >&2; fail "the client failed"; }
	[ $i -lt 600 ] || fail "the client did not populate the directory"
	sleep 0.1
done
stop
show "$SRC" "$T/show.sqlite"
grep -q "log at seq 4" "$T/show.sqlite" || { cat "$T/show.sqlite" >&2;
    fail "alice's log is not at seq 4"; }
sum_before=$(cat "$SRC" "$SRC-wal" 2>/dev/null | sha256sum)

URI=$("$top_srcdir/swtpm-ci/pg-start" "$T/pg") ||
    fail "cannot start PostgreSQL (swtpm-ci/pg-start)"
case $URI in
postgresql://*) ;;
*) fail "pg-start printed no URI: $URI" ;;
esac

note "migrate: the arguments"
rc=0
"$D" migrate --from "$SRC" > "$T/out" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "migrate without --to exited with $rc"
grep -q -- "--to" "$T/out" || { cat "$T/out" >&2; fail "no --to message"; }
rc=0
"$D" migrate --from "$SRC" --to "$T/other.db" > "$T/out" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "migrate to a file exited with $rc"
rc=0
"$D" migrate --from "$T/missing.db" --to "$URI" > "$T/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "migrate from a missing file exited with $rc"
grep -q "missing.db" "$T/out" || { cat "$T/out" >&2; fail "missing msg"; }
[ ! -e "$T/missing.db" ] || fail "migrate created its source"

note "migrate into an empty PostgreSQL database"
"$D" migrate --from "$SRC" --to "$URI" > "$T/out" 2>&1 ||
    { cat "$T/out" >&2; fail "migrate"; }
grep -q "^2 accounts, 5 events, 2 queued messages copied; every log verifies$" \
    "$T/out" || { cat "$T/out" >&2; fail "migrate's summary"; }
grep -q "$URI" "$T/out" && fail "migrate shows the connection URI"
[ "$(cat "$SRC" "$SRC-wal" 2>/dev/null | sha256sum)" = "$sum_before" ] ||
    fail "migrate changed its source"
show "$URI" "$T/show.pg"
diff "$T/show.sqlite" "$T/show.pg" >&2 ||
    fail "account show differs between the source and the copy"

note "the copy's transparency log is the source's, leaf for leaf, node for node"
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)/psql
[ -x "$PSQL" ] || fail "no psql"
run=""
[ "$(id -u)" -eq 0 ] && run="runuser -u postgres --"
# Every leaf and every stored node, one line each, in order.
tree_sqlite() {
	python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for r in db.execute("SELECT idx, account, seq, hash FROM tlog_leaves "
                    "ORDER BY idx"):
    print("leaf %d %s %d %s" % (r[0], r[1], r[2], bytes(r[3]).hex()))
for r in db.execute("SELECT level, idx, hash FROM tlog_nodes "
                    "ORDER BY level, idx"):
    print("node %d %d %s" % (r[0], r[1], bytes(r[2]).hex()))
PY
}
tree_pg() {
	$run "$PSQL" -qAt -F ' ' "$URI" -c "SELECT 'leaf', idx, account, seq,
	    encode(hash, 'hex') FROM tlog_leaves ORDER BY idx" -c "SELECT
	    'node', level, idx, encode(hash, 'hex') FROM tlog_nodes
	    ORDER BY level, idx"
}
tree_sqlite "$SRC" > "$T/tree.sqlite" || fail "cannot read the source's tree"
tree_pg > "$T/tree.pg" || fail "cannot read the copy's tree"
[ "$(grep -c '^leaf ' "$T/tree.sqlite")" -eq 5 ] ||
    { cat "$T/tree.sqlite" >&2; fail "the source's tree has not 5 leaves"; }
# 5 leaves: 5 at level 0, 2 at level 1, 1 at level 2.
[ "$(grep -c '^node ' "$T/tree.sqlite")" -eq 8 ] ||
    { cat "$T/tree.sqlite" >&2; fail "the source's tree has not 8 nodes"; }
diff "$T/tree.sqlite" "$T/tree.pg" >&2 ||
    fail "the copy's transparency log differs from the source's"

note "the clients carry on against PostgreSQL"
serve "$URI" --signing-key "$SRC.key"
echo "http://$ADDR" >&3
exec 3>&-
wait "$CLIENT_PID" || { cat "$T/client.err" >&2; fail "the client failed" \
    "against the copy"; }
CLIENT_PID=""
grep -q '^ok$' "$T/client.out" || fail "the client did not finish"
stop

note "the copy's tree grew with the clients' new events"
tree_pg > "$T/tree.pg2" || fail "cannot read the copy's tree"
n_events=$($run "$PSQL" -qAt "$URI" -c "SELECT COUNT(*) FROM events") ||
    fail "cannot count the copy's events"
[ "$(grep -c '^leaf ' "$T/tree.pg2")" -eq "$n_events" ] ||
    { cat "$T/tree.pg2" >&2; fail "the copy has not one leaf per event"; }
[ "$n_events" -gt 5 ] || fail "the clients appended no event to the copy"
grep '^leaf ' "$T/tree.sqlite" > "$T/leaves.sqlite"
grep '^leaf ' "$T/tree.pg2" | head -n 5 | diff "$T/leaves.sqlite" - >&2 ||
    fail "the copy's first leaves are not the source's"

note "a target that holds data is refused and left alone"
show "$URI" "$T/show.pg2"
grep -q "log at seq 5" "$T/show.pg2" || { cat "$T/show.pg2" >&2;
    fail "alice's log on the copy is not at seq 5"; }
rc=0
"$D" migrate --from "$SRC" --to "$URI" > "$T/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$T/out" >&2; fail "migrate into a database with" \
    "data exited with $rc"; }
grep -q "is not empty" "$T/out" || { cat "$T/out" >&2; fail "not-empty msg"; }
show "$URI" "$T/show.pg3"
diff "$T/show.pg2" "$T/show.pg3" >&2 || fail "the refused migrate changed" \
    "the target"

note "a damaged source is caught and leaves the target empty"
$run "$PSQL" -q "$URI" -c "SET client_min_messages = warning;
    DROP SCHEMA public CASCADE; CREATE SCHEMA public;" ||
    fail "cannot empty the database"
cp "$SRC" "$T/damaged.db"
python3 - "$T/damaged.db" <<'PY' || fail "cannot damage the copy"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT json, hash FROM events WHERE "
                 "account = 'alice@example.org' AND seq = 2").fetchone()
ev = json.loads(row[0])
h = bytearray(row[1])
h[0] ^= 1
ev["hash"] = bytes(h).hex()
db.execute("UPDATE events SET json = ?, hash = ? WHERE "
           "account = 'alice@example.org' AND seq = 2",
           (json.dumps(ev, separators=(",", ":")), bytes(h)))
db.commit()
PY
rc=0
"$D" migrate --from "$T/damaged.db" --to "$URI" > "$T/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || { cat "$T/out" >&2; fail "migrate of a damaged source" \
    "exited with $rc"; }
grep -q "the log of 'alice@example.org' does not verify at event 2" \
    "$T/out" || { cat "$T/out" >&2; fail "the damage is not named"; }
"$D" account list --db "$URI" > "$T/out" 2>&1 || fail "account list"
[ ! -s "$T/out" ] || { cat "$T/out" >&2; fail "the failed migrate left" \
    "accounts behind"; }
# The database is still a valid, empty target.
"$D" migrate --from "$SRC" --to "$URI" > "$T/out" 2>&1 ||
    { cat "$T/out" >&2; fail "migrate after the failed one"; }

note "migrate unit tests on PostgreSQL"
DEVID_TEST_PG_URI=$URI "$UNIT" ||
    fail "tests/unit/test_dir_migrate against PostgreSQL"

note "ok"
