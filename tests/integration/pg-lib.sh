# pg-lib.sh - a throw-away PostgreSQL cluster for the directory's tests
# on PostgreSQL (sourced, not run; the script defines fail first).
#
#   pg_begin TAG   makes $T, a temporary directory the cluster's user may
#                  enter, starts a cluster in $T/pg (swtpm-ci/pg-start)
#                  and sets $URI; on exit the processes in $DIR_PID are
#                  stopped, then the cluster, and $T is removed, on every
#                  path.  A missing PostgreSQL is a failure, not a skip.
#   pg_psql ARGS   psql on the cluster, as its user when run as root.

: "${top_srcdir:?run through make check (top_srcdir is not set)}"
: "${top_builddir:?run through make check (top_builddir is not set)}"

DIR_PID=""

pg_cleanup() {
	for p in $DIR_PID; do
		kill "$p" 2>/dev/null || :
		wait "$p" 2>/dev/null || :
	done
	"$top_srcdir/swtpm-ci/pg-stop" "$T/pg" || :
	rm -rf "$T"
}

pg_begin() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/devid-$1-XXXXXX")
	# The cluster runs as another user when this runs as root: let it in.
	chmod 711 "$T"
	trap pg_cleanup EXIT
	trap 'exit 1' INT TERM HUP
	URI=$("$top_srcdir/swtpm-ci/pg-start" "$T/pg") ||
	    fail "cannot start PostgreSQL (swtpm-ci/pg-start)"
	case $URI in
	postgresql://*) ;;
	*) fail "pg-start printed no URI: $URI" ;;
	esac
}

pg_psql() {
	_psql=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V |
	    tail -n 1)/psql
	[ -x "$_psql" ] || fail "no psql: run swtpm-ci/install-deps"
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$_psql" "$@"
	else
		"$_psql" "$@"
	fi
}
