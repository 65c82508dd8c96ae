# devid-msg's attachments against an in-process directory
# (tests/unit/test_msgblob.c): the test spans two parts, msgclient/ and
# directory/, which is why it is registered here and not in either
# part's fragment (tests/layering.sh keeps those to their own layers):
# the pending store, and files sent and received (hash, segments, names,
# nothing partial left).
check_PROGRAMS += tests/unit/test_msgblob
TESTS += tests/unit/test_msgblob
tests_unit_test_msgblob_SOURCES = tests/unit/test_msgblob.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_unit_test_msgblob_CPPFLAGS = $(MSG_UNIT_CPPFLAGS) \
	-I$(top_srcdir)/directory -I$(top_srcdir)/tests/unit
tests_unit_test_msgblob_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS)
tests_unit_test_msgblob_LDADD = $(MSG_LIBS) $(DIRECTORY_LIBS) $(UNIT_LIBS)
