# common/: device records and account logs (PROTOCOL.md sections 2 and 3).
common_libdevid_a_SOURCES += \
	common/devrec.c common/devrec.h \
	common/acctlog.c common/acctlog.h

check_PROGRAMS += tests/unit/test_devrec tests/unit/test_acctlog
TESTS += tests/unit/test_devrec tests/unit/test_acctlog

tests_unit_test_devrec_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_devrec_LDADD = $(UNIT_LIBS)
tests_unit_test_acctlog_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_acctlog_LDADD = $(UNIT_LIBS)

# tests/fuzz/fuzz_acctlog.c and tests/fuzz/corpus/acctlog/ are built and
# distributed by tests/fuzz/fuzz.mk.
