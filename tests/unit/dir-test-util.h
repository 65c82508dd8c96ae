/*
 * dir-test-util.h - fixtures shared by the directory tests: software
 * devices standing in for tokens, envelopes made with common/envelope,
 * temporary directories, a monotonic clock, and a small raw HTTP helper
 * for requests that a well-behaved client would never send.
 */
#ifndef DEVID_DIR_TEST_UTIL_H
#define DEVID_DIR_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "devrec.h"
#include "errors.h"

/* A device: software signing and HPKE keys and its signed record. */
struct tdev {
	EVP_PKEY *sig;
	EVP_PKEY *enc;
	struct devrec rec;
};

/* Makes a device of account with label; created is the record's time. */
int tdev_make(struct tdev *d, const char *account, const char *label,
    uint64_t created);
void tdev_clear(struct tdev *d);

/*
 * A transcript signer (dirc_sign_fn, env_sign_fn) with the device's
 * signing key: signs H(transcript).  arg is a struct tdev *.
 */
int tdev_sign(void *arg, const uint8_t *transcript, size_t len,
    uint8_t sig[64], struct err_ctx *e);

/* The revoke signature of signer over (account, device, time). */
int tdev_sign_revoke(const struct tdev *signer, const char *account,
    const char *device, uint64_t time, uint8_t sig[64]);

/*
 * Seals an envelope from sender to the accounts in to[] (views: one head
 * per account) for the given recipient devices, as JSON text in *json
 * (caller frees) of *len bytes.  The body is the text "hello".
 */
int tenv_make(const struct tdev *sender, const char *const *to, size_t n_to,
    const struct acctlog_head *views, size_t n_views,
    const struct tdev *const *recips, size_t n_recips, char **json,
    size_t *len);

/* Opens an envelope JSON for device self; 0 when it opens and says
 * "hello".  sender is the device that sent it. */
int tenv_open(const struct tdev *self, const struct tdev *sender,
    const char *json, size_t len);

/* The "id" member of JSON text (an envelope's id) into id, a string of
 * fewer than id_len bytes; 0, or -1 when there is none that fits. */
int tenv_id(const char *json, size_t len, char *id, size_t id_len);

/* A monotonic clock in milliseconds, and a sleep that resumes after
 * signals. */
double tmono_ms(void);
void tsleep_ms(unsigned int ms);

/* A new private temporary directory (caller frees the string) and its
 * recursive removal. */
char *ttmpdir_make(void);
void ttmpdir_remove(char *path);

/*
 * A raw HTTP request to base + path: method, optional body, optional
 * extra header (e.g. "Authorization: Bearer x"), optional Basic user and
 * password.  Returns the HTTP status (0 when no answer came) and the
 * parsed JSON answer in *out (may be NULL; caller json_decref).
 */
long thttp(const char *base, const char *method, const char *path,
    const char *body, size_t body_len, const char *header,
    const char *user, const char *password, json_t **out);

/* thttp() from the source address or interface iface (curl's
 * CURLOPT_INTERFACE, e.g. "host!127.0.0.2"; NULL: any).  Safe to call
 * from several threads once curl_global_init() has run. */
long thttp_from(const char *iface, const char *base, const char *method,
    const char *path, const char *body, size_t body_len, const char *header,
    const char *user, const char *password, json_t **out);

/* The "code" word of a JSON error answer, or "" . */
const char *terror_code(const json_t *answer);

#endif /* DEVID_DIR_TEST_UTIL_H */
