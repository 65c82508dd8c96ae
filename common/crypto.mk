# common/: OpenSSL helpers (crypto) and RFC 9180 HPKE.
common_libdevid_a_SOURCES += \
	common/crypto.c common/crypto-keys.c common/crypto.h \
	common/hpke.c common/hpke.h

check_PROGRAMS += tests/unit/test_crypto tests/unit/test_hpke
TESTS += tests/unit/test_crypto tests/unit/test_hpke

tests_unit_test_crypto_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_crypto_LDADD = $(UNIT_LIBS)
tests_unit_test_hpke_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_hpke_LDADD = $(UNIT_LIBS)

EXTRA_DIST += tests/data/rfc9180-a3-p256-base.json
