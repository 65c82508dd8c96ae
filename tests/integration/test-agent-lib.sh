# test-agent-lib.sh - shared set-up for the devid-agent integration tests
# (sourced, not run).  Each test gets a fresh temporary directory holding
# a devid-directory on a free loopback port, a swtpm, SoftHSM2 tokens and
# one state/config/runtime tree per device; the EXIT trap stops everything
# that was started, on every path.  A missing tool is a failure.
#
# The directory is one process on a SQLite file ($T/dir.db), unless
# DEVID_TEST_DIR_BACKEND=pg2: then a throw-away PostgreSQL cluster
# (swtpm-ci/pg-start, in $T/pg) and two processes on it, one head key
# for both.  Devices named in DEVID_TEST_DIR2_DEVICES (init_device's
# NAME, space-separated; unset: every second device) talk to the second
# (URL2), the others to the first (URL); sql and the account tools go to
# the database.

: "${top_srcdir:?run through make check (top_srcdir is not set)}"
: "${top_builddir:?run through make check (top_builddir is not set)}"

fail() {
	echo "$prog: FAIL: $*" >&2
	exit 1
}

note() {
	echo "$prog: $*"
}

AGENT=$top_builddir/agent/devid-agent
DIRECTORY=$top_builddir/directory/devid-directory
FORGE=$top_builddir/tests/integration/test_agent_forge
SEAL=$top_builddir/tests/integration/test_agent_seal
CI=$top_srcdir/swtpm-ci
[ -x "$AGENT" ] || fail "$AGENT is not built"
[ -x "$DIRECTORY" ] || fail "$DIRECTORY is not built"
[ -x "$FORGE" ] || fail "$FORGE is not built (make check builds it)"
[ -x "$SEAL" ] || fail "$SEAL is not built (make check builds it)"
for tool in swtpm tpm2_getcap softhsm2-util python3; do
	command -v "$tool" >/dev/null 2>&1 ||
		fail "$tool not found: run swtpm-ci/install-deps"
done
SOFTHSM2_MODULE=${SOFTHSM2_MODULE:-/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so}
[ -f "$SOFTHSM2_MODULE" ] || fail "the SoftHSM2 module is missing"

DIR_BACKEND=${DEVID_TEST_DIR_BACKEND:-sqlite}
case $DIR_BACKEND in
sqlite|pg2) ;;
*) fail "DEVID_TEST_DIR_BACKEND is '$DIR_BACKEND': sqlite or pg2" ;;
esac

T=$(mktemp -d -t devid-agent.XXXXXX) || fail "mktemp failed"
DIR_PID=""
# Where the account tools and sql find the directory's data; with pg2
# set by dir_start.
DIR_DB=$T/dir.db
DIR_KEY_ARGS=""
PG_URI=""
# Every agent started, restarts included, also when its pid file is
# overwritten; anything else a test starts in the background goes into
# $T/NAME.pid.
AGENT_PIDS=""

# proc_alive PID: the process runs (a zombie does not).
proc_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	_pst=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' \
	    "/proc/$1/status" 2>/dev/null || true)
	[ "$_pst" != Z ]
}

# proc_ours PID: it runs and its command line or environment names this
# test's temporary directory (a recycled PID is never signalled).
proc_ours() {
	proc_alive "$1" || return 1
	cat "/proc/$1/cmdline" "/proc/$1/environ" 2>/dev/null |
	    tr '\0' '\n' | grep -qF -- "$T/"
}

# proc_strays PREFIX: running processes of ours whose name starts with
# PREFIX, whether or not their PID was kept.
proc_strays() {
	for _pd in /proc/[0-9]*; do
		_pp=${_pd#/proc/}
		[ "$_pp" != "$$" ] || continue
		case $(cat "$_pd/comm" 2>/dev/null) in
		"$1"*) proc_ours "$_pp" && printf '%s ' "$_pp" ;;
		esac
	done
}

# proc_stop PID...: SIGTERM to each of ours, at most 10 s for all of them
# to exit, SIGKILL for the rest; reaps those that are our children.
proc_stop() {
	_pleft=""
	for _pp in "$@"; do
		proc_ours "$_pp" || continue
		kill -TERM "$_pp" 2>/dev/null || true
		_pleft="$_pleft $_pp"
	done
	_pi=0
	while [ -n "$_pleft" ] && [ $_pi -lt 100 ]; do
		sleep 0.1
		_pi=$((_pi + 1))
		_pstill=""
		for _pp in $_pleft; do
			proc_alive "$_pp" && _pstill="$_pstill $_pp"
		done
		_pleft=$_pstill
	done
	for _pp in $_pleft; do
		echo "$prog: process $_pp did not stop within 10 s: killing it" >&2
		kill -KILL "$_pp" 2>/dev/null || true
	done
	for _pp in "$@"; do
		proc_alive "$_pp" || wait "$_pp" 2>/dev/null || true
	done
}

# On every exit path: the agents, then everything else with a pid file
# (the directories, clients), then every swtpm, then the directory tree.
cleanup() {
	_rc=$?
	set +e
	trap '' INT TERM HUP
	_pids=$AGENT_PIDS
	for _pf in "$T"/agent-*.pid; do
		[ -f "$_pf" ] && _pids="$_pids $(cat "$_pf")"
	done
	# shellcheck disable=SC2046,SC2086
	proc_stop $_pids $(proc_strays devid-agent)
	_pids=$DIR_PID
	for _pf in "$T"/*.pid; do
		[ -f "$_pf" ] && _pids="$_pids $(cat "$_pf")"
	done
	# shellcheck disable=SC2046,SC2086
	proc_stop $_pids $(proc_strays devid-)
	for _pd in "$T"/tpm*; do
		[ -f "$_pd/swtpm.pid" ] &&
			"$CI/swtpm-stop" --kill "$_pd" >/dev/null 2>&1
	done
	# shellcheck disable=SC2046
	proc_stop $(proc_strays swtpm)
	[ -d "$T/pg" ] && "$CI/pg-stop" "$T/pg" >/dev/null 2>&1
	rm -rf "$T"
	exit "$_rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

echo pw-for-tests > "$T/password"
echo pin-81c3 > "$T/pin"
# Secret files others may read are refused (chmod 600, as ssh wants).
chmod 600 "$T/password" "$T/pin"
PASSWORD_FILE=$T/password

# --- the directory ---

# dir_start [PORT]: starts devid-directory on 127.0.0.1:PORT (0: a free
# port) on $T/dir.db; sets URL and DIR_PORT.  With pg2: both instances,
# the first on PORT (the cluster the first time); sets URL2 too.
dir_start() {
	if [ "$DIR_BACKEND" = pg2 ]; then
		dir_start_pg2 "$@"
		return
	fi
	rm -f "$T/dir.addr"
	"$DIRECTORY" serve --db "$T/dir.db" --listen "127.0.0.1:${1:-0}" \
	    --ready-file "$T/dir.addr" --scrypt-cost 10 --rate 0 \
	    >>"$T/directory.log" 2>&1 &
	DIR_PID="$DIR_PID $!"
	echo $! > "$T/directory.pid"
	i=0
	while [ ! -s "$T/dir.addr" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "the directory did not start"
		kill -0 "$(cat "$T/directory.pid")" 2>/dev/null ||
			fail "the directory exited: $(tail -n 5 "$T/directory.log")"
		sleep 0.1
	done
	URL=http://$(cat "$T/dir.addr")
	DIR_PORT=${URL##*:}
}

# dir_serve_pg N PORT: instance N (1 or 2) of the directory on the
# cluster, on 127.0.0.1:PORT, with the blob directory both instances
# share; waits until it serves.
dir_serve_pg() {
	_sfx=""
	[ "$1" = 1 ] || _sfx=$1
	rm -f "$T/dir$_sfx.addr"
	# shellcheck disable=SC2086
	"$DIRECTORY" serve --db "$DIR_DB" $DIR_KEY_ARGS \
	    --blob-dir "$T/pg-blobs" \
	    --listen "127.0.0.1:$2" --ready-file "$T/dir$_sfx.addr" \
	    --scrypt-cost 10 --rate 0 >>"$T/directory$_sfx.log" 2>&1 &
	DIR_PID="$DIR_PID $!"
	echo $! > "$T/directory$_sfx.pid"
	i=0
	while [ ! -s "$T/dir$_sfx.addr" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "directory instance $1 did not start"
		kill -0 "$(cat "$T/directory$_sfx.pid")" 2>/dev/null ||
			fail "directory instance $1 exited: $(tail -n 5 "$T/directory$_sfx.log")"
		sleep 0.1
	done
}

# dir_start_pg2 [PORT]: dir_start with DEVID_TEST_DIR_BACKEND=pg2.
dir_start_pg2() {
	if [ -z "$PG_URI" ]; then
		# The cluster runs as another user when this runs as root.
		chmod 711 "$T"
		PG_URI=$("$CI/pg-start" "$T/pg") ||
			fail "cannot start PostgreSQL (swtpm-ci/pg-start)"
		DIR_DB=$PG_URI
		DIR_KEY_ARGS="--signing-key $T/head.key"
		# shellcheck disable=SC2086
		"$DIRECTORY" key --db "$DIR_DB" $DIR_KEY_ARGS >/dev/null ||
			fail "cannot make the directory's head key"
	fi
	dir_serve_pg 1 "${1:-0}"
	dir_serve_pg 2 "${DIR2_PORT:-0}"
	URL=http://$(cat "$T/dir.addr")
	DIR_PORT=${URL##*:}
	URL2=http://$(cat "$T/dir2.addr")
	DIR2_PORT=${URL2##*:}
}

# dir_url NAME: the directory URL that device NAME is given.
DIR_N_DEVICES=0
dir_url() {
	if [ "$DIR_BACKEND" != pg2 ]; then
		echo "$URL"
		return
	fi
	if [ -n "${DEVID_TEST_DIR2_DEVICES+set}" ]; then
		case " $DEVID_TEST_DIR2_DEVICES " in
		*" $1 "*) echo "$URL2" ;;
		*) echo "$URL" ;;
		esac
	elif [ $((DIR_N_DEVICES % 2)) -eq 1 ]; then
		echo "$URL2"
	else
		echo "$URL"
	fi
}

dir_stop() {
	if [ -f "$T/directory2.pid" ]; then
		kill "$(cat "$T/directory2.pid")" 2>/dev/null || true
		i=0
		while kill -0 "$(cat "$T/directory2.pid")" 2>/dev/null; do
			i=$((i + 1))
			[ $i -lt 150 ] || fail "directory instance 2 did not stop"
			sleep 0.1
		done
		rm -f "$T/directory2.pid"
	fi
	if [ -f "$T/directory.pid" ]; then
		kill "$(cat "$T/directory.pid")" 2>/dev/null || true
		i=0
		while kill -0 "$(cat "$T/directory.pid")" 2>/dev/null; do
			i=$((i + 1))
			[ $i -lt 150 ] || fail "the directory did not stop"
			sleep 0.1
		done
		rm -f "$T/directory.pid"
	fi
}

# account_add NAME
account_add() {
	"$DIRECTORY" account add "$1" --db "$DIR_DB" \
	    --password-file "$PASSWORD_FILE" >/dev/null ||
		fail "cannot create account $1"
}

dir_id() {
	# shellcheck disable=SC2086
	"$DIRECTORY" key --db "$DIR_DB" $DIR_KEY_ARGS |
	    sed -n 's/^directory id: *//p'
}

# --- tokens ---

tpm_start() {
	TCTI=$("$CI/swtpm-start" "$T/tpm") || fail "swtpm did not start"
}

# hsm_token LABEL: a SoftHSM2 token with user PIN pin-81c3; sets HSM_URI.
hsm_token() {
	mkdir -p "$T/hsm"
	"$CI/softhsm-token" "$T/hsm" "$1" pin-81c3 so-pin-5678 >/dev/null ||
		fail "cannot create the SoftHSM2 token $1"
	SOFTHSM2_CONF=$T/hsm/softhsm2.conf
	export SOFTHSM2_CONF
	HSM_URI="pkcs11:token=$1?module-path=$SOFTHSM2_MODULE"
}

# --- devices ---

# ag NAME ARGS...: devid-agent with the XDG directories of device NAME.
ag() {
	n=$1
	shift
	mkdir -p "$T/$n/run"
	chmod 700 "$T/$n/run"
	XDG_CONFIG_HOME=$T/$n/cfg XDG_DATA_HOME=$T/$n/data \
	    XDG_RUNTIME_DIR=$T/$n/run "$AGENT" "$@"
}

# agent_start NAME ARGS...: runs the daemon of NAME in the foreground
# (in the background of this shell) and waits until its socket answers.
agent_start() {
	n=$1
	shift
	mkdir -p "$T/$n/run"
	chmod 700 "$T/$n/run"
	XDG_CONFIG_HOME=$T/$n/cfg XDG_DATA_HOME=$T/$n/data \
	    XDG_RUNTIME_DIR=$T/$n/run "$AGENT" run --foreground "$@" \
	    >>"$T/$n.log" 2>&1 &
	AGENT_PIDS="$AGENT_PIDS $!"
	echo $! > "$T/agent-$n.pid"
	i=0
	until ag "$n" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "agent $n did not start: $(tail -n 5 "$T/$n.log")"
		kill -0 "$(cat "$T/agent-$n.pid")" 2>/dev/null ||
			fail "agent $n exited: $(tail -n 5 "$T/$n.log")"
		sleep 0.1
	done
}

# agent_stop NAME: SIGTERM, waits, and fails when it crashed or leaked
# (a sanitizer report in its log).
agent_stop() {
	f=$T/agent-$1.pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	kill "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 150 ] || fail "agent $1 did not stop"
		sleep 0.1
	done
	rc=0
	wait "$pid" || rc=$?
	rm -f "$f"
	[ "$rc" -eq 0 ] || fail "agent $1 exited with $rc: $(tail -n 20 "$T/$1.log")"
	agent_check_log "$1"
}

# agent_alive NAME
agent_alive() {
	kill -0 "$(cat "$T/agent-$1.pid")" 2>/dev/null ||
		fail "agent $1 died: $(tail -n 30 "$T/$1.log")"
}

agent_check_log() {
	if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' \
	    "$T/$1.log"; then
		fail "agent $1: sanitizer report: $(grep -A20 -E 'Sanitizer|runtime error' "$T/$1.log" | head -n 40)"
	fi
}

# js NAME OP PYEXPR: runs `devid-agent OP --json` for NAME and evaluates
# PYEXPR with the answer as d.
js() {
	n=$1
	op=$2
	expr=$3
	ag "$n" "$op" --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($expr)"
}

# open_alerts NAME KIND: number of open alerts of KIND.
open_alerts() {
	js "$1" status "sum(1 for a in d['alerts'] if a['kind'] == '$2')"
}

now_ms() {
	date +%s%3N
}

# wait_alert NAME KIND MAX_S: waits until NAME has an open alert of KIND;
# prints the milliseconds it took, fails after MAX_S seconds.
wait_alert() {
	t0=$(now_ms)
	while :; do
		c=$(open_alerts "$1" "$2")
		[ "$c" -gt 0 ] && break
		[ $(($(now_ms) - t0)) -lt $(($3 * 1000)) ] ||
			fail "no $2 alert on $1 within $3 s: $(ag "$1" status)"
		sleep 0.1
	done
	echo $(($(now_ms) - t0))
}

# wait_no_alert NAME KIND MAX_S
wait_no_alert() {
	t0=$(now_ms)
	while :; do
		c=$(open_alerts "$1" "$2")
		[ "$c" -eq 0 ] && break
		[ $(($(now_ms) - t0)) -lt $(($3 * 1000)) ] ||
			fail "the $2 alert on $1 did not clear within $3 s"
		sleep 0.2
	done
	echo $(($(now_ms) - t0))
}

# init_device NAME ACCOUNT LABEL TOKEN [FLAGS...]
init_device() {
	n=$1
	acct=$2
	label=$3
	tok=$4
	shift 4
	ag "$n" init --account "$acct" --label "$label" --token "$tok" \
	    --directory "$(dir_url "$n")" --directory-key "$DIR_ID" "$@" \
	    >"$T/$n.init" 2>&1 || fail "init $n: $(cat "$T/$n.init")"
	DIR_N_DEVICES=$((DIR_N_DEVICES + 1))
}

register_device() {
	ag "$1" register --password-file "$PASSWORD_FILE" >"$T/$1.reg" 2>&1 ||
		fail "register $1: $(cat "$T/$1.reg")"
}

# device_id NAME: the full id of NAME's device.
device_id() {
	sed -n 's/^ *device id: *//p' "$T/$1.init"
}

# sql_pg STATEMENTS: psql on the pg2 cluster; rows with | between
# columns (booleans t/f, bytea as \x...).
sql_pg() {
	_psql=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V |
	    tail -n 1)/psql
	[ -x "$_psql" ] || _psql=psql
	"$_psql" -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -d "$PG_URI" -c "$1" ||
		fail "psql: $1"
}

# sql STATEMENTS: on the directory's database, behind its back (python3's
# sqlite3 module, or psql with pg2); a SELECT prints its rows with |
# between columns.
sql() {
	if [ "$DIR_BACKEND" = pg2 ]; then
		sql_pg "$1"
	else
		python3 - "$T/dir.db" "$1" <<'PYX'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
q = sys.argv[2].strip()
if q.upper().startswith("SELECT"):
    for row in db.execute(q):
        print("|".join(str(x) for x in row))
else:
    db.executescript(q)
    db.commit()
db.close()
PYX
	fi
	# The directory answers from memory what it read less than a second
	# ago (docs/directory.md): a change behind its back shows after that.
	case $1 in
	SELECT*|select*) ;;
	*) sleep 1.1 ;;
	esac
}

# A small raw client of the agent socket for the tests: frames are built
# by hand so that broken ones can be sent too.
cat >"$T/raw.py" <<'PYEOF'
import json, os, socket, struct, sys

def conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    return s

def send_raw(s, body):
    s.sendall(struct.pack(">I", len(body)) + body)

def recv(s):
    hdr = b""
    while len(hdr) < 4:
        c = s.recv(4 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            return None
        body += c
    return json.loads(body)

def call(path, obj):
    s = conn(path)
    send_raw(s, json.dumps(obj).encode())
    r = recv(s)
    s.close()
    return r
PYEOF

# rawcall NAME JSON: one request on NAME's socket; prints the answer.
rawcall() {
	python3 -c "import sys; sys.path.insert(0, '$T'); import raw, json; print(json.dumps(raw.call(sys.argv[1], json.loads(sys.argv[2]))))" \
	    "$T/$1/run/devid/agent.sock" "$2"
}

# b64 of a transcript that starts with TAG and a NUL, then TEXT.
tagged_b64() {
	python3 -c "import base64,sys; print(base64.urlsafe_b64encode(sys.argv[1].encode() + b'\0' + sys.argv[2].encode()).decode().rstrip('='))" "$1" "$2"
}
