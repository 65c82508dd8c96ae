# tests/fuzz: one libFuzzer harness per parser.
#
# configure CC=clang --enable-fuzzing: `make fuzz` builds real fuzzers, run
# with tests/fuzz/run-fuzzers.  Otherwise each harness is linked with
# standalone.c and `make check` replays its corpus and fixed mutations.

FUZZ_HARNESSES = tests/fuzz/fuzz_envelope tests/fuzz/fuzz_acctlog \
	tests/fuzz/fuzz_crypto tests/fuzz/fuzz_tpmkeyfile tests/fuzz/fuzz_agent \
	tests/fuzz/fuzz_directory tests/fuzz/fuzz_enrol tests/fuzz/fuzz_tlog
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/standalone.c
dist_noinst_SCRIPTS += tests/fuzz/run-fuzzers

tests_fuzz_fuzz_envelope_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/envelope\"
tests_fuzz_fuzz_envelope_LDADD = $(COMMON_LIBS)
tests_fuzz_fuzz_acctlog_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/acctlog\"
tests_fuzz_fuzz_acctlog_LDADD = $(COMMON_LIBS)
tests_fuzz_fuzz_crypto_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/crypto\"
tests_fuzz_fuzz_crypto_LDADD = $(COMMON_LIBS)
tests_fuzz_fuzz_tpmkeyfile_CPPFLAGS = $(AM_CPPFLAGS) $(TSS2_CFLAGS) \
	-I$(top_srcdir)/tpm \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/tpmkeyfile\"
tests_fuzz_fuzz_tpmkeyfile_LDADD = $(TPM_LIBS) $(COMMON_LIBS)
tests_fuzz_fuzz_agent_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent \
	-I$(top_srcdir)/tpm -I$(top_srcdir)/pkcs11 \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/agent\"
tests_fuzz_fuzz_agent_LDADD = $(AGENT_LIBS)
tests_fuzz_fuzz_directory_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/directory \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/directory\"
tests_fuzz_fuzz_directory_LDADD = $(DIRECTORY_LIBS)
tests_fuzz_fuzz_enrol_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/enrol\"
tests_fuzz_fuzz_enrol_LDADD = $(AGENT_LIBS)
tests_fuzz_fuzz_tlog_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/tlog\"
tests_fuzz_fuzz_tlog_LDADD = $(COMMON_LIBS)

if FUZZING
EXTRA_PROGRAMS = $(FUZZ_HARNESSES)
tests_fuzz_fuzz_envelope_SOURCES = tests/fuzz/fuzz_envelope.c
tests_fuzz_fuzz_envelope_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_acctlog_SOURCES = tests/fuzz/fuzz_acctlog.c
tests_fuzz_fuzz_acctlog_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_crypto_SOURCES = tests/fuzz/fuzz_crypto.c
tests_fuzz_fuzz_crypto_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tpmkeyfile_SOURCES = tests/fuzz/fuzz_tpmkeyfile.c
tests_fuzz_fuzz_tpmkeyfile_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_agent_SOURCES = tests/fuzz/fuzz_agent.c
tests_fuzz_fuzz_agent_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_directory_SOURCES = tests/fuzz/fuzz_directory.c
tests_fuzz_fuzz_directory_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_enrol_SOURCES = tests/fuzz/fuzz_enrol.c
tests_fuzz_fuzz_enrol_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_tlog_SOURCES = tests/fuzz/fuzz_tlog.c
tests_fuzz_fuzz_tlog_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
CLEANFILES += $(FUZZ_HARNESSES)
fuzz: $(FUZZ_HARNESSES)
else
check_PROGRAMS += $(FUZZ_HARNESSES)
TESTS += $(FUZZ_HARNESSES)
tests_fuzz_fuzz_envelope_SOURCES = tests/fuzz/fuzz_envelope.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_acctlog_SOURCES = tests/fuzz/fuzz_acctlog.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_crypto_SOURCES = tests/fuzz/fuzz_crypto.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_tpmkeyfile_SOURCES = tests/fuzz/fuzz_tpmkeyfile.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_agent_SOURCES = tests/fuzz/fuzz_agent.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_directory_SOURCES = tests/fuzz/fuzz_directory.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_enrol_SOURCES = tests/fuzz/fuzz_enrol.c \
	tests/fuzz/standalone.c
tests_fuzz_fuzz_tlog_SOURCES = tests/fuzz/fuzz_tlog.c \
	tests/fuzz/standalone.c
fuzz:
	@echo "fuzzers need: configure CC=clang --enable-fuzzing" >&2; exit 1
endif
.PHONY: fuzz

# --- the blob stream parser and decryptor (common/stream.h).
FUZZ_HARNESSES += tests/fuzz/fuzz_stream
tests_fuzz_fuzz_stream_CPPFLAGS = $(AM_CPPFLAGS) \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/stream\"
tests_fuzz_fuzz_stream_LDADD = $(COMMON_LIBS)
if FUZZING
tests_fuzz_fuzz_stream_SOURCES = tests/fuzz/fuzz_stream.c
tests_fuzz_fuzz_stream_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
else
tests_fuzz_fuzz_stream_SOURCES = tests/fuzz/fuzz_stream.c \
	tests/fuzz/standalone.c
endif

# --- devid-msg's reader of file references (msgclient/msg-blob.h): the
# agent's open answer and the pending store.
FUZZ_HARNESSES += tests/fuzz/fuzz_msgblob
tests_fuzz_fuzz_msgblob_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/msgclient \
	-DFUZZ_CORPUS_DIR=\"$(abs_top_srcdir)/tests/fuzz/corpus/msgblob\"
tests_fuzz_fuzz_msgblob_LDADD = $(MSG_LIBS)
if FUZZING
tests_fuzz_fuzz_msgblob_SOURCES = tests/fuzz/fuzz_msgblob.c
tests_fuzz_fuzz_msgblob_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
else
tests_fuzz_fuzz_msgblob_SOURCES = tests/fuzz/fuzz_msgblob.c \
	tests/fuzz/standalone.c
endif
