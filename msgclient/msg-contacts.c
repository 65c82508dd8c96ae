/*
 * msg-contacts.c - contact pins, signed by the device's token (see
 * msg-contacts.h for the format).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "codec.h"
#include "crypto.h"
#include "devrec.h"
#include "errors.h"
#include "fileio.h"
#include "msg-contacts.h"
#include "paths.h"
#include "registry.h"
#include "sigfile.h"
#include "timefmt.h"
#include "transcript.h"

int
msg_contact_transcript(const char *text, size_t len, struct buf **out)
{
	return sigfile_transcript(MSG_CONTACT_TAG, text, len, REG_FILE_MAX,
	    out);
}

int
msg_contact_path(const char *dir, const char *account, const char *ext,
    char **out, struct err_ctx *e)
{
	/* The account syntax ([a-z0-9] first, no '/') keeps the name in dir. */
	if (devrec_account_check(account, e) != 0)
		return ERR_FORMAT;
	if (asprintf(out, "%s/%s.%s", dir, account, ext) < 0) {
		*out = NULL;
		return ERR_ALLOC;
	}
	return 0;
}

int
msg_contact_load(const char *dir, const char *account,
    const char *self_device, EVP_PKEY *self_pub, struct registry *pin,
    struct err_ctx *e)
{
	char *jpath = NULL, *spath = NULL, *text = NULL;
	size_t len = 0;
	uint8_t sig[64];
	int r = ERR_INTERNAL;

	memset(pin, 0, sizeof(*pin));
	if ((r = msg_contact_path(dir, account, "json", &jpath, e)) != 0 ||
	    (r = msg_contact_path(dir, account, "sig", &spath, e)) != 0 ||
	    (r = sigfile_read(jpath, spath, REG_FILE_MAX, &text, &len, sig,
	    e)) != 0)
		goto out;
	if ((r = sigfile_verify(MSG_CONTACT_TAG, text, len, REG_FILE_MAX, sig,
	    self_pub)) != 0) {
		if (r == ERR_SIGNATURE)
			r = err_set(e, ERR_SIGNATURE, "the pin of %s does not "
			    "verify under this device's key: %s was changed "
			    "outside devid-msg", account, jpath);
		goto out;
	}
	if ((r = reg_parse(text, len, pin, e)) != 0)
		goto out;
	if (strcmp(pin->account, account) != 0 ||
	    strcmp(pin->device, self_device) != 0) {
		r = err_set(e, ERR_FORMAT, "%s is not this device's pin of %s",
		    jpath, account);
		goto out;
	}
	r = 0;
 out:
	if (r != 0)
		reg_clear(pin);
	free(jpath);
	free(spath);
	free(text);
	return r;
}

int
msg_contact_save(const char *dir, const struct registry *pin,
    EVP_PKEY *self_pub, msg_contact_sign_fn sign, void *sign_arg,
    struct err_ctx *e)
{
	char *jpath = NULL, *spath = NULL, *text = NULL;
	struct buf *tr = NULL;
	uint8_t digest[32], sig[64];
	size_t len = 0;
	int r = ERR_INTERNAL;

	if ((r = path_private_dir(dir, e)) != 0 ||
	    (r = msg_contact_path(dir, pin->account, "json", &jpath, e)) != 0 ||
	    (r = msg_contact_path(dir, pin->account, "sig", &spath, e)) != 0 ||
	    (r = reg_encode(pin, &text, &len, e)) != 0 ||
	    (r = msg_contact_transcript(text, len, &tr)) != 0 ||
	    (r = tr_hash(tr, digest)) != 0)
		goto out;
	if ((r = sign(sign_arg, buf_ptr(tr), buf_len(tr), sig, e)) != 0)
		goto out;
	if (crypto_ecdsa_verify(self_pub, digest, sig) != 0) {
		r = err_set(e, ERR_SIGNATURE, "the token signed the pin of %s "
		    "with another key", pin->account);
		goto out;
	}
	if ((r = sigfile_write(jpath, spath, text, len, sig, e)) != 0)
		goto out;
	r = 0;
 out:
	buf_free(tr);
	free(jpath);
	free(spath);
	free(text);
	return r;
}

int
msg_contact_reject(const char *dir, const char *account, uint64_t now,
    struct err_ctx *e)
{
	const char *const ext[] = { "json", "sig" };
	char *path = NULL, *dst = NULL;
	size_t i;
	int r = 0;

	for (i = 0; i < 2 && r == 0; i++) {
		if ((r = msg_contact_path(dir, account, ext[i], &path, e)) != 0)
			break;
		if (asprintf(&dst, "%s.rejected-%llu", path,
		    (unsigned long long)now) < 0) {
			dst = NULL;
			r = ERR_ALLOC;
		} else if (rename(path, dst) != 0 && errno != ENOENT) {
			r = err_set(e, ERR_IO, "cannot move %s aside: %s", path,
			    strerror(errno));
		}
		free(path);
		free(dst);
		path = dst = NULL;
	}
	return r;
}

/* The add event time of device in pin's history, or 0 when unknown. */
static uint64_t
added_time(const struct registry *pin, uint64_t add_seq)
{
	size_t i;

	for (i = 0; i < pin->log.n_history; i++)
		if (pin->log.history[i].seq == add_seq &&
		    pin->log.history[i].type == ACCTLOG_ADD)
			return pin->log.history[i].time;
	return 0;
}

int
msg_contact_sync(struct registry *pin, int first_use, uint64_t now,
    int *changed, struct err_ctx *e)
{
	const struct acctlog_device *ad;
	struct reg_device *d;
	size_t i;
	int r, ch = 0;

	for (i = 0; i < pin->log.n_devices; i++) {
		ad = &pin->log.devices[i];
		if ((d = reg_find(pin, ad->rec.device)) == NULL) {
			if ((r = reg_add(pin, ad->rec.device, &d, e)) != 0)
				return r;
			snprintf(d->label, sizeof(d->label), "%s",
			    ad->rec.label);
			d->state = first_use ? REG_APPROVED : REG_PENDING;
			d->first_seen = now;
			d->changed = now;
			d->add_seq = ad->add_seq;
			memcpy(d->add_hash, ad->add_hash, 32);
			d->rec = ad->rec;
			d->has_record = 1;
			ch = 1;
			continue;
		}
		if (d->add_seq != ad->add_seq ||
		    memcmp(d->add_hash, ad->add_hash, 32) != 0) {
			/* Added again (after a revocation): ask again. */
			d->state = REG_PENDING;
			d->add_seq = ad->add_seq;
			memcpy(d->add_hash, ad->add_hash, 32);
			snprintf(d->label, sizeof(d->label), "%s",
			    ad->rec.label);
			d->rec = ad->rec;
			d->has_record = 1;
			d->changed = now;
			ch = 1;
		}
	}
	for (i = 0; i < pin->n_devs; i++) {
		d = &pin->devs[i];
		if (d->state != REG_REVOKED &&
		    acctlog_state_find(&pin->log, d->device) == NULL) {
			d->state = REG_REVOKED;
			d->changed = now;
			ch = 1;
		}
	}
	if (ch)
		pin->updated = now;
	if (changed != NULL)
		*changed = ch;
	return 0;
}

int
msg_contact_accepted(const struct registry *pin, const char *device)
{
	const struct acctlog_device *ad;
	size_t i;

	if ((ad = acctlog_state_find(&pin->log, device)) == NULL)
		return 0;
	for (i = 0; i < pin->n_devs; i++) {
		if (strcmp(pin->devs[i].device, device) != 0)
			continue;
		return pin->devs[i].state == REG_APPROVED &&
		    pin->devs[i].add_seq == ad->add_seq &&
		    memcmp(pin->devs[i].add_hash, ad->add_hash, 32) == 0;
	}
	return 0;
}

/* Whether device, active in pin's log and not accepted, is endorsed by a
 * device that is active and accepted in pin. */
static int
endorsed_by_accepted(const struct registry *pin, const char *device)
{
	const struct acctlog_device *ad;

	if ((ad = acctlog_state_find(&pin->log, device)) == NULL ||
	    !ad->rec.has_endorsement ||
	    msg_contact_accepted(pin, device))
		return 0;
	return msg_contact_accepted(pin, ad->rec.endorsed_by);
}

int
msg_contact_accept_endorsed(struct registry *pin, uint64_t now,
    msg_contact_shown_fn shown, void *arg)
{
	struct reg_device *d;
	size_t i;
	int count = 0, again = 1;

	if (!pin->trust_endorsed)
		return 0;
	/* A device endorsed by one accepted in this pass counts too: the
	 * endorsements form a chain back to a device the user accepted. */
	while (again) {
		again = 0;
		for (i = 0; i < pin->log.n_devices; i++) {
			const char *dev = pin->log.devices[i].rec.device;

			if (!endorsed_by_accepted(pin, dev) ||
			    (d = reg_find(pin, dev)) == NULL)
				continue;
			d->state = REG_APPROVED;
			d->changed = now;
			pin->updated = now;
			if (shown != NULL)
				shown(arg, pin, dev);
			count++;
			again = 1;
		}
	}
	return count;
}

int
msg_contact_trust(struct registry *pin, const char *prefix, uint64_t now,
    size_t *n, struct err_ctx *e)
{
	struct reg_device *d = NULL;
	size_t i, count = 0;
	int r;

	if ((r = msg_contact_sync(pin, 0, now, NULL, e)) != 0)
		return r;
	if (prefix != NULL) {
		if ((r = reg_match(pin, prefix, &d, e)) != 0)
			return r;
		if (acctlog_state_find(&pin->log, d->device) == NULL)
			return err_set(e, ERR_NOT_FOUND, "device %.16s is not "
			    "active on %s", d->device, pin->account);
	}
	for (i = 0; i < pin->n_devs; i++) {
		if (d != NULL && &pin->devs[i] != d)
			continue;
		if (msg_contact_accepted(pin, pin->devs[i].device) ||
		    acctlog_state_find(&pin->log, pin->devs[i].device) == NULL)
			continue;
		pin->devs[i].state = REG_APPROVED;
		pin->devs[i].changed = now;
		count++;
	}
	if (count > 0)
		pin->updated = now;
	if (n != NULL)
		*n = count;
	return 0;
}

void
msg_contact_explain(const struct registry *pin, const char *device,
    char *out, size_t out_len)
{
	const struct acctlog_device *ad, *by;
	char short_id[DEVREC_SHORT_ID_LEN + 1] = "?", by_short[
	    DEVREC_SHORT_ID_LEN + 1] = "?", when[48];
	uint64_t t;

	if ((ad = acctlog_state_find(&pin->log, device)) == NULL) {
		snprintf(out, out_len, "device %.16s is not active on %s",
		    device, pin->account);
		return;
	}
	(void)devrec_short_id(device, short_id);
	if ((t = added_time(pin, ad->add_seq)) == 0)
		t = ad->rec.created;
	timefmt_utc(t, when, sizeof(when));
	if (!ad->rec.has_endorsement) {
		snprintf(out, out_len, "device '%s' %s, added to %s at %s "
		    "(log entry %llu), not endorsed by any other device of %s",
		    ad->rec.label, short_id, pin->account, when,
		    (unsigned long long)ad->add_seq, pin->account);
		return;
	}
	(void)devrec_short_id(ad->rec.endorsed_by, by_short);
	by = acctlog_state_find(&pin->log, ad->rec.endorsed_by);
	snprintf(out, out_len, "device '%s' %s, added to %s at %s (log entry "
	    "%llu), endorsed by its device '%s' %s%s", ad->rec.label, short_id,
	    pin->account, when, (unsigned long long)ad->add_seq,
	    by != NULL ? by->rec.label : "?", by_short,
	    by != NULL && msg_contact_accepted(pin, by->rec.device) ?
	    " (which you accepted)" : " (which you have not accepted)");
}
