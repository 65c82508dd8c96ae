/*
 * transcript.h - the signed and hashed transcripts of PROTOCOL.md.
 *
 * A transcript is a domain tag (ASCII and one NUL) followed by lp(), u32()
 * and u64() fields (section 1).  Each builder below appends one complete
 * transcript to a struct buf; what is signed or hashed is always H() of the
 * whole transcript.  Identifiers written as "id" (device id, directory id)
 * are the 64-character lowercase hex strings of the protocol; hashes marked
 * "raw" are 32 bytes.  The envelope's HDR and SIG transcripts are built in
 * envelope.c, next to the structure they cover.
 */
#ifndef DEVID_TRANSCRIPT_H
#define DEVID_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TR_TAG_DEVICE   "devid-device-v1"
#define TR_TAG_ENDORSE  "devid-endorse-v1"
#define TR_TAG_REVOKE   "devid-revoke-v1"
#define TR_TAG_EVENT    "devid-event-v1"
#define TR_TAG_HEAD     "devid-head-v1"
#define TR_TAG_LOGIN    "devid-login-v1"
#define TR_TAG_MSG      "devid-msg-v1"
#define TR_TAG_ENV_SIG  "devid-env-sig-v1"
#define TR_TAG_WRAP     "devid-wrap-v1"
#define TR_TAG_REGISTRY "devid-registry-v1"
/* devid-msg's contact pins: the registry format for another account,
 * signed with a tag of its own so that a pin never passes for the
 * registry. */
#define TR_TAG_CONTACT  "devid-contact-v1"

#define TR_ID_HEX_LEN 64   /* a device or directory id */

/* binding transcript B (section 2). */
int tr_device_binding(struct buf *b, const char *account, const char *label,
    const uint8_t *sig_pub, size_t sig_pub_len, const char *enc_alg,
    const uint8_t *enc_pub, size_t enc_pub_len, uint64_t created);

/* endorsement transcript (section 2): hash_b is H(B), raw. */
int tr_endorsement(struct buf *b, const char *account, const char *device_id,
    const uint8_t hash_b[32]);

/* revoke transcript R (section 3). */
int tr_revoke(struct buf *b, const char *account, const char *device_id,
    uint64_t time);

/* event hash input (section 3): prev raw, payload P already built. */
int tr_event(struct buf *b, uint64_t seq, uint64_t time, const char *type,
    const uint8_t prev[32], const uint8_t *payload, size_t payload_len);

/* signed head transcript (section 3). */
int tr_head(struct buf *b, const char *directory_id, const char *account,
    uint64_t seq, const uint8_t hash[32], uint64_t time);

/* session login transcript (section 5); nonce is the decoded bytes. */
int tr_login(struct buf *b, const char *directory_id, const char *device_id,
    uint64_t time, const uint8_t *nonce, size_t nonce_len);

/* registry signature input (DESIGN.md): the tag then the file bytes. */
int tr_registry(struct buf *b, const uint8_t *file, size_t file_len);

/*
 * Returns 1 when the len bytes at p begin with one of the domain tags that
 * a local client may have a device sign (device, endorse, revoke, login,
 * env-sig, contact), else 0.  The agent signs nothing else for a client.
 * The registry tag is not among them: only the agent signs its registry,
 * directly with the token, so a client cannot forge one through `sign`.
 */
int tr_is_signable(const uint8_t *p, size_t len);

/* H(contents of b) into out.  0 or ERR_CRYPTO. */
int tr_hash(const struct buf *b, uint8_t out[32]);

/*
 * The tail of every function that builds a transcript only to hash it:
 * when built is 0 (the builder that filled b succeeded), H(contents of b)
 * into out.  Frees b either way; NULL is fine when built is not 0.
 * Returns built when it is not 0, else 0 or ERR_CRYPTO.  So
 *
 *     if ((b = buf_new(max_len)) == NULL)
 *             return ERR_ALLOC;
 *     return tr_hash_free(b, tr_head(b, ...), out);
 */
int tr_hash_free(struct buf *b, int built, uint8_t out[32]);

#endif /* DEVID_TRANSCRIPT_H */
