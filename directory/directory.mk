# directory/: devid-directory, the central directory server (PROTOCOL.md
# sections 3 and 5).  The modules other than dir-main.c form a small
# library so that the unit tests link exactly what the server runs.

noinst_LIBRARIES += directory/libdevid-directory.a
directory_libdevid_directory_a_SOURCES = \
	directory/dir-account.c directory/dir-account.h \
	directory/dir-api.c directory/dir-api-tlog.c directory/dir-api.h \
	directory/dir-auth.c directory/dir-auth.h \
	directory/dir-blob.c directory/dir-blob.h \
	directory/dir-cache.c directory/dir-cache.h \
	directory/dir-key.c directory/dir-key.h \
	directory/dir-log.c directory/dir-log.h \
	directory/dir-migrate.c directory/dir-migrate.h \
	directory/dir-net.c directory/dir-net.h \
	directory/dir-parse.c directory/dir-parse.h \
	directory/dir-pool.c directory/dir-pool.h \
	directory/dir-server.c directory/dir-server.h \
	directory/dir-throttle.c directory/dir-throttle.h \
	directory/dir-tlog.c directory/dir-tlog.h \
	directory/dir-store.h directory/dir-store-sqlite.c \
	directory/dir-store-pg.c
directory_libdevid_directory_a_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/pkcs11
directory_libdevid_directory_a_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) \
	$(SQLITE_CFLAGS) $(LIBPQ_CFLAGS)

# The head key may live in a PKCS#11 token (pkcs11/); checkpoints go to
# witnesses over HTTP (common/witclient.c, in the client library).
DIRECTORY_LIBS = directory/libdevid-directory.a $(P11_LIBS) \
	common/libdevidclient.a $(COMMON_LIBS) $(CURL_LIBS) \
	$(MHD_LIBS) $(SQLITE_LIBS) $(LIBPQ_LIBS) -lpthread

EXTRA_DIST += docs/directory.md

bin_PROGRAMS += directory/devid-directory
directory_devid_directory_SOURCES = directory/dir-main.c
directory_devid_directory_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(SQLITE_CFLAGS)
directory_devid_directory_LDADD = $(DIRECTORY_LIBS)

# Unit tests: the store, password and token handling, the request
# parsers, the client-network keys, the password-failure brake, the
# worker pool, the in-memory caches, the HTTP layer with handlers of the test's making, and the
# endpoints (driven over HTTP against an in-process server).
check_PROGRAMS += tests/unit/test_dir_store
TESTS += tests/unit/test_dir_store
tests_unit_test_dir_store_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS) \
	$(LIBPQ_CFLAGS) \
	-I$(top_srcdir)/directory
tests_unit_test_dir_store_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_dir_auth
TESTS += tests/unit/test_dir_auth
tests_unit_test_dir_auth_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/directory
tests_unit_test_dir_auth_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_dir_parse
TESTS += tests/unit/test_dir_parse
tests_unit_test_dir_parse_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/directory
tests_unit_test_dir_parse_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_dir_net tests/unit/test_dir_throttle \
	tests/unit/test_dir_pool tests/unit/test_dir_cache
TESTS += tests/unit/test_dir_net tests/unit/test_dir_throttle \
	tests/unit/test_dir_pool tests/unit/test_dir_cache
tests_unit_test_dir_cache_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/directory
tests_unit_test_dir_cache_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)
tests_unit_test_dir_net_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/directory
tests_unit_test_dir_net_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)
tests_unit_test_dir_throttle_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/directory
tests_unit_test_dir_throttle_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)
tests_unit_test_dir_pool_CFLAGS = $(UNIT_CFLAGS) -I$(top_srcdir)/directory
tests_unit_test_dir_pool_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_dir_server
TESTS += tests/unit/test_dir_server
tests_unit_test_dir_server_CFLAGS = $(UNIT_CFLAGS) $(MHD_CFLAGS) \
	-I$(top_srcdir)/directory
tests_unit_test_dir_server_LDADD = $(DIRECTORY_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_dir_api
TESTS += tests/unit/test_dir_api
tests_unit_test_dir_api_SOURCES = tests/unit/test_dir_api.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_unit_test_dir_api_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS) \
	-I$(top_srcdir)/directory -I$(top_srcdir)/tests/unit
tests_unit_test_dir_api_LDADD = common/libdevidclient.a $(DIRECTORY_LIBS) \
	$(UNIT_LIBS) $(CURL_LIBS)

# Blobs (PROTOCOL.md section 8) over HTTP against an in-process server:
# uploads, downloads, limits, quotas, who may download, expiry.
check_PROGRAMS += tests/unit/test_dir_blob
TESTS += tests/unit/test_dir_blob
tests_unit_test_dir_blob_SOURCES = tests/unit/test_dir_blob.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_unit_test_dir_blob_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS) \
	-I$(top_srcdir)/directory -I$(top_srcdir)/tests/unit
tests_unit_test_dir_blob_LDADD = common/libdevidclient.a $(DIRECTORY_LIBS) \
	$(UNIT_LIBS) $(CURL_LIBS)

# Stopping and restarting the in-process server many times while
# requests and long-polls are out: no abort, no lost acknowledged write.
check_PROGRAMS += tests/unit/test_dir_shutdown
TESTS += tests/unit/test_dir_shutdown
tests_unit_test_dir_shutdown_SOURCES = tests/unit/test_dir_shutdown.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_unit_test_dir_shutdown_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS) \
	-I$(top_srcdir)/directory -I$(top_srcdir)/tests/unit
tests_unit_test_dir_shutdown_LDADD = common/libdevidclient.a \
	$(DIRECTORY_LIBS) $(UNIT_LIBS) $(CURL_LIBS)

# Integration: the real devid-directory on a loopback port, driven with
# common/dirclient.  It finds the binary through $top_builddir and the
# openssl tool through $OPENSSL_BIN, SoftHSM2 through $SOFTHSM2_UTIL and
# $SOFTHSM2_MODULE, pkcs11-tool through $PKCS11_TOOL, and
# swtpm-ci/softhsm-token through $top_srcdir
# (AM_TESTS_ENVIRONMENT); `make check` builds bin_PROGRAMS first.
# tests/integration/dir-server-fixture starts, stops, kills and restarts
# the binary and runs its tools for the three programs below.
DIR_SERVER_FIXTURE = tests/integration/dir-server-fixture.c \
	tests/integration/dir-server-fixture.h \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
check_PROGRAMS += tests/integration/test_directory
TESTS += tests/integration/test_directory
tests_integration_test_directory_SOURCES = \
	tests/integration/test_directory.c $(DIR_SERVER_FIXTURE)
tests_integration_test_directory_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS) \
	-I$(top_srcdir)/tests/unit
tests_integration_test_directory_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread

# The limits under abuse: throttled passwords, authentication before
# anything is revealed or a large body read, connection limits and
# timeouts, the password pool, plain HTTP only on loopback, private files.
check_PROGRAMS += tests/integration/test_dir_hardening
TESTS += tests/integration/test_dir_hardening
tests_integration_test_dir_hardening_SOURCES = \
	tests/integration/test_dir_hardening.c $(DIR_SERVER_FIXTURE)
tests_integration_test_dir_hardening_CFLAGS = $(UNIT_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/tests/unit
tests_integration_test_dir_hardening_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread

# kill -9 of the real server under load from several source addresses:
# after a restart every acknowledged write is there and every log
# verifies.
check_PROGRAMS += tests/integration/test_dir_durability
TESTS += tests/integration/test_dir_durability
tests_integration_test_dir_durability_SOURCES = \
	tests/integration/test_dir_durability.c $(DIR_SERVER_FIXTURE)
tests_integration_test_dir_durability_CFLAGS = $(UNIT_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/tests/unit
tests_integration_test_dir_durability_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread

# Throughput, long-polls and latency under password floods of the real
# server on loopback; built, never run by `make check` (see
# docs/performance.md).
noinst_PROGRAMS += tests/bench/bench-directory
tests_bench_bench_directory_SOURCES = tests/bench/bench-directory.c \
	tests/bench/bench-util.c tests/bench/bench-util.h \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_bench_bench_directory_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/tests/unit
tests_bench_bench_directory_LDADD = common/libdevidclient.a $(COMMON_LIBS) \
	$(MHD_LIBS) $(CURL_LIBS) -lpthread

# What the transparency log costs: appends and registrations with and
# without the tree, checkpoint and cosignature latency, proof sizes at
# 10^6 leaves; built, never run by `make check` (docs/performance.md).
noinst_PROGRAMS += tests/bench/bench-tlog
tests_bench_bench_tlog_SOURCES = tests/bench/bench-tlog.c \
	tests/bench/bench-util.c tests/bench/bench-util.h \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_bench_bench_tlog_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/directory -I$(top_srcdir)/tests/unit
tests_bench_bench_tlog_LDADD = $(DIRECTORY_LIBS)

# The stores on PostgreSQL: a throw-away cluster (swtpm-ci/pg-start), the
# storage unit tests against it, and devid-directory on it.
TESTS += tests/integration/test-dir-store-pg.sh
dist_noinst_SCRIPTS += tests/integration/test-dir-store-pg.sh
# The throw-away cluster the tests on PostgreSQL share (sourced).
EXTRA_DIST += tests/integration/pg-lib.sh

# Long-polls woken across two devid-directory processes on one
# PostgreSQL database (LISTEN/NOTIFY), also across a restart of
# PostgreSQL.  Run by test-dir-pg-instances.sh, which starts the cluster
# and both instances.
check_PROGRAMS += tests/integration/test_dir_pg_wake
tests_integration_test_dir_pg_wake_SOURCES = \
	tests/integration/test_dir_pg_wake.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_integration_test_dir_pg_wake_CFLAGS = $(UNIT_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/tests/unit
tests_integration_test_dir_pg_wake_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread
TESTS += tests/integration/test-dir-pg-instances.sh
dist_noinst_SCRIPTS += tests/integration/test-dir-pg-instances.sh

# Two devid-directory processes on one PostgreSQL database under load:
# one chain from registrations split across both, kill -9 of one,
# PostgreSQL restarted.  Run by test-dir-pg-load.sh, which starts and
# stops the cluster.
check_PROGRAMS += tests/integration/test_dir_pg_load
tests_integration_test_dir_pg_load_SOURCES = \
	tests/integration/test_dir_pg_load.c $(DIR_SERVER_FIXTURE)
tests_integration_test_dir_pg_load_CFLAGS = $(UNIT_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/tests/unit
tests_integration_test_dir_pg_load_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread
TESTS += tests/integration/test-dir-pg-load.sh
dist_noinst_SCRIPTS += tests/integration/test-dir-pg-load.sh

# devid-directory migrate: the dump and its refusals (SQLite alone, or
# with the copy's verification when test-dir-migrate.sh gives it a
# database), and a SQLite directory populated by real clients
# (tests/integration/dir-migrate-client) copied into a throw-away
# PostgreSQL cluster, the clients carrying on against the copy, a
# non-empty target refused and a damaged source caught.
check_PROGRAMS += tests/unit/test_dir_migrate
TESTS += tests/unit/test_dir_migrate
tests_unit_test_dir_migrate_SOURCES = tests/unit/test_dir_migrate.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_unit_test_dir_migrate_CFLAGS = $(UNIT_CFLAGS) $(SQLITE_CFLAGS) \
	$(LIBPQ_CFLAGS) $(CURL_CFLAGS) -I$(top_srcdir)/directory \
	-I$(top_srcdir)/tests/unit
tests_unit_test_dir_migrate_LDADD = common/libdevidclient.a \
	$(DIRECTORY_LIBS) $(UNIT_LIBS) $(CURL_LIBS)
check_PROGRAMS += tests/integration/dir-migrate-client
tests_integration_dir_migrate_client_SOURCES = \
	tests/integration/dir-migrate-client.c \
	tests/unit/test_dir_util.c tests/unit/dir-test-util.h
tests_integration_dir_migrate_client_CFLAGS = $(UNIT_CFLAGS) \
	$(CURL_CFLAGS) -I$(top_srcdir)/tests/unit
tests_integration_dir_migrate_client_LDADD = common/libdevidclient.a \
	$(UNIT_LIBS) $(CURL_LIBS) -lpthread
TESTS += tests/integration/test-dir-migrate.sh
dist_noinst_SCRIPTS += tests/integration/test-dir-migrate.sh

# The messaging and agent integration tests (test-msg.sh, test-agent.sh)
# once more against two devid-directory processes on one PostgreSQL
# database (DEVID_TEST_DIR_BACKEND=pg2 in test-agent-lib.sh).
TESTS += tests/integration/test-pg-agents.sh
dist_noinst_SCRIPTS += tests/integration/test-pg-agents.sh

# Running agents under a directory moved from SQLite to PostgreSQL with
# migrate: they go on without noticing.
TESTS += tests/integration/test-agent-migrate.sh
dist_noinst_SCRIPTS += tests/integration/test-agent-migrate.sh
