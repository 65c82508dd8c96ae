#  common/: errors, bounded buffers, codecs, transcripts, the token interface.
common_libdevid_a_SOURCES += \
	common/errors.c common/errors.h \
	common/buf.c common/buf-getput.c common/buf.h common/buf-private.h \
	common/codec.c common/codec.h \
	common/transcript.c common/transcript.h \
	common/token.c common/token.h

check_PROGRAMS += tests/unit/test_buf tests/unit/test_codec \
	tests/unit/test_errors tests/unit/test_transcript
TESTS += tests/unit/test_buf tests/unit/test_codec \
	tests/unit/test_errors tests/unit/test_transcript

tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LIBS)
tests_unit_test_codec_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_codec_LDADD = $(UNIT_LIBS)
tests_unit_test_errors_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_errors_LDADD = $(UNIT_LIBS)
tests_unit_test_transcript_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_transcript_LDADD = $(UNIT_LIBS)
