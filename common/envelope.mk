# common/: the message envelope (PROTOCOL.md section 4).
common_libdevid_a_SOURCES += \
	common/envelope.c common/envelope-json.c common/envelope.h \
	common/envelope-private.h

check_PROGRAMS += tests/unit/test_envelope
TESTS += tests/unit/test_envelope
tests_unit_test_envelope_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_envelope_LDADD = $(UNIT_LIBS)

# Seal and open cost against the bare primitives; built, never run by
# `make check` (see docs/performance.md).
noinst_PROGRAMS += tests/bench/bench-envelope
tests_bench_bench_envelope_LDADD = $(COMMON_LIBS)

EXTRA_DIST += docs/performance.md
