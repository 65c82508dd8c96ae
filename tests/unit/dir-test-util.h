/*
 * dir-test-util.h - fixtures shared by the directory tests: software
 * devices standing in for tokens, envelopes made with common/envelope,
 * temporary directories, a monotonic clock, a small raw HTTP helper
 * for requests that a well-behaved client would never send, and, for the
 * programs built with the directory's modules, an in-process directory.
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

/*
 * The callbacks of a recipient that knows one sender device and nothing
 * else: sender_key gives sender's key (ERR_NOT_FOUND for any other
 * device), the replay store and the gossip check accept everything;
 * ops->arg is sender (borrowed).
 */
struct env_open_ops;
void tenv_open_ops(struct env_open_ops *ops, const struct tdev *sender);

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

/* The integer member name of the "limits" of GET base + "/v1/info", or
 * -1 when the answer is not 200 or has no such integer. */
json_int_t tinfo_limit(const char *base, const char *name);

/*
 * A growing body for libcurl: tbody_write() is a CURLOPT_WRITEFUNCTION
 * whose CURLOPT_WRITEDATA is a struct tbody (start it zeroed, free p).
 * p is NUL-terminated past len once something came.
 */
struct tbody {
	uint8_t *p;
	size_t len;
};
size_t tbody_write(char *data, size_t size, size_t nmemb, void *arg);

/*
 * The in-process directory is there only for the programs that are built
 * with the directory's modules (their include path has directory/ and
 * they link them); the others see none of it.
 */
#if defined(__has_include)
#if __has_include("dir-api.h")
#define DIR_TEST_INPROC 1
#endif
#endif

#ifdef DIR_TEST_INPROC
#include "dir-api.h"
#include "dir-blob.h"
#include "dir-key.h"
#include "dir-server.h"
#include "dir-store.h"
#include "dirclient.h"

/*
 * An in-process directory: what devid-directory serve runs (dir-server,
 * dir-api, the SQLite store, optionally a blob directory) on a free
 * loopback port, with a fresh database, head key and blob directory in
 * a private temporary directory.  Start it zeroed.
 */
struct tdir {
	char *dir;                   /* the temporary directory */
	char blob_dir[512];          /* dir/blobs; "" without blobs */
	struct dir_store *store;     /* dir/dir.db */
	struct dir_key *key;         /* dir/head.key */
	struct dir_blobs *blobs;     /* NULL without blobs */
	struct dir_api api;
	int api_ready;               /* api to be cleared */
	struct dir_server *srv;      /* NULL until served */
	char base[128];              /* "http://127.0.0.1:PORT" */
};

/* How to make one: the API's and the server's configuration, and
 * whether blobs are served. */
struct tdir_opts {
	struct dir_api_config api;
	struct dir_server_config srv;
	int blobs;
};

/*
 * The defaults: dir_api_config_default() with open signup and the
 * cheapest password hash; a quiet server with every other member zero;
 * no blobs.  Tests change members before tdir_start().
 */
void tdir_opts_default(struct tdir_opts *o);

/*
 * tdir_open() makes the temporary directory, opens the store, creates
 * the head key, opens the blob directory when o->blobs, and initialises
 * the API (to which the blobs are given); tdir_serve() then starts the
 * server with o->srv on 127.0.0.1:0, o->api.max_body as its body limit,
 * the API as its handler and, with blobs, dir_api_headers as its headers
 * function, and fills in base.  Between the two the caller may attach
 * more to d->api (a transparency log).  tdir_start() does both.  Each
 * returns 0 or an error code, having said on stderr what failed; call
 * tdir_stop() in every case.
 */
int tdir_open(struct tdir *d, const struct tdir_opts *o);
int tdir_serve(struct tdir *d, const struct tdir_opts *o);
int tdir_start(struct tdir *d, const struct tdir_opts *o);

/* Stops the server and frees and removes everything tdir_open() and
 * tdir_serve() made, however far they went; d is zeroed. */
void tdir_stop(struct tdir *d);

/* Creates the account name with password pw directly in the store;
 * 0 or an error code (said on stderr). */
int tdir_account(struct tdir *d, const char *name, const char *pw);

/* A new client of the directory (dirc_free()), or NULL (said on
 * stderr). */
struct dirc *tdir_client(const struct tdir *d);

/* Registers dev with its account's password pw, the new head into *head
 * when not NULL; 0 or an error code (said on stderr). */
int tdir_register(const struct tdir *d, const struct tdev *dev,
    const char *pw, struct acctlog_head *head);

/* A new client logged in as dev in *out (dirc_free()); 0 or an error
 * code (said on stderr). */
int tdir_login(const struct tdir *d, struct tdev *dev, struct dirc **out);

/*
 * A registered device with a session: tdev_make(dev, account, label,
 * now), tdir_register() with pw and head, then tdir_login() into
 * *session.  0 or an error code (said on stderr); dev is to be cleared
 * with tdev_clear() in every case.
 */
int tdir_device(const struct tdir *d, struct tdev *dev, const char *account,
    const char *label, const char *pw, struct acctlog_head *head,
    struct dirc **session);

/*
 * What most tests of messages and blobs start from: the accounts alice
 * and bob with their passwords, alice's laptop a1 and phone a2 and bob's
 * desktop b1 made, registered in that order and logged in.  views[0] is
 * alice's head after a2's registration, views[1] bob's after b1's.
 */
struct tdir_devs {
	struct tdev a1, a2, b1;
	struct dirc *ca, *c2, *cb;   /* logged in as a1, a2, b1 */
	struct acctlog_head views[2];
};

/* Makes s on d (running); 0 or an error code (said on stderr).  Call
 * tdir_devs_clear() in every case, before tdir_stop(). */
int tdir_devs_make(struct tdir *d, struct tdir_devs *s, const char *alice,
    const char *alice_pw, const char *bob, const char *bob_pw);
void tdir_devs_clear(struct tdir_devs *s);
#endif /* DIR_TEST_INPROC */

#endif /* DEVID_DIR_TEST_UTIL_H */
