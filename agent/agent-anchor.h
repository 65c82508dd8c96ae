/*
 * agent-anchor.h - noticing that this device's own keys were swapped.
 *
 * Everything in the state directory can be rewritten by malware that runs
 * as the user, without the token PIN: the TPM key files, the registry and
 * its signature (re-signed with a key of the malware's own), the pinned
 * directory key.  On a PKCS#11 token it can also replace the public-key
 * objects (public objects need no login).  The agent then reads a foreign
 * public key from the token, finds a registry that verifies under it, and
 * would go on as if nothing had happened.  This module checks the keys
 * against what the malware cannot forge (docs/agent.md "When the state
 * directory is not yours"):
 *
 *  - the token itself: one signature verified with the public key the
 *    token shows for its signing key, and one ECDH (or RSA-OAEP round
 *    trip) with the encryption key, at start and at unlock: the private
 *    keys behind a PIN cannot be replaced without it;
 *  - the account's log as the directory signed it: a view of the log in
 *    the registry must be signed by the pinned directory key and must
 *    list the token's key as a device; on the first check after a start
 *    the log is read again from seq 1 up to the registry's seq and must
 *    give the same devices as the registry's view;
 *  - a registry that does not verify under the token's key but under the
 *    key of the device it names as this device: the registry is this
 *    device's, the token's key is not.
 *
 * What they find is a `key_replaced` alert (critical) naming the token's
 * key, the key the evidence names and where the keys come from; from then
 * on the agent does not use the token's key (no directory login, no
 * signature, no registry write, no `open`) until it is restarted with
 * this device's own keys.
 *
 * The functions that take a struct agent run with its lock held (or
 * before the watcher starts); the others are pure and tested on their
 * own (tests/unit/test_agentanchor.c).
 */
#ifndef DEVID_AGENT_ANCHOR_H
#define DEVID_AGENT_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "agent-token.h"
#include "devrec.h"
#include "errors.h"

struct agent;           /* agent-ops.h */
struct dirc;            /* dirclient.h */

#define AGENT_ANCHOR_WHY_MAX 512

/* What the agent knows about its keys (a member of struct agent). */
struct agent_anchor {
	int proven;             /* the token used both keys as shown */
	int files_judged;       /* the registry files were looked at */
	int reverified;         /* the log was re-read up to the saved seq */
	int blocked;            /* the keys are not this device's: unused */
	char why[AGENT_ANCHOR_WHY_MAX];   /* the alert's message */
};

/* What one check found. */
struct agent_anchor_finding {
	int found;              /* 1: the token's keys are not this device's */
	char reason[24];        /* "proof_failed", "foreign_registry", ... */
	char expected[DEVREC_ID_HEX_LEN + 1];   /* this device per the
						 * evidence, or "" */
	char label[DEVREC_LABEL_MAX + 1];       /* its label, or "" */
	uint64_t seq;           /* the log seq the evidence is of, or 0 */
	char evidence[320];     /* the clause after "but" in the message */
};

/* --- pure checks --- */

/*
 * Judges a view of the account's log that the registry holds (signed
 * with the token's key) against the token's keys (token_id, and enc_spki
 * of enc_len bytes; enc_len 0 skips that comparison).  dir_pub is the
 * pinned directory key: the view's head must verify under it (NULL: the
 * view was verified from the directory already).  label is this device's
 * label (may be NULL).  self_revoked: the registry marks the token's key
 * as revoked.  f is filled: found when the view (seq >= 1) is not signed
 * by the directory, or the token's key is neither an active device of it
 * nor revoked in its history, or the account lists the token's key with
 * another encryption key.  A view at seq 0 (never verified: a device not
 * registered yet, or a registry made to look like one) finds nothing.
 */
void agent_anchor_judge_view(const struct acctlog_state *view,
    EVP_PKEY *dir_pub, const char *token_id, const uint8_t *enc_spki,
    size_t enc_len, const char *label, int self_revoked,
    struct agent_anchor_finding *f);

/*
 * Judges registry text (len bytes) with signature sig that did not
 * verify under the token's key: f is found when the registry names a
 * device other than token_id as this device, holds that device's record,
 * and sig verifies under that record's signing key -- the registry is
 * this device's and the token's key is another.  A registry that does
 * not parse or verify that way is left to the tamper check (nothing
 * found).
 */
void agent_anchor_judge_foreign(const char *text, size_t len,
    const uint8_t sig[64], const char *token_id,
    struct agent_anchor_finding *f);

/*
 * Compares the registry's view saved with the view real that the
 * directory's log gives at the same seq.  Found when both end in the same
 * hash (the directory signed the saved one) but their active devices
 * differ: the registry's view was rewritten.  A different hash is a fork
 * of the directory's, which the watcher alerts on; nothing is found here.
 * token_id and label name the token's key and this device.
 */
void agent_anchor_compare_views(const struct acctlog_state *saved,
    const struct acctlog_state *real, const char *token_id,
    const char *label, struct agent_anchor_finding *f);

/*
 * The alert message for f into out (out_len bytes, NUL-terminated, cut
 * when longer): what was found, the token's key (token_id, "" when
 * unknown) and where it comes from (key_ref: a key file or a PKCS#11
 * URI; NULL or "" when unknown), and that the key is not used.
 */
void agent_anchor_message(const struct agent_anchor_finding *f,
    const char *token_id, const char *key_ref, char *out, size_t out_len);

/*
 * A short name for a key reference: the file name of a path, the
 * object (and token) of a pkcs11: URI, else the text itself; into out.
 */
void agent_anchor_ref_short(const char *ref, char *out, size_t out_len);

/* 1 when the socket operation op may run while the keys are not this
 * device's (it neither uses nor trusts the token's keys). */
int agent_anchor_op_allowed(const char *op);

/* --- the token --- */

/*
 * Proves the token's keys: signs a random digest and verifies it with
 * the signing key's public half the token showed, and runs ECDH with the
 * encryption key against a fresh software key (or decrypts an RSA-OAEP
 * ciphertext made with its public half), comparing with software.  Costs
 * one signature and one ECDH or decryption.  0; ERR_KEY_POLICY when a
 * private key does not belong to its public half (what the token shows
 * was replaced); PIN and token errors as the token gives them.
 */
int agent_anchor_prove(struct agent_token *at, struct err_ctx *e);

/* --- the agent (lock held) --- */

/*
 * At start (after the token opened) and after unlock: the registry files
 * judged once against the token's keys, then the token's keys proven
 * (unless done; deferred while the token needs a PIN it does not have).
 * What is found is raised and blocks the keys.  Returns 0, also when it
 * blocked; an error only when nothing could be judged (ERR_ALLOC,
 * ERR_IO, a token failure other than the PIN), with e set.
 */
int agent_anchor_check(struct agent *a, struct err_ctx *e);

/*
 * Opening the token refused its keys with ERR_KEY_POLICY (why says how):
 * the keys are not the ones init made or adopted.  Raises and blocks.
 */
void agent_anchor_keys_refused(struct agent *a, const struct err_ctx *why);

/*
 * On the first check after a start (lock held; released while the
 * directory answers, with the session of c): reads the account's log
 * from seq 1 up to the seq of the registry's view, page by page, replays
 * it and compares it with the view (agent_anchor_compare_views()); what
 * is found is raised and blocks.  Done once; a log that does not verify
 * or is shorter is left to the watcher's own check.  Returns 0, or the
 * directory client's error (not done: the caller tries again later).
 */
int agent_anchor_reverify(struct agent *a, struct dirc *c,
    struct err_ctx *e);

/* After a successful check (lock held): the verified view must list the
 * token's keys (agent_anchor_judge_view() without the head check). */
void agent_anchor_after_check(struct agent *a);

/*
 * The directory refused the login (r, e) of the watcher with the error
 * word dir_code (dirc_last_error_code): when it does not know the token's
 * key ("unknown_device"), e's message is extended with what that means
 * (not registered yet, revoked, or keys replaced).
 */
void agent_anchor_login_refused(struct agent *a, int r, const char *dir_code,
    struct err_ctx *e);

/* 1 when the token's keys are blocked. */
int agent_anchor_blocked(const struct agent_anchor *an);

/* Records in e (replacing what it held) why the keys are not used and
 * returns ERR_DENIED. */
int agent_anchor_refuse(const struct agent *a, struct err_ctx *e);

#endif /* DEVID_AGENT_ANCHOR_H */
