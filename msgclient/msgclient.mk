# msgclient/: devid-msg, the messaging client.  The modules other than
# msg-main.c form a small library so that the unit tests link exactly
# what the program runs.  Like every client of the agent, devid-msg stands
# on common/ alone and talks to the agent over its socket; contact pins
# use the registry format of common/registry.c.

noinst_LIBRARIES += msgclient/libdevid-msg.a
msgclient_libdevid_msg_a_SOURCES = \
	msgclient/msg.h \
	msgclient/msg-agent.c msgclient/msg-agent.h \
	msgclient/msg-blob.c msgclient/msg-blob.h \
	msgclient/msg-cli.c \
	msgclient/msg-contacts.c msgclient/msg-contacts.h \
	msgclient/msg-ctx.c \
	msgclient/msg-progress.c msgclient/msg-progress.h \
	msgclient/msg-recv.c \
	msgclient/msg-replay.c msgclient/msg-replay.h \
	msgclient/msg-send.c \
	msgclient/msg-trust.c
msgclient_libdevid_msg_a_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)

MSG_LIBS = msgclient/libdevid-msg.a \
	common/libdevidclient.a $(COMMON_LIBS) $(CURL_LIBS)

bin_PROGRAMS += msgclient/devid-msg
msgclient_devid_msg_SOURCES = msgclient/msg-main.c
msgclient_devid_msg_LDADD = $(MSG_LIBS)

# Unit tests: contact pins, the replay store, the command line, frames
# and file names.
check_PROGRAMS += tests/unit/test_msgcontacts tests/unit/test_msgreplay \
	tests/unit/test_msgcli
TESTS += tests/unit/test_msgcontacts tests/unit/test_msgreplay \
	tests/unit/test_msgcli
MSG_UNIT_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/msgclient
tests_unit_test_msgcontacts_CPPFLAGS = $(MSG_UNIT_CPPFLAGS)
tests_unit_test_msgcontacts_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msgcontacts_LDADD = $(MSG_LIBS) $(UNIT_LIBS)
tests_unit_test_msgreplay_CPPFLAGS = $(MSG_UNIT_CPPFLAGS)
tests_unit_test_msgreplay_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msgreplay_LDADD = $(MSG_LIBS) $(UNIT_LIBS)
tests_unit_test_msgcli_CPPFLAGS = $(MSG_UNIT_CPPFLAGS)
tests_unit_test_msgcli_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_msgcli_LDADD = $(MSG_LIBS) $(UNIT_LIBS)

# Attachments end to end, run by hand (docs/performance.md): a file
# sent and received through a real devid-directory on loopback.
noinst_PROGRAMS += tests/bench/bench-attach
tests_bench_bench_attach_SOURCES = tests/bench/bench-attach.c \
	tests/bench/bench-util.c tests/bench/bench-util.h \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_bench_bench_attach_CPPFLAGS = $(MSG_UNIT_CPPFLAGS) \
	-I$(top_srcdir)/tests/unit
tests_bench_bench_attach_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
tests_bench_bench_attach_LDADD = $(MSG_LIBS)

EXTRA_DIST += docs/msg.md

# Integration tests: real agents on swtpm and SoftHSM2, a real directory.
# test_msg_tamper makes the tampered envelopes of the attack test.
check_PROGRAMS += tests/integration/test_msg_tamper
tests_integration_test_msg_tamper_CPPFLAGS = $(MSG_UNIT_CPPFLAGS)
tests_integration_test_msg_tamper_LDADD = $(MSG_LIBS)
TESTS += tests/integration/test-msg.sh \
	tests/integration/test-msg-endorsed.sh \
	tests/integration/test-msg-attacks.sh \
	tests/integration/test-msg-splitview.sh \
	tests/integration/test-msg-demo.sh \
	tests/integration/test-msg-attach.sh
dist_noinst_SCRIPTS += tests/integration/test-msg.sh \
	tests/integration/test-msg-endorsed.sh \
	tests/integration/test-msg-attacks.sh \
	tests/integration/test-msg-splitview.sh \
	tests/integration/test-msg-demo.sh \
	tests/integration/test-msg-attach.sh \
	tests/integration/test-msg-lib.sh \
	swtpm-ci/demo
