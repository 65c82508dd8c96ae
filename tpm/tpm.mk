# tpm/: the TPM 2.0 token backend (tpm2-tss ESAPI), its tests and the swtpm
# scripts the tests use.
noinst_LIBRARIES += tpm/libdevidtpm.a
tpm_libdevidtpm_a_SOURCES = \
	tpm/tpm-token.c tpm/tpm-token.h \
	tpm/tpm-session.c tpm/tpm-private.h \
	tpm/tpm-keyfile.c tpm/tpm-keyfile.h \
	tpm/tpm-errors.c
tpm_libdevidtpm_a_CFLAGS = $(AM_CFLAGS) $(TSS2_CFLAGS)

TPM_LIBS = tpm/libdevidtpm.a $(TSS2_LIBS)

dist_noinst_SCRIPTS += swtpm-ci/swtpm-start swtpm-ci/swtpm-stop \
	swtpm-ci/swtpm-restart tests/integration/test-tpm.sh

# Key-file encoding and parsing; no TPM needed.
check_PROGRAMS += tests/unit/test_tpmkeyfile
TESTS += tests/unit/test_tpmkeyfile
tests_unit_test_tpmkeyfile_CFLAGS = $(UNIT_CFLAGS) $(TSS2_CFLAGS) \
	-I$(top_srcdir)/tpm
tests_unit_test_tpmkeyfile_LDADD = $(TPM_LIBS) $(UNIT_LIBS)

# The swtpm integration test: the script starts swtpm and runs the program.
check_PROGRAMS += tests/integration/test_tpm
TESTS += tests/integration/test-tpm.sh
tests_integration_test_tpm_CFLAGS = $(UNIT_CFLAGS) $(TSS2_CFLAGS) \
	-I$(top_srcdir)/tpm
tests_integration_test_tpm_LDADD = $(TPM_LIBS) $(UNIT_LIBS)
