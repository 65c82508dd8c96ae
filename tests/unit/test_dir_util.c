/*
 * test_dir_util.c - fixtures shared by the directory tests.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "acctlog.h"
#include "crypto.h"
#include "devrec.h"
#include "envelope.h"
#include "errors.h"
#include "hpke.h"
#include "dir-test-util.h"
#ifdef DIR_TEST_INPROC
#include "dir-auth.h"
#endif

int
tdev_make(struct tdev *d, const char *account, const char *label,
    uint64_t created)
{
	uint8_t *sd = NULL, *ed = NULL;
	size_t sl = 0, el = 0;
	int r;

	memset(d, 0, sizeof(*d));
	if ((r = crypto_ec_generate(&d->sig)) != 0 ||
	    (r = crypto_ec_generate(&d->enc)) != 0 ||
	    (r = crypto_spki_export(d->sig, &sd, &sl)) != 0 ||
	    (r = crypto_spki_export(d->enc, &ed, &el)) != 0)
		goto out;
	r = devrec_build(&d->rec, account, label, sd, sl, DEVREC_ENC_HPKE_P256,
	    ed, el, created, devrec_sign_pkey, d->sig, NULL);
 out:
	free(sd);
	free(ed);
	return r;
}

void
tdev_clear(struct tdev *d)
{
	EVP_PKEY_free(d->sig);
	EVP_PKEY_free(d->enc);
	memset(d, 0, sizeof(*d));
}

int
tdev_sign(void *arg, const uint8_t *transcript, size_t len, uint8_t sig[64],
    struct err_ctx *e)
{
	const struct tdev *d = arg;
	uint8_t digest[32];
	int r;

	if ((r = crypto_sha256(transcript, len, digest)) != 0)
		return r;
	return devrec_sign_pkey(d->sig, digest, sig, e);
}

int
tdev_sign_revoke(const struct tdev *signer, const char *account,
    const char *device, uint64_t time, uint8_t sig[64])
{
	uint8_t digest[32];
	int r;

	if ((r = acctlog_revoke_digest(account, device, time, digest)) != 0)
		return r;
	return crypto_ecdsa_sign(signer->sig, digest, sig);
}

int
tenv_make(const struct tdev *sender, const char *const *to, size_t n_to,
    const struct acctlog_head *views, size_t n_views,
    const struct tdev *const *recips, size_t n_recips, char **json,
    size_t *len)
{
	struct env_seal_args a;
	struct env_recipient_key *rk = NULL;
	struct env *env = NULL;
	uint8_t *payload = NULL;
	size_t payload_len = 0, i;
	int r;

	if ((rk = calloc(n_recips, sizeof(*rk))) == NULL)
		return ERR_ALLOC;
	for (i = 0; i < n_recips; i++) {
		rk[i].device = recips[i]->rec.device;
		rk[i].alg = TOKEN_ENC_HPKE_P256;
		rk[i].enc_pub = recips[i]->enc;
	}
	if ((r = env_payload_encode("text/plain; charset=utf-8",
	    (const uint8_t *)"hello", 5, NULL, &payload, &payload_len,
	    NULL)) != 0)
		goto out;
	memset(&a, 0, sizeof(a));
	a.sender_account = sender->rec.account;
	a.sender_device = sender->rec.device;
	a.sent = (uint64_t)time(NULL);
	a.to = to;
	a.n_to = n_to;
	a.views = views;
	a.n_views = n_views;
	a.recipients = rk;
	a.n_recipients = n_recips;
	a.payload = payload;
	a.payload_len = payload_len;
	a.sign = tdev_sign;
	a.sign_arg = (void *)(uintptr_t)sender;
	if ((r = env_seal(&a, &env, NULL)) != 0 ||
	    (r = env_to_json(env, json, len)) != 0)
		goto out;
	r = 0;
 out:
	env_free(env);
	free(payload);
	free(rk);
	return r;
}

static int
open_sender_key(void *arg, const char *account, const char *device,
    EVP_PKEY **sig_pub, struct err_ctx *e)
{
	const struct tdev *sender = arg;
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	if (strcmp(device, sender->rec.device) != 0)
		return err_set(e, ERR_NOT_FOUND, "unknown sender");
	if ((r = crypto_spki_export(sender->sig, &der, &len)) != 0)
		return r;
	r = crypto_spki_import(der, len, sig_pub, e);
	free(der);
	return r;
}

static int
open_replay_check(void *arg, const char *device, const uint8_t id[16],
    struct err_ctx *e)
{
	return 0;
}

static int
open_replay_record(void *arg, const char *device, const uint8_t id[16],
    uint64_t sent, struct err_ctx *e)
{
	return 0;
}

static int
open_gossip(void *arg, const char *sender_account, const char *sender_device,
    const struct acctlog_head *views, size_t n_views, struct err_ctx *e)
{
	return 0;
}

void
tenv_open_ops(struct env_open_ops *ops, const struct tdev *sender)
{
	memset(ops, 0, sizeof(*ops));
	ops->sender_key = open_sender_key;
	ops->replay_check = open_replay_check;
	ops->replay_record = open_replay_record;
	ops->gossip = open_gossip;
	ops->arg = (void *)(uintptr_t)sender;
}

int
tenv_open(const struct tdev *self, const struct tdev *sender,
    const char *json, size_t len)
{
	struct env_self me;
	struct env_open_ops ops;
	struct env_opened o;
	struct err_ctx e;
	int r;

	memset(&me, 0, sizeof(me));
	memset(&o, 0, sizeof(o));
	err_clear(&e);
	me.device = self->rec.device;
	me.alg = TOKEN_ENC_HPKE_P256;
	if ((r = crypto_ec_point_get(self->enc, me.enc_point)) != 0)
		return r;
	me.dh = hpke_dh_software;
	me.dh_arg = self->enc;
	tenv_open_ops(&ops, sender);
	r = env_open((const uint8_t *)json, len, NULL, &me, &ops, &o, &e);
	if (r == 0 && (o.payload.body_len != 5 ||
	    memcmp(o.payload.body, "hello", 5) != 0))
		r = ERR_FORMAT;
	if (r != 0)
		fprintf(stderr, "envelope did not open: %s\n", err_msg(&e));
	env_opened_clear(&o);
	return r;
}

int
tenv_id(const char *json, size_t len, char *id, size_t id_len)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	const char *s = json_string_value(json_object_get(o, "id"));
	int r = -1;

	if (s != NULL && strlen(s) < id_len) {
		snprintf(id, id_len, "%s", s);
		r = 0;
	}
	json_decref(o);
	return r;
}

double
tmono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void
tsleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

char *
ttmpdir_make(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (base == NULL || *base == '\0')
		base = P_tmpdir;
	if ((p = malloc(strlen(base) + 32)) == NULL)
		return NULL;
	sprintf(p, "%s/devid-dir-test-XXXXXX", base);
	if (mkdtemp(p) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

static int
remove_one(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	return remove(path);
}

void
ttmpdir_remove(char *path)
{
	if (path == NULL)
		return;
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
}

size_t
tbody_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct tbody *a = arg;
	size_t n = size * nmemb;
	uint8_t *np;

	if ((np = realloc(a->p, a->len + n + 1)) == NULL)
		return 0;
	a->p = np;
	memcpy(a->p + a->len, data, n);
	a->len += n;
	a->p[a->len] = '\0';
	return n;
}

long
thttp(const char *base, const char *method, const char *path,
    const char *body, size_t body_len, const char *header, const char *user,
    const char *password, json_t **out)
{
	return thttp_from(NULL, base, method, path, body, body_len, header,
	    user, password, out);
}

long
thttp_from(const char *iface, const char *base, const char *method,
    const char *path, const char *body, size_t body_len, const char *header,
    const char *user, const char *password, json_t **out)
{
	struct curl_slist *hdrs = NULL;
	struct tbody a = { NULL, 0 };
	char url[4096];
	long status = 0;
	CURL *c;

	if (out != NULL)
		*out = NULL;
	if ((c = curl_easy_init()) == NULL)
		return 0;
	snprintf(url, sizeof(url), "%s%s", base, path);
	if (header != NULL)
		hdrs = curl_slist_append(hdrs, header);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (iface != NULL)
		curl_easy_setopt(c, CURLOPT_INTERFACE, iface);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, tbody_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 90L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* The server is on loopback: never through an http_proxy. */
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body_len);
	}
	if (user != NULL) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, password);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out != NULL && a.p != NULL)
		*out = json_loadb((const char *)a.p, a.len, 0, NULL);
	free(a.p);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return status;
}

const char *
terror_code(const json_t *answer)
{
	const char *s = json_string_value(json_object_get(json_object_get(
	    answer, "error"), "code"));

	return s != NULL ? s : "";
}

json_int_t
tinfo_limit(const char *base, const char *name)
{
	json_t *ans = NULL, *v;
	json_int_t n = -1;

	if (thttp(base, "GET", "/v1/info", NULL, 0, NULL, NULL, NULL,
	    &ans) == 200) {
		v = json_object_get(json_object_get(ans, "limits"), name);
		if (json_is_integer(v))
			n = json_integer_value(v);
	}
	json_decref(ans);
	return n;
}

#ifdef DIR_TEST_INPROC

void
tdir_opts_default(struct tdir_opts *o)
{
	memset(o, 0, sizeof(*o));
	dir_api_config_default(&o->api);
	o->api.open_signup = 1;
	o->api.scrypt_log_n = DIR_SCRYPT_LOG_N_MIN;
	o->srv.quiet = 1;
}

int
tdir_open(struct tdir *d, const struct tdir_opts *o)
{
	struct err_ctx e;
	char path[600];
	int r;

	memset(d, 0, sizeof(*d));
	err_clear(&e);
	if ((d->dir = ttmpdir_make()) == NULL) {
		fprintf(stderr, "no temporary directory\n");
		return ERR_IO;
	}
	snprintf(path, sizeof(path), "%s/dir.db", d->dir);
	if ((r = dir_store_sqlite_open(path, &d->store, &e)) != 0) {
		fprintf(stderr, "store: %s\n", err_msg(&e));
		return r;
	}
	snprintf(path, sizeof(path), "%s/head.key", d->dir);
	if ((r = dir_key_open(path, 1, &d->key, NULL, &e)) != 0) {
		fprintf(stderr, "head key: %s\n", err_msg(&e));
		return r;
	}
	if (o->blobs) {
		snprintf(d->blob_dir, sizeof(d->blob_dir), "%s/blobs",
		    d->dir);
		if ((r = dir_blobs_open(d->blob_dir, &d->blobs, &e)) != 0) {
			fprintf(stderr, "blob directory: %s\n", err_msg(&e));
			return r;
		}
	}
	if ((r = dir_api_init(&d->api, &o->api, d->store, d->key)) != 0) {
		fprintf(stderr, "directory API: error %d\n", r);
		return r;
	}
	d->api_ready = 1;
	if (d->blobs != NULL)
		dir_api_set_blobs(&d->api, d->blobs);
	return 0;
}

int
tdir_serve(struct tdir *d, const struct tdir_opts *o)
{
	struct dir_server_config sc = o->srv;
	struct err_ctx e;
	int r;

	err_clear(&e);
	sc.listen = "127.0.0.1:0";
	sc.max_body = o->api.max_body;
	sc.handler = dir_api_handle;
	sc.handler_arg = &d->api;
	if (d->blobs != NULL)
		sc.headers = dir_api_headers;
	if ((r = dir_server_start(&sc, &d->srv, &e)) != 0) {
		fprintf(stderr, "server: %s\n", err_msg(&e));
		return r;
	}
	dir_api_set_server(&d->api, d->srv);
	snprintf(d->base, sizeof(d->base), "http://%s",
	    dir_server_address(d->srv));
	return 0;
}

int
tdir_start(struct tdir *d, const struct tdir_opts *o)
{
	int r;

	if ((r = tdir_open(d, o)) != 0)
		return r;
	return tdir_serve(d, o);
}

void
tdir_stop(struct tdir *d)
{
	dir_server_stop(d->srv);
	if (d->api_ready)
		dir_api_clear(&d->api);
	dir_blobs_free(d->blobs);
	dir_key_free(d->key);
	dir_store_close(d->store);
	ttmpdir_remove(d->dir);
	memset(d, 0, sizeof(*d));
}

int
tdir_account(struct tdir *d, const char *name, const char *pw)
{
	struct err_ctx e;
	char *h = NULL;
	int r;

	err_clear(&e);
	if ((r = dir_password_hash(pw, strlen(pw), DIR_SCRYPT_LOG_N_MIN, &h,
	    &e)) == 0)
		r = d->store->ops->account_create(d->store, name, h,
		    (uint64_t)time(NULL), &e);
	if (r != 0)
		fprintf(stderr, "account %s: %s\n", name, err_msg(&e));
	free(h);
	return r;
}

struct dirc *
tdir_client(const struct tdir *d)
{
	struct dirc *c = NULL;
	struct err_ctx e;

	err_clear(&e);
	if (dirc_new(d->base, NULL, &c, &e) != 0) {
		fprintf(stderr, "client: %s\n", err_msg(&e));
		return NULL;
	}
	return c;
}

int
tdir_register(const struct tdir *d, const struct tdev *dev, const char *pw,
    struct acctlog_head *head)
{
	struct dirc *c;
	struct err_ctx e;
	int r;

	err_clear(&e);
	if ((c = tdir_client(d)) == NULL)
		return ERR_INTERNAL;
	if ((r = dirc_register_device(c, pw, &dev->rec, head, &e)) != 0)
		fprintf(stderr, "registration failed: %s\n", err_msg(&e));
	dirc_free(c);
	return r;
}

int
tdir_login(const struct tdir *d, struct tdev *dev, struct dirc **out)
{
	struct err_ctx e;
	int r;

	if ((*out = tdir_client(d)) == NULL)
		return ERR_INTERNAL;
	err_clear(&e);
	r = dirc_login(*out, dir_key_id(d->key), dev->rec.device, tdev_sign,
	    dev, NULL, &e);
	if (r != 0) {
		fprintf(stderr, "login failed: %s\n", err_msg(&e));
		dirc_free(*out);
		*out = NULL;
	}
	return r;
}

int
tdir_device(const struct tdir *d, struct tdev *dev, const char *account,
    const char *label, const char *pw, struct acctlog_head *head,
    struct dirc **session)
{
	int r;

	*session = NULL;
	if ((r = tdev_make(dev, account, label, (uint64_t)time(NULL))) != 0) {
		fprintf(stderr, "device %s: error %d\n", label, r);
		return r;
	}
	if ((r = tdir_register(d, dev, pw, head)) != 0)
		return r;
	return tdir_login(d, dev, session);
}

int
tdir_devs_make(struct tdir *d, struct tdir_devs *s, const char *alice,
    const char *alice_pw, const char *bob, const char *bob_pw)
{
	int r;

	memset(s, 0, sizeof(*s));
	if ((r = tdir_account(d, alice, alice_pw)) != 0 ||
	    (r = tdir_account(d, bob, bob_pw)) != 0 ||
	    (r = tdir_device(d, &s->a1, alice, "laptop", alice_pw, NULL,
	    &s->ca)) != 0 ||
	    (r = tdir_device(d, &s->a2, alice, "phone", alice_pw,
	    &s->views[0], &s->c2)) != 0)
		return r;
	return tdir_device(d, &s->b1, bob, "desktop", bob_pw, &s->views[1],
	    &s->cb);
}

void
tdir_devs_clear(struct tdir_devs *s)
{
	dirc_free(s->ca);
	dirc_free(s->c2);
	dirc_free(s->cb);
	tdev_clear(&s->a1);
	tdev_clear(&s->a2);
	tdev_clear(&s->b1);
	memset(s, 0, sizeof(*s));
}

#endif /* DIR_TEST_INPROC */
