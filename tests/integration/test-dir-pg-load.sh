#!/bin/sh
# test-dir-pg-load.sh - runs tests/integration/test_dir_pg_load (two
# devid-directory processes on one PostgreSQL database under load: one
# chain from 100 registrations split across both, kill -9 of one,
# PostgreSQL restarted) against a throw-away cluster that
# swtpm-ci/pg-start makes in a temporary directory and that is stopped
# on every path.  A missing PostgreSQL is a failure, not a skip.
set -eu

fail() {
	echo "test-dir-pg-load: FAIL: $*" >&2
	exit 1
}

. "$top_srcdir/tests/integration/pg-lib.sh"
pg_begin pgl

DEVID_TEST_PG_URI=$URI DEVID_TEST_PG_DIR=$T/pg \
    "$top_builddir/tests/integration/test_dir_pg_load" ||
    fail "tests/integration/test_dir_pg_load"
