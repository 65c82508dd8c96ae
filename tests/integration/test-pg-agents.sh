#!/bin/sh
# test-pg-agents.sh - the messaging and agent integration tests once
# more, against a directory of two devid-directory processes on one
# PostgreSQL database (DEVID_TEST_DIR_BACKEND=pg2, test-agent-lib.sh):
#
#  - test-msg.sh (messages between accounts, phantom devices written
#    into the database) with alice's laptop on the first instance and
#    her card and bob's devices on the second: messages between the
#    laptop and bob cross from one instance to the other, and recv
#    --follow on the first is woken by a send through the second;
#  - test-agent.sh with alice's laptop and bob's device on the first
#    instance and alice's cards on the second: the laptop's long-poll is
#    woken by a registration through the other instance.
#
# Each starts its own throw-away cluster (swtpm-ci/pg-start) and stops it
# on every path.
set -eu

: "${top_srcdir:?}" "${top_builddir:?}"
DEVID_TEST_DIR_BACKEND=pg2
export DEVID_TEST_DIR_BACKEND

DEVID_TEST_DIR2_DEVICES="B C P" sh "$top_srcdir/tests/integration/test-msg.sh"
DEVID_TEST_DIR2_DEVICES="C D" sh "$top_srcdir/tests/integration/test-agent.sh"
