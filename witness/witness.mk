# witness/: devid-witness, a C2SP tlog-witness that cosigns the
# checkpoints of devid directories (docs/witness.md, docs/protocol.md
# section 7).  The modules other than wit-main.c form a small library so
# that the unit tests link exactly what the witness runs.

noinst_LIBRARIES += witness/libdevid-witness.a
witness_libdevid_witness_a_SOURCES = \
	witness/wit-check.c witness/wit-check.h \
	witness/wit-key.c witness/wit-key.h \
	witness/wit-server.c witness/wit-server.h \
	witness/wit-signer.c witness/wit-signer.h \
	witness/wit-store.c witness/wit-store.h \
	witness/wit-witness.c witness/wit-witness.h
witness_libdevid_witness_a_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/pkcs11
witness_libdevid_witness_a_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) \
	$(SQLITE_CFLAGS)

# The witness key may live in a PKCS#11 token (pkcs11/, CKM_EDDSA).
WITNESS_LIBS = witness/libdevid-witness.a $(P11_LIBS) $(COMMON_LIBS) \
	$(MHD_LIBS) $(SQLITE_LIBS) -lpthread

EXTRA_DIST += docs/witness.md

bin_PROGRAMS += witness/devid-witness
witness_devid_witness_SOURCES = witness/wit-main.c
witness_devid_witness_LDADD = $(WITNESS_LIBS)

# Unit tests: the rules for extending a log's history (pure), and the
# add-checkpoint request on a real state directory, without HTTP.
check_PROGRAMS += tests/unit/test_wit_check tests/unit/test_wit_witness
TESTS += tests/unit/test_wit_check tests/unit/test_wit_witness
tests_unit_test_wit_check_SOURCES = tests/unit/test_wit_check.c \
	tests/unit/tlog-test-util.c tests/unit/tlog-test-util.h
tests_unit_test_wit_check_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/witness
tests_unit_test_wit_check_LDADD = $(WITNESS_LIBS) $(UNIT_LIBS)
tests_unit_test_wit_witness_SOURCES = tests/unit/test_wit_witness.c \
	tests/unit/tlog-test-util.c tests/unit/tlog-test-util.h
tests_unit_test_wit_witness_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/witness
tests_unit_test_wit_witness_LDADD = $(WITNESS_LIBS) $(UNIT_LIBS)

# Integration: the real devid-witness on a loopback port in a temporary
# directory, driven through common/witclient by test_witness (run by
# test-witness.sh, which finds both through $top_builddir).
check_PROGRAMS += tests/integration/test_witness
tests_integration_test_witness_SOURCES = \
	tests/integration/test_witness.c tests/unit/tlog-test-util.c \
	tests/unit/tlog-test-util.h
tests_integration_test_witness_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS) \
	-I$(top_srcdir)/tests/unit
tests_integration_test_witness_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread
TESTS += tests/integration/test-witness.sh
dist_noinst_SCRIPTS += tests/integration/test-witness.sh
