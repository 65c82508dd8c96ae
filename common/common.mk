# common/: the code every part shares, in one library (common/libdevid.a)
# plus the directory client, kept apart so that only the programs that talk
# to a directory link libcurl.

# --- errors, bounded buffers, codecs, transcripts, the token interface,
# whole-file reads and durable writes.
common_libdevid_a_SOURCES += \
	common/errors.c common/errors.h \
	common/buf.c common/buf-getput.c common/buf.h common/buf-private.h \
	common/codec.c common/codec.h \
	common/transcript.c common/transcript.h \
	common/token.c common/token.h \
	common/fileio.c common/fileio.h \
	common/timefmt.c common/timefmt.h \
	common/netaddr.c common/netaddr.h

check_PROGRAMS += tests/unit/test_buf tests/unit/test_codec \
	tests/unit/test_errors tests/unit/test_transcript \
	tests/unit/test_fileio tests/unit/test_timefmt tests/unit/test_netaddr
TESTS += tests/unit/test_buf tests/unit/test_codec \
	tests/unit/test_errors tests/unit/test_transcript \
	tests/unit/test_fileio tests/unit/test_timefmt tests/unit/test_netaddr
tests_unit_test_netaddr_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_netaddr_LDADD = $(UNIT_LIBS)

tests_unit_test_timefmt_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_timefmt_LDADD = $(UNIT_LIBS)
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LIBS)
tests_unit_test_codec_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_codec_LDADD = $(UNIT_LIBS)
tests_unit_test_errors_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_errors_LDADD = $(UNIT_LIBS)
tests_unit_test_transcript_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_transcript_LDADD = $(UNIT_LIBS)
tests_unit_test_fileio_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_fileio_LDADD = $(UNIT_LIBS)

# --- OpenSSL helpers (crypto) and RFC 9180 HPKE.
common_libdevid_a_SOURCES += \
	common/crypto.c common/crypto-keys.c common/crypto.h \
	common/hpke.c common/hpke.h

check_PROGRAMS += tests/unit/test_crypto tests/unit/test_hpke
TESTS += tests/unit/test_crypto tests/unit/test_hpke

tests_unit_test_crypto_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_crypto_LDADD = $(UNIT_LIBS)
tests_unit_test_hpke_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_hpke_LDADD = $(UNIT_LIBS)

# --- wipe-on-free allocation for the secrets jansson copies.  The test
# sees every wipe through a wrapper around OPENSSL_cleanse.
common_libdevid_a_SOURCES += common/secmem.c common/secmem.h

check_PROGRAMS += tests/unit/test_secmem
TESTS += tests/unit/test_secmem
tests_unit_test_secmem_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_secmem_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=OPENSSL_cleanse
tests_unit_test_secmem_LDADD = $(UNIT_LIBS)

EXTRA_DIST += tests/data/rfc9180-a3-p256-base.json

# --- device records and account logs (PROTOCOL.md sections 2 and 3).
common_libdevid_a_SOURCES += \
	common/devrec.c common/devrec.h \
	common/acctlog.c common/acctlog-state.c common/acctlog-verify.c \
	common/acctlog.h common/acctlog-private.h

check_PROGRAMS += tests/unit/test_devrec tests/unit/test_acctlog
TESTS += tests/unit/test_devrec tests/unit/test_acctlog

tests_unit_test_devrec_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_devrec_LDADD = $(UNIT_LIBS)
tests_unit_test_acctlog_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_acctlog_LDADD = $(UNIT_LIBS)

# tests/fuzz/fuzz_acctlog.c and tests/fuzz/corpus/acctlog/ are built and
# distributed by tests/fuzz/fuzz.mk.

# --- files devid keeps: XDG paths and private directories, text files
# with a signature line, and the registry format of the agent's registry
# and devid-msg's contact pins.
common_libdevid_a_SOURCES += \
	common/paths.c common/paths.h \
	common/sigfile.c common/sigfile.h \
	common/registry.c common/registry.h

check_PROGRAMS += tests/unit/test_registry
TESTS += tests/unit/test_registry
tests_unit_test_registry_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_registry_LDADD = $(UNIT_LIBS)

# --- the global transparency log (docs/protocol.md section 7): the
# RFC 9162 Merkle tree, C2SP checkpoints, signed notes and cosignatures,
# and what clients check of them.
common_libdevid_a_SOURCES += \
	common/merkle.c common/merkle.h \
	common/tlog-note.c common/tlog-note.h \
	common/tlog-client.c common/tlog-client.h

check_PROGRAMS += tests/unit/test_merkle tests/unit/test_tlognote \
	tests/unit/test_tlogclient
TESTS += tests/unit/test_merkle tests/unit/test_tlognote \
	tests/unit/test_tlogclient
tests_unit_test_merkle_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_merkle_LDADD = $(UNIT_LIBS)
tests_unit_test_tlognote_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_tlognote_LDADD = $(UNIT_LIBS)
tests_unit_test_tlogclient_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_tlogclient_LDADD = $(UNIT_LIBS)

# --- the message envelope (PROTOCOL.md section 4).
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
tests_bench_bench_envelope_SOURCES = tests/bench/bench-envelope.c \
	tests/bench/bench-util.c tests/bench/bench-util.h \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_bench_bench_envelope_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) \
	-I$(top_srcdir)/tests/unit
tests_bench_bench_envelope_LDADD = common/libdevidclient.a $(COMMON_LIBS) \
	$(CURL_LIBS)

EXTRA_DIST += docs/performance.md

# --- the directory HTTP client on libcurl.  A library of its own so
# that only the programs that talk to a directory link libcurl and get its
# flags.
noinst_LIBRARIES += common/libdevidclient.a
common_libdevidclient_a_SOURCES = common/dirclient.c common/dirclient.h \
	common/dirclient-private.h \
	common/witclient.c common/witclient.h
common_libdevidclient_a_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)

DIRCLIENT_LIBS = common/libdevidclient.a $(COMMON_LIBS) $(CURL_LIBS)

# --- the chunked AEAD for blobs (STREAM construction, see stream.h).
common_libdevid_a_SOURCES += common/stream.c common/stream.h

check_PROGRAMS += tests/unit/test_stream
TESTS += tests/unit/test_stream
tests_unit_test_stream_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_stream_LDADD = $(UNIT_LIBS)
