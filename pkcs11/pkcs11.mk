# pkcs11/: the PKCS#11 token backend (modules through p11-kit, RFC 7512 URIs).
noinst_LIBRARIES += pkcs11/libdevidp11.a
pkcs11_libdevidp11_a_SOURCES = \
	pkcs11/p11-token.c pkcs11/p11-token.h \
	pkcs11/p11-keys.c pkcs11/p11-eddsa.c \
	pkcs11/p11-uri.c pkcs11/p11-uri.h \
	pkcs11/p11-modconf.c pkcs11/p11-modconf.h \
	pkcs11/p11-private.h
pkcs11_libdevidp11_a_CFLAGS = $(AM_CFLAGS) $(P11KIT_CFLAGS)
P11_LIBS = pkcs11/libdevidp11.a $(P11KIT_LIBS)

# URI and PIN-source parsing: no token needed.
check_PROGRAMS += tests/unit/test_p11uri
TESTS += tests/unit/test_p11uri
tests_unit_test_p11uri_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/pkcs11
tests_unit_test_p11uri_CFLAGS = $(UNIT_CFLAGS) $(P11KIT_CFLAGS)
tests_unit_test_p11uri_LDADD = $(P11_LIBS) $(UNIT_LIBS)

# The SoftHSM2 integration test: the script creates throwaway tokens and
# runs the program (built by `make check`, run only through the script).
check_PROGRAMS += tests/integration/test_pkcs11
tests_integration_test_pkcs11_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/pkcs11
tests_integration_test_pkcs11_CFLAGS = $(UNIT_CFLAGS) $(P11KIT_CFLAGS)
tests_integration_test_pkcs11_LDADD = $(P11_LIBS) $(UNIT_LIBS) -ldl
TESTS += tests/integration/test-pkcs11.sh

dist_noinst_SCRIPTS += swtpm-ci/softhsm-token tests/integration/test-pkcs11.sh
EXTRA_DIST += docs/pkcs11.md
