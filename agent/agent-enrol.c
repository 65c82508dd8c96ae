/*
 * agent-enrol.c - enrolment codes and endorsement strings: what a person
 * carries between a new device and an existing one (agent-enrol.h); and
 * the `endorse` operation of the running agent, which signs one.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "agent-enrol.h"
#include "agent-log.h"
#include "agent-ops.h"
#include "agent-req.h"
#include "agent-token.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "registry.h"

/*
 * The base64url payload of s (len bytes) after prefix, decoded into a new
 * array (*out, *out_len; caller frees) of at most max_len bytes.  what
 * names the string in messages ("enrolment code").
 */
static int
decode_prefixed(const char *s, size_t len, const char *prefix,
    size_t max_len, const char *what, uint8_t **out, size_t *out_len,
    struct err_ctx *e)
{
	size_t plen = strlen(prefix);
	int r;

	if (len < plen || memcmp(s, prefix, plen) != 0)
		return err_set(e, ERR_FORMAT, "this is not a devid %s (one "
		    "starts with %s)", what, prefix);
	if (len == plen)
		return err_set(e, ERR_FORMAT, "the %s is empty after %s", what,
		    prefix);
	r = b64url_decode(s + plen, len - plen, max_len, out, out_len);
	if (r == ERR_TOO_LARGE)
		return err_set(e, r, "the %s is too long", what);
	if (r == ERR_FORMAT)
		return err_set(e, r, "the %s is damaged (not base64url after "
		    "%s: was it cut short or changed on its way?)", what,
		    prefix);
	if (r != 0)
		return err_set(e, r, "the %s: %s", what, err_str(r));
	return 0;
}

/* prefix followed by base64url of the len bytes at p, in a new string. */
static int
encode_prefixed(const char *prefix, const uint8_t *p, size_t len, char **out)
{
	char *b64 = NULL;
	int r;

	if ((r = b64url_encode(p, len, &b64)) != 0)
		return r;
	if (asprintf(out, "%s%s", prefix, b64) < 0) {
		free(b64);
		return ERR_ALLOC;
	}
	free(b64);
	return 0;
}

int
agent_enrol_code_encode(const struct devrec *rec, char **out,
    struct err_ctx *e)
{
	struct devrec plain;
	char *json = NULL;
	int r;

	return_val_if_fail(rec != NULL && out != NULL, ERR_INVALID_ARG);
	plain = *rec;
	plain.has_endorsement = 0;
	memset(plain.endorsed_by, 0, sizeof(plain.endorsed_by));
	memset(plain.endorsement_sig, 0, sizeof(plain.endorsement_sig));
	if ((r = devrec_encode(&plain, &json, e)) != 0)
		return r;
	r = encode_prefixed(AGENT_ENROL_CODE_PREFIX, (const uint8_t *)json,
	    strlen(json), out);
	free(json);
	return r;
}

int
agent_enrol_code_parse(const char *code, size_t len, const char *account,
    struct devrec *out, struct err_ctx *e)
{
	struct devrec rec;
	struct err_ctx why;
	uint8_t *json = NULL;
	size_t json_len = 0;
	int r;

	return_val_if_fail(code != NULL && out != NULL, ERR_INVALID_ARG);
	err_clear(&why);
	if (len > AGENT_ENROL_CODE_MAX)
		return err_set(e, ERR_TOO_LARGE, "the enrolment code is longer "
		    "than %zu characters", (size_t)AGENT_ENROL_CODE_MAX);
	if ((r = decode_prefixed(code, len, AGENT_ENROL_CODE_PREFIX,
	    DEVREC_JSON_MAX, "enrolment code", &json, &json_len, e)) != 0)
		return r;
	if ((r = devrec_parse((const char *)json, json_len, DEVREC_JSON_MAX,
	    &rec, &why)) != 0) {
		r = err_set(e, r, "the enrolment code does not hold a device "
		    "record: %s", err_msg(&why));
		goto out;
	}
	if (rec.has_endorsement) {
		r = err_set(e, ERR_FORMAT, "the enrolment code holds an "
		    "endorsed record: a new device's code never does");
		goto out;
	}
	if ((r = devrec_verify(&rec, &why)) != 0) {
		r = err_set(e, r, "the enrolment code's record of '%s' does "
		    "not verify (changed after the device signed it?): %s",
		    rec.label, err_msg(&why));
		goto out;
	}
	if (account != NULL && strcmp(rec.account, account) != 0) {
		r = err_set(e, ERR_DENIED, "the enrolment code is for a device "
		    "of %s, not of %s: endorse it on a device of that account",
		    rec.account, account);
		goto out;
	}
	*out = rec;
	r = 0;
 out:
	free(json);
	return r;
}

int
agent_enrol_endorsement_encode(const struct devrec *rec,
    const uint8_t *sig_pub, size_t sig_pub_len, char **out,
    struct err_ctx *e)
{
	char id[DEVREC_ID_HEX_LEN + 1], *text = NULL;
	json_t *o = NULL;
	int r = ERR_ALLOC;

	return_val_if_fail(rec != NULL && sig_pub != NULL && out != NULL,
	    ERR_INVALID_ARG);
	if (!rec->has_endorsement ||
	    devrec_device_id(sig_pub, sig_pub_len, id) != 0 ||
	    strcmp(id, rec->endorsed_by) != 0)
		return err_set(e, ERR_INVALID_ARG, "the record is not endorsed "
		    "by this key");
	if ((o = json_object()) == NULL ||
	    devrec_json_set_str(o, "by", rec->endorsed_by) != 0 ||
	    devrec_json_set_b64(o, "sig_pub", sig_pub, sig_pub_len) != 0 ||
	    devrec_json_set_b64(o, "sig", rec->endorsement_sig,
	    sizeof(rec->endorsement_sig)) != 0 ||
	    (text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	r = encode_prefixed(AGENT_ENROL_ENDORSEMENT_PREFIX,
	    (const uint8_t *)text, strlen(text), out);
 out:
	free(text);
	json_decref(o);
	return r;
}

int
agent_enrol_endorsement_parse(const char *s, size_t len,
    struct agent_enrol_endorsement *out, struct err_ctx *e)
{
	static const char *const keys[] = { "by", "sig_pub", "sig" };
	static const char what[] = "endorsement";
	struct agent_enrol_endorsement en;
	struct err_ctx why;
	EVP_PKEY *pub = NULL;
	char id[DEVREC_ID_HEX_LEN + 1];
	uint8_t *json = NULL;
	size_t json_len = 0;
	json_t *o = NULL;
	int r;

	return_val_if_fail(s != NULL && out != NULL, ERR_INVALID_ARG);
	err_clear(&why);
	memset(&en, 0, sizeof(en));
	if (len > AGENT_ENROL_ENDORSEMENT_MAX)
		return err_set(e, ERR_TOO_LARGE, "the endorsement is longer "
		    "than %zu characters", (size_t)AGENT_ENROL_ENDORSEMENT_MAX);
	if ((r = decode_prefixed(s, len, AGENT_ENROL_ENDORSEMENT_PREFIX,
	    AGENT_ENROL_ENDORSEMENT_JSON_MAX, "endorsement", &json,
	    &json_len, e)) != 0)
		return r;
	if ((r = devrec_json_load((const char *)json, json_len,
	    AGENT_ENROL_ENDORSEMENT_JSON_MAX, &o, what, &why)) != 0 ||
	    (r = devrec_json_keys(o, keys, 3, what, &why)) != 0 ||
	    (r = devrec_json_id(o, "by", en.by, what, &why)) != 0 ||
	    (r = devrec_json_b64(o, "sig_pub", en.sig_pub,
	    sizeof(en.sig_pub), &en.sig_pub_len, what, &why)) != 0 ||
	    (r = devrec_json_b64_exact(o, "sig", en.sig, sizeof(en.sig),
	    what, &why)) != 0) {
		r = err_set(e, r == ERR_TOO_LARGE ? r : ERR_FORMAT, "the "
		    "endorsement is damaged: %s", err_msg(&why));
		goto out;
	}
	if ((r = crypto_spki_import(en.sig_pub, en.sig_pub_len, &pub,
	    &why)) != 0 || !crypto_is_p256(pub)) {
		r = err_set(e, ERR_FORMAT, "the endorser's key is not an EC "
		    "P-256 signing key%s%s", r != 0 ? ": " : "",
		    r != 0 ? err_msg(&why) : "");
		goto out;
	}
	if ((r = devrec_device_id(en.sig_pub, en.sig_pub_len, id)) != 0 ||
	    strcmp(id, en.by) != 0) {
		r = err_set(e, ERR_FORMAT, "the endorsement names device "
		    "%.16s... but carries the key of %.16s...", en.by, id);
		goto out;
	}
	*out = en;
	r = 0;
 out:
	EVP_PKEY_free(pub);
	json_decref(o);
	free(json);
	return r;
}

int
agent_enrol_endorsement_apply(struct devrec *rec,
    const struct agent_enrol_endorsement *en, struct err_ctx *e)
{
	struct devrec tmp;
	struct err_ctx why;
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "";
	int r;

	return_val_if_fail(rec != NULL && en != NULL, ERR_INVALID_ARG);
	err_clear(&why);
	(void)devrec_short_id(rec->device, short_id);
	if (strcmp(en->by, rec->device) == 0)
		return err_set(e, ERR_DENIED, "the endorsement is by this "
		    "device itself: it must come from another device of the "
		    "account");
	tmp = *rec;
	tmp.has_endorsement = 1;
	memcpy(tmp.endorsed_by, en->by, sizeof(tmp.endorsed_by));
	memcpy(tmp.endorsement_sig, en->sig, sizeof(tmp.endorsement_sig));
	if ((r = devrec_verify_endorsement(&tmp, en->sig_pub, en->sig_pub_len,
	    &why)) != 0)
		return err_set(e, r == ERR_SIGNATURE ? r : ERR_SIGNATURE,
		    "the endorsement is not one of this device ('%s' %s of "
		    "%s): it was made for another enrolment code (%s)",
		    rec->label, short_id, rec->account, err_msg(&why));
	*rec = tmp;
	return 0;
}

/* --- the endorse operation --- */

int
agent_endorse_args(const json_t *req, struct err_ctx *e)
{
	static const char *const keys[] = { "record" };
	int r;

	if ((r = agent_req_keys(req, keys, 1, e)) != 0)
		return r;
	if (!json_is_object(json_object_get(req, "record")))
		return err_set(e, ERR_FORMAT, "record must be the new device's "
		    "record (an object)");
	return 0;
}

/*
 * Checks (lock held) that rec may be endorsed by this agent: a record of
 * its account that verifies on its own, of another device that is not
 * active in the verified log, while this device is active and approved
 * there.  Returns 0, or an error code with the reason in e.
 */
static int
endorse_check(struct agent *a, const struct devrec *rec, struct err_ctx *e)
{
	const struct acctlog_device *have;
	const struct reg_device *self;
	struct err_ctx why;
	char short_id[DEVREC_SHORT_ID_LEN + 1];

	err_clear(&why);
	(void)devrec_short_id(rec->device, short_id);
	if (rec->has_endorsement)
		return err_set(e, ERR_FORMAT, "the record of '%s' %s is "
		    "endorsed already", rec->label, short_id);
	if (devrec_verify(rec, &why) != 0)
		return err_set(e, ERR_REJECTED, "the record of '%s' %s does "
		    "not verify: %s", rec->label, short_id, err_msg(&why));
	if (strcmp(rec->account, a->reg.account) != 0)
		return err_set(e, ERR_DENIED, "the new device is of %s; this "
		    "device endorses devices of %s only", rec->account,
		    a->reg.account);
	if (strcmp(rec->device, a->tok.device) == 0)
		return err_set(e, ERR_DENIED, "a device cannot endorse itself");
	self = reg_find(&a->reg, a->tok.device);
	if (acctlog_state_find(&a->reg.log, a->tok.device) == NULL ||
	    self == NULL || self->state != REG_APPROVED)
		return err_set(e, ERR_DENIED, "this device is not an active "
		    "device of %s in the log it verified (is it registered, "
		    "and has the agent checked the log since?)",
		    a->reg.account);
	if ((have = acctlog_state_find(&a->reg.log, rec->device)) != NULL)
		return err_set(e, ERR_EXISTS, "device '%s' %s is on the "
		    "account already (log seq %llu): an endorsement is made "
		    "before a device registers; approve it instead",
		    rec->label, short_id, (unsigned long long)have->add_seq);
	return 0;
}

json_t *
agent_op_endorse(struct agent *a, const json_t *req, struct err_ctx *e)
{
	struct devrec rec;
	const struct reg_device *self;
	struct err_ctx why;
	char short_id[DEVREC_SHORT_ID_LEN + 1], by_short[DEVREC_SHORT_ID_LEN + 1];
	char *text = NULL, *sig_pub = NULL, *sig = NULL;
	json_t *o = NULL;
	int r;

	err_clear(&why);
	if (devrec_from_json(json_object_get(req, "record"), &rec, &why) != 0)
		return agent_reply_err(err_set(e, ERR_FORMAT, "record: %s",
		    err_msg(&why)), e);
	if ((r = endorse_check(a, &rec, e)) != 0)
		return agent_reply_err(r, e);
	if ((r = devrec_endorse(&rec, a->tok.sig_spki, a->tok.sig_spki_len,
	    agent_token_sign_cb, &a->tok, e)) != 0 ||
	    (r = agent_enrol_endorsement_encode(&rec, a->tok.sig_spki,
	    a->tok.sig_spki_len, &text, e)) != 0 ||
	    (r = b64url_encode(a->tok.sig_spki, a->tok.sig_spki_len,
	    &sig_pub)) != 0 ||
	    (r = b64url_encode(rec.endorsement_sig,
	    sizeof(rec.endorsement_sig), &sig)) != 0)
		goto out;
	(void)devrec_short_id(rec.device, short_id);
	(void)devrec_short_id(a->tok.device, by_short);
	self = reg_find(&a->reg, a->tok.device);
	agent_log(LOG_NOTICE, "endorsed the enrolment of device '%s' %s",
	    rec.label, short_id);
	o = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, "
	    "s:s}", "ok", 1, "account", rec.account, "device", rec.device,
	    "short_id", short_id, "label", rec.label, "by", a->tok.device,
	    "by_short_id", by_short, "by_label",
	    self != NULL ? self->label : "", "sig_pub", sig_pub, "sig", sig,
	    "endorsement", text);
	if (o == NULL)
		r = ERR_ALLOC;
 out:
	free(text);
	free(sig_pub);
	free(sig);
	if (o == NULL)
		o = agent_reply_err(r, e);
	return o;
}
