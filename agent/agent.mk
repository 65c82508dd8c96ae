# agent/: devid-agent, the daemon that owns the device keys, keeps the
# token-signed registry, watches the account log and answers local clients
# on a Unix socket.  The modules other than the program's own (agent-main.c
# and the subcommands it dispatches to, sharing agent-cmd.h) form a small
# library so that the unit tests link exactly what the daemon runs.

noinst_LIBRARIES += agent/libdevid-agent.a
agent_libdevid_agent_a_SOURCES = \
	agent/agent-config.c agent/agent-config.h \
	agent/agent-log.c agent/agent-log.h \
	agent/agent-sock.c agent/agent-sock.h \
	agent/agent-alert.c agent/agent-alert.h \
	agent/agent-token.c agent/agent-token.h \
	agent/agent-req.c agent/agent-req.h \
	agent/agent-ops.c agent/agent-ops.h agent/agent-open.c \
	agent/agent-watch.c agent/agent-watch.h agent/agent-watch-tlog.c \
	agent/agent-tlog.c agent/agent-tlog.h \
	agent/agent-enrol.c agent/agent-enrol.h \
	agent/agent-anchor.c agent/agent-anchor.h
agent_libdevid_agent_a_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tpm \
	-I$(top_srcdir)/pkcs11
agent_libdevid_agent_a_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) \
	$(TSS2_CFLAGS) $(P11KIT_CFLAGS)

AGENT_LIBS = agent/libdevid-agent.a tpm/libdevidtpm.a pkcs11/libdevidp11.a \
	common/libdevidclient.a $(COMMON_LIBS) $(TSS2_LIBS) $(P11KIT_LIBS) \
	$(CURL_LIBS) -lpthread

bin_PROGRAMS += agent/devid-agent
agent_devid_agent_SOURCES = agent/agent-main.c agent/agent-cmd.h \
	agent/agent-cli.c agent/agent-init.c agent/agent-run.c \
	agent/agent-client.c
agent_devid_agent_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tpm \
	-I$(top_srcdir)/pkcs11
agent_devid_agent_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(QRENCODE_CFLAGS)
agent_devid_agent_LDADD = $(AGENT_LIBS) $(QRENCODE_LIBS)

# Unit tests: config parsing, frames, the alert journal, enrolment codes
# and endorsements.
check_PROGRAMS += tests/unit/test_agentconfig tests/unit/test_agentsock \
	tests/unit/test_agentalert tests/unit/test_agentenrol
TESTS += tests/unit/test_agentconfig tests/unit/test_agentsock \
	tests/unit/test_agentalert tests/unit/test_agentenrol
AGENT_UNIT_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/agent
tests_unit_test_agentconfig_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agentconfig_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agentconfig_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)
tests_unit_test_agentsock_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agentsock_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agentsock_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)
tests_unit_test_agentalert_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agentalert_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agentalert_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)
tests_unit_test_agentenrol_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agentenrol_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agentenrol_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)

# Unit tests: the replay store bound by time; PIN and password files.
check_PROGRAMS += tests/unit/test_agentreplay tests/unit/test_agenttoken
TESTS += tests/unit/test_agentreplay tests/unit/test_agenttoken
tests_unit_test_agentreplay_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agentreplay_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agentreplay_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)
tests_unit_test_agenttoken_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agenttoken_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agenttoken_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)

# Unit tests: the transparency-log monitor's state and leaf checks.
check_PROGRAMS += tests/unit/test_agenttlog
TESTS += tests/unit/test_agenttlog
tests_unit_test_agenttlog_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agenttlog_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agenttlog_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)

EXTRA_DIST += agent/devid-agent.service docs/agent.md

# Integration tests: real swtpm, SoftHSM2 and devid-directory on loopback.
# test_agent_forge makes what a compromised directory would insert.
check_PROGRAMS += tests/integration/test_agent_forge \
	tests/integration/test_agent_seal tests/integration/test_agent_longlog
tests_integration_test_agent_forge_LDADD = $(COMMON_LIBS)
tests_integration_test_agent_longlog_LDADD = $(COMMON_LIBS)
tests_integration_test_agent_seal_LDADD = $(COMMON_LIBS)
TESTS += tests/integration/test-agent.sh \
	tests/integration/test-agent-attacks.sh \
	tests/integration/test-agent-socket.sh \
	tests/integration/test-agent-longlog.sh \
	tests/integration/test-agent-tpmpin.sh \
	tests/integration/test-agent-enrol.sh
dist_noinst_SCRIPTS += tests/integration/test-agent-longlog.sh \
	tests/integration/test-agent.sh \
	tests/integration/test-agent-attacks.sh \
	tests/integration/test-agent-socket.sh \
	tests/integration/test-agent-tpmpin.sh \
	tests/integration/test-agent-enrol.sh \
	tests/integration/test-agent-lib.sh

# PIN and password files that others may read are refused, by the agent
# and by devid-directory.
TESTS += tests/integration/test-agent-secretfiles.sh
dist_noinst_SCRIPTS += tests/integration/test-agent-secretfiles.sh

# A device's keys swapped behind the agent's back (agent-anchor): the
# checks without a token, and the attack on swtpm and SoftHSM2, staged by
# test_agent_keyswap as malware without the PIN would.
check_PROGRAMS += tests/unit/test_agentanchor \
	tests/integration/test_agent_keyswap
TESTS += tests/unit/test_agentanchor tests/integration/test-agent-keyswap.sh
dist_noinst_SCRIPTS += tests/integration/test-agent-keyswap.sh
tests_unit_test_agentanchor_CPPFLAGS = $(AGENT_UNIT_CPPFLAGS)
tests_unit_test_agentanchor_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_agentanchor_LDADD = $(AGENT_LIBS) $(UNIT_LIBS)
tests_integration_test_agent_keyswap_CPPFLAGS = $(AM_CPPFLAGS) \
	-I$(top_srcdir)/tpm
tests_integration_test_agent_keyswap_CFLAGS = $(AM_CFLAGS) $(P11KIT_CFLAGS)
tests_integration_test_agent_keyswap_LDADD = $(AGENT_LIBS) -ldl
