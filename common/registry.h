/*
 * registry.h - the token-signed registry of an account's devices.
 *
 * registry.json holds the account, this device, the pinned directory id,
 * the last verified view of the account log (acctlog_state: seq, hash,
 * signed head, active devices, history) and every device this agent has
 * heard of with its label, first-seen time and state:
 *
 *   approved  the user accepted it; add_seq/add_hash name the add event
 *             that was approved (0 and zeros: this device before it was
 *             registered), so a device revoked and added again is a new
 *             event that is announced again;
 *   pending   seen in the log, not (yet) approved;
 *   revoked   revoked in the log or by this agent.
 *
 * registry.sig holds base64url(raw r||s) and a newline (sigfile.h): the
 * device's signing key over H("devid-registry-v1"\0 || registry.json
 * bytes).  It is verified with the public key read from the token, never
 * from a file.
 *
 * The same format, under a tag of its own, holds devid-msg's contact pins
 * (msgclient/msg-contacts.h): the device list of another account as this
 * device accepted it.
 */
#ifndef DEVID_REGISTRY_H
#define DEVID_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "acctlog.h"
#include "devrec.h"
#include "errors.h"

#define REG_FILE "registry.json"
#define REG_SIG_FILE "registry.sig"
#define REG_FILE_MAX ((size_t)16 * 1024 * 1024)
#define REG_MAX_DEVICES 1024
#define REG_VERSION 1

enum reg_state {
	REG_PENDING = 0,
	REG_APPROVED = 1,
	REG_REVOKED = 2,
};

/* "pending", "approved", "revoked". */
const char *reg_state_name(enum reg_state s);

struct reg_device {
	char device[DEVREC_ID_HEX_LEN + 1];
	char label[DEVREC_LABEL_MAX + 1];
	enum reg_state state;
	uint64_t first_seen;
	uint64_t add_seq;               /* approved/seen add event */
	uint8_t add_hash[32];
	uint64_t changed;               /* time of the last state change */
	int has_record;
	struct devrec rec;
};

/* A registry; owns its arrays.  Release with reg_clear(). */
struct registry {
	char account[DEVREC_ACCOUNT_MAX + 1];
	char device[DEVREC_ID_HEX_LEN + 1];
	char directory[DEVREC_ID_HEX_LEN + 1];
	uint64_t updated;
	/* Contact pins only (devid-msg trust --endorsed): accept a new
	 * device endorsed by an accepted one without asking. */
	int trust_endorsed;
	struct acctlog_state log;
	struct reg_device *devs;
	size_t n_devs;
};

/* An empty registry of account for this device under directory. */
int reg_init(struct registry *reg, const char *account, const char *device,
    const char *directory, struct err_ctx *e);

/* Frees what reg holds and zeroes it.  NULL is fine. */
void reg_clear(struct registry *reg);

/* Deep copy; dst is overwritten. */
int reg_copy(struct registry *dst, const struct registry *src);

/* The device with this id, or NULL. */
struct reg_device *reg_find(struct registry *reg, const char *device);

/* Adds a device entry (id set, the rest zero) and returns it in *out;
 * ERR_EXISTS when present, ERR_TOO_LARGE over REG_MAX_DEVICES. */
int reg_add(struct registry *reg, const char *device, struct reg_device **out,
    struct err_ctx *e);

/*
 * Finds the one device whose id starts with prefix (hex digits; dashes of
 * the short form are ignored; at least 4 digits).  ERR_NOT_FOUND, or
 * ERR_EXISTS when the prefix is ambiguous.
 */
int reg_match(struct registry *reg, const char *prefix,
    struct reg_device **out, struct err_ctx *e);

/* Encodes reg as JSON text (a new string, caller frees). */
int reg_encode(const struct registry *reg, char **out, size_t *out_len,
    struct err_ctx *e);

/*
 * Parses registry JSON strictly (known fields, bounded sizes, ids, states,
 * the log state as acctlog_state_from_json checks it, records verified
 * with devrec_verify).  reg is initialised here; on failure it is empty.
 */
int reg_parse(const char *text, size_t len, struct registry *reg,
    struct err_ctx *e);

/* H("devid-registry-v1"\0 || text). */
int reg_digest(const char *text, size_t len, uint8_t out[32]);

/* The signing step (a token in the agent, a software key in tests). */
typedef int (*reg_sign_fn)(void *arg, const uint8_t digest[32],
    uint8_t sig[64], struct err_ctx *e);

/*
 * Encodes, signs and writes reg to dir/registry.json and
 * dir/registry.sig (mode 0600, each replaced atomically, fsync'd).
 */
int reg_save(const struct registry *reg, const char *dir, reg_sign_fn sign,
    void *sign_arg, struct err_ctx *e);

/*
 * Reads dir/registry.json and registry.sig, verifies the signature with
 * pub and parses.  ERR_NOT_FOUND when there is no registry, ERR_SIGNATURE
 * when the signature is missing, malformed or does not verify (the file
 * was changed by someone without the token), ERR_FORMAT for a signed file
 * that does not parse.  reg is initialised here.
 */
int reg_load(const char *dir, EVP_PKEY *pub, struct registry *reg,
    struct err_ctx *e);

/*
 * A fingerprint of the two files as they are on disk: SHA-256 over
 * H(registry.json) || H(registry.sig).  The agent compares it with the
 * one of what it last wrote to notice a change made while it runs.
 * ERR_NOT_FOUND when a file is missing.
 */
int reg_files_digest(const char *dir, uint8_t out[32], struct err_ctx *e);

/* Verifies sig (raw r||s) over text with pub: 0 or ERR_SIGNATURE. */
int reg_verify(const char *text, size_t len, const uint8_t sig[64],
    EVP_PKEY *pub, struct err_ctx *e);

#endif /* DEVID_REGISTRY_H */
