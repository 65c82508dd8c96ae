# The transparency log end to end: witnesses, directories and agents
# on loopback (tests/integration/test-tlog.sh).
TESTS += tests/integration/test-tlog.sh
dist_noinst_SCRIPTS += tests/integration/test-tlog.sh

# The directory's checkpoints and endpoints, checked with the client-side
# code alone, and submitted to a witness (devid-witness's modules, in
# process): a unit test that spans two parts, hence here.
check_PROGRAMS += tests/unit/test_dir_tlog
TESTS += tests/unit/test_dir_tlog
tests_unit_test_dir_tlog_SOURCES = tests/unit/test_dir_tlog.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_unit_test_dir_tlog_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS) \
	$(MHD_CFLAGS) -I$(top_srcdir)/directory -I$(top_srcdir)/witness \
	-I$(top_srcdir)/tests/unit
tests_unit_test_dir_tlog_LDADD = witness/libdevid-witness.a \
	common/libdevidclient.a $(DIRECTORY_LIBS) $(UNIT_LIBS) $(CURL_LIBS)

