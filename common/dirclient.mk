# common/: the directory HTTP client on libcurl.  A library of its own so
# that only the programs that talk to a directory link libcurl and get its
# flags.
noinst_LIBRARIES += common/libdevidclient.a
common_libdevidclient_a_SOURCES = common/dirclient.c common/dirclient.h
common_libdevidclient_a_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)

DIRCLIENT_LIBS = common/libdevidclient.a $(COMMON_LIBS) $(CURL_LIBS)
