/*
 * msg-contacts.h - contact pins: the device list of another account as
 * this device accepted it.
 *
 * A pin is a file in the format of the agent's registry (registry.h:
 * account, this device, the pinned directory id, the verified view of
 * the contact's log, and every device with its state) in
 * CONTACTS_DIR/ACCOUNT.json, signed by this device's token through the
 * agent into CONTACTS_DIR/ACCOUNT.sig (one line: base64url of the raw
 * r||s signature and a newline).  The signature is over
 * H("devid-contact-v1"\0 || file bytes), a domain tag of its own so that a
 * pin can never pass for the agent's registry or the other way round, and
 * it is verified with the signing key the agent read from the token, never
 * with a key from a file.
 *
 * Device states in a pin: approved (the user accepted the device for the
 * add event named by add_seq/add_hash; on first contact every active
 * device), pending (active in the log but not accepted: new since the
 * pin, or added again after a revocation), revoked (gone from the log).
 */
#ifndef DEVID_MSG_CONTACTS_H
#define DEVID_MSG_CONTACTS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "buf.h"
#include "errors.h"
#include "registry.h"
#include "transcript.h"

/* The contact-pin tag is the protocol's (transcript.h), which the agent's
 * `sign` accepts (tr_is_signable). */
#define MSG_CONTACT_TAG TR_TAG_CONTACT
#define MSG_CONTACTS_DIR "contacts"

/* Signs a whole transcript (tag first) with the device key: the agent's
 * "sign" operation in devid-msg, a software key in the tests. */
typedef int (*msg_contact_sign_fn)(void *arg, const uint8_t *transcript,
    size_t len, uint8_t sig[64], struct err_ctx *e);

/* The signed transcript: "devid-contact-v1"\0 || text, in a new buffer. */
int msg_contact_transcript(const char *text, size_t len, struct buf **out);

/*
 * The paths of ACCOUNT's pin in dir ("json" or "sig" for ext): a new
 * string in *out.  ERR_FORMAT for an invalid account name (which is also
 * what keeps a name from leaving dir).
 */
int msg_contact_path(const char *dir, const char *account, const char *ext,
    char **out, struct err_ctx *e);

/*
 * Reads and verifies ACCOUNT's pin: the signature with self_pub, then the
 * strict registry parse, then that it is the pin of account, held by
 * self_device.  pin is initialised here (reg_clear() it either way).
 * ERR_NOT_FOUND when there is no pin, ERR_SIGNATURE when the file or its
 * signature was changed outside devid-msg, ERR_FORMAT otherwise.
 */
int msg_contact_load(const char *dir, const char *account,
    const char *self_device, EVP_PKEY *self_pub, struct registry *pin,
    struct err_ctx *e);

/*
 * Encodes pin, has it signed through sign, checks the signature with
 * self_pub (a token that signs with another key is caught here) and
 * writes ACCOUNT.json then ACCOUNT.sig atomically (0600, fsync'd).  dir is
 * created with mode 0700 when missing.
 */
int msg_contact_save(const char *dir, const struct registry *pin,
    EVP_PKEY *self_pub, msg_contact_sign_fn sign, void *sign_arg,
    struct err_ctx *e);

/*
 * Moves an unverifiable pin aside as ACCOUNT.json.rejected-TIME (and the
 * .sig with it) so that the contact can be pinned anew.
 */
int msg_contact_reject(const char *dir, const char *account, uint64_t now,
    struct err_ctx *e);

/*
 * Brings pin's device list in line with its verified log (pin->log):
 * an active device not in the list is added, approved when first_use
 * (first contact) and pending otherwise; an approved device whose add
 * event is not the one approved (revoked and added again) becomes
 * pending; a listed device no longer active becomes revoked.  *changed
 * (may be NULL) is set to 1 when anything changed.  0, ERR_ALLOC or
 * ERR_TOO_LARGE.
 */
int msg_contact_sync(struct registry *pin, int first_use, uint64_t now,
    int *changed, struct err_ctx *e);

/* 1 when device is active in pin's verified log and approved for the add
 * event that made it active, else 0. */
int msg_contact_accepted(const struct registry *pin, const char *device);

/* Told of each device msg_contact_accept_endorsed() accepts. */
typedef void (*msg_contact_shown_fn)(void *arg, const struct registry *pin,
    const char *device);

/*
 * When pin->trust_endorsed is on: accepts every active device of pin's
 * log (msg_contact_sync()ed first) that is not accepted and whose record
 * is endorsed by a device that is active and accepted in pin, repeating
 * until nothing changes, and calls shown (may be NULL) for each so that
 * the user sees it.  An unendorsed device, or one endorsed by a device
 * that is pending or revoked, stays pending.  Returns how many were
 * accepted (0 when the setting is off).
 */
int msg_contact_accept_endorsed(struct registry *pin, uint64_t now,
    msg_contact_shown_fn shown, void *arg);

/*
 * Accepts the active devices of pin that are not accepted yet (all of
 * them when prefix is NULL, else the one whose id starts with prefix).
 * *n (may be NULL) gets the number newly accepted.
 */
int msg_contact_trust(struct registry *pin, const char *prefix,
    uint64_t now, size_t *n, struct err_ctx *e);

/*
 * A sentence about device of pin for the user: its label and short id,
 * when it was added (the add event's time) and whether it was endorsed
 * and by which device.
 */
void msg_contact_explain(const struct registry *pin, const char *device,
    char *out, size_t out_len);


#endif /* DEVID_MSG_CONTACTS_H */
