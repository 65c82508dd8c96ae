/*
 * agent-enrol.h - the two strings a person carries between devices when a
 * new device is enrolled through an existing one (docs/agent.md
 * "Adding a device"):
 *
 *   enrolment code   new -> existing device:
 *                    "devid-enrol1:" base64url(device record JSON)
 *                    The record as devrec_encode() writes it, binding
 *                    signature included, without an endorsement.
 *   endorsement      existing -> new device:
 *                    "devid-endorsement1:" base64url({"by": "<hex id>",
 *                    "sig_pub": "<b64url SPKI>", "sig": "<b64url 64>"})
 *                    The endorser's id, its signing key and its signature
 *                    over the endorsement transcript of PROTOCOL.md
 *                    section 2.
 *
 * Neither passes through the directory.  Both parsers are strict (one
 * prefix, canonical unpadded base64url, bounded sizes, strict JSON with
 * duplicate and unknown keys rejected, nothing after the value) and both
 * verify what can be verified on their own: the record's binding
 * signature, and that the endorser's key has the id it claims.
 */
#ifndef DEVID_AGENT_ENROL_H
#define DEVID_AGENT_ENROL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto.h"
#include "devrec.h"
#include "errors.h"

#define AGENT_ENROL_CODE_PREFIX "devid-enrol1:"
#define AGENT_ENROL_ENDORSEMENT_PREFIX "devid-endorsement1:"
/* The longest enrolment code: the prefix and base64url of a record of
 * DEVREC_JSON_MAX bytes. */
#define AGENT_ENROL_CODE_MAX \
	(sizeof(AGENT_ENROL_CODE_PREFIX) - 1 + (DEVREC_JSON_MAX * 4 + 2) / 3)
/* The endorsement's JSON: an id, one P-256 SPKI and a signature. */
#define AGENT_ENROL_ENDORSEMENT_JSON_MAX ((size_t)1024)
#define AGENT_ENROL_ENDORSEMENT_MAX \
	(sizeof(AGENT_ENROL_ENDORSEMENT_PREFIX) - 1 + \
	(AGENT_ENROL_ENDORSEMENT_JSON_MAX * 4 + 2) / 3)

/* What an endorsement string carries. */
struct agent_enrol_endorsement {
	char by[DEVREC_ID_HEX_LEN + 1];         /* the endorser's id */
	uint8_t sig_pub[CRYPTO_SPKI_MAX];       /* its signing key, DER SPKI */
	size_t sig_pub_len;
	uint8_t sig[DEVREC_SIG_LEN];            /* raw r||s */
};

/*
 * The enrolment code of rec in a new NUL-terminated string (caller
 * frees).  An endorsement in rec is left out.  0, or ERR_ALLOC (or the
 * encoder's error) with e set.
 */
int agent_enrol_code_encode(const struct devrec *rec, char **out,
    struct err_ctx *e);

/*
 * Reads the len bytes of an enrolment code (not NUL-terminated): the
 * prefix, base64url, a strict record without an endorsement whose
 * binding signature verifies, and, when account is not NULL, of that
 * account.  *out is written only on success.  Returns 0, ERR_TOO_LARGE,
 * ERR_FORMAT, ERR_SIGNATURE (a record whose fields were changed after it
 * was signed) or ERR_DENIED (another account), with a sentence in e.
 */
int agent_enrol_code_parse(const char *code, size_t len, const char *account,
    struct devrec *out, struct err_ctx *e);

/*
 * The endorsement of a record that devrec_endorse() endorsed with the key
 * sig_pub (DER SPKI) as a string (new, caller frees).  ERR_INVALID_ARG
 * when rec has no endorsement or sig_pub is not the endorser's key.
 */
int agent_enrol_endorsement_encode(const struct devrec *rec,
    const uint8_t *sig_pub, size_t sig_pub_len, char **out,
    struct err_ctx *e);

/*
 * Reads the len bytes of an endorsement string: the prefix, base64url,
 * strict JSON of exactly by, sig_pub and sig, an EC P-256 key whose id is
 * by.  The signature is not checked here (it needs the record: see
 * agent_enrol_endorsement_apply).  *out is written only on success.
 * Returns 0, ERR_TOO_LARGE or ERR_FORMAT with a sentence in e.
 */
int agent_enrol_endorsement_parse(const char *s, size_t len,
    struct agent_enrol_endorsement *out, struct err_ctx *e);

/*
 * Puts the endorsement en into rec (replacing one it may hold) after
 * checking that it endorses exactly this record: the endorser is not the
 * device itself and the signature verifies over rec's endorsement
 * transcript (account, device id, H(binding)).  rec is changed only on
 * success.  Returns 0, ERR_DENIED (self-endorsement) or ERR_SIGNATURE (an
 * endorsement of another device, account or record) with e set.
 */
int agent_enrol_endorsement_apply(struct devrec *rec,
    const struct agent_enrol_endorsement *en, struct err_ctx *e);

/* --- the `endorse` socket operation (docs/agent.md) --- */

struct agent;

/* The fields of an `endorse` request: only "record", an object.  0, or
 * ERR_FORMAT with e set. */
int agent_endorse_args(const json_t *req, struct err_ctx *e);

/*
 * The `endorse` request (agent lock held, registry verified): reads the
 * new device's record strictly, checks its binding signature, that it is
 * of this agent's account, not this device and not active in the
 * verified log yet, and that this device is active and approved there;
 * then signs the endorsement transcript in the token (one signature) and
 * answers the endorsement, also as the string to carry back.
 */
json_t *agent_op_endorse(struct agent *a, const json_t *req,
    struct err_ctx *e);

#endif /* DEVID_AGENT_ENROL_H */
