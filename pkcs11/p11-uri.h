/*
 * p11-uri.h - RFC 7512 URIs and PIN sources for the PKCS#11 backend.
 *
 * Parsing goes through p11-kit's URI parser; this module adds devid's
 * rules on top: exactly one of module-name and module-path, a private-key
 * type if any, a known pin source, nothing unrecognised.  PINs live in a
 * struct p11_pin, which is wiped by p11_pin_clear() and by p11_uri_free().
 */
#ifndef DEVID_P11_URI_H
#define DEVID_P11_URI_H

#include <stddef.h>
#include <stdint.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "errors.h"
#include "p11-token.h"

/* Longest CKA_ID accepted in a URI, in bytes. */
#define P11_ID_MAX 64
/* Longest object label (CKA_LABEL) devid handles, in bytes. */
#define P11_LABEL_MAX 128

/* A PIN: len bytes of value, NUL-terminated; set says whether there is one. */
struct p11_pin {
	char value[P11_PIN_MAX + 1];
	size_t len;
	int set;
};

/* A parsed URI.  Strings are NUL-terminated copies owned by the struct. */
struct p11_uri {
	P11KitUri *kit;           /* token, slot and module info to match */
	char *module_name;        /* exactly one of these two is set */
	char *module_path;
	char *object;             /* object label, or NULL */
	uint8_t id[P11_ID_MAX];   /* CKA_ID, when id_len > 0 */
	size_t id_len;
	char *pin_file;           /* pin-source as a file path, or NULL */
	struct p11_pin pin;       /* pin-value, when pin.set */
};

/*
 * Parses text into a new struct p11_uri (*out; free with p11_uri_free()).
 * Returns 0 or ERR_CONFIG (with the reason in e) or ERR_ALLOC; *out is
 * untouched on failure.  A pin-value is moved into the result and wiped in
 * p11-kit's copy; text itself is not modified.
 */
int p11_uri_parse(const char *text, struct p11_uri **out, struct err_ctx *e);

/* Frees u, wiping its PIN.  NULL is fine. */
void p11_uri_free(struct p11_uri *u);

/*
 * The label base the URI asks for: its object attribute without a
 * trailing "-sig" or "-enc", else def.  Writes at most base_max bytes with
 * the NUL; ERR_CONFIG when the result is empty or does not fit.
 */
int p11_uri_label_base(const struct p11_uri *u, const char *def, char *base,
    size_t base_max, struct err_ctx *e);

/*
 * Reads a PIN file: the whole file is the PIN, except one trailing "\n" or
 * "\r\n".  Refuses (without reading) a file that others may read or
 * write (ERR_DENIED), and refuses an empty PIN, a NUL byte (ERR_FORMAT) or
 * more than P11_PIN_MAX bytes (ERR_TOO_LARGE).  ERR_IO when the file cannot
 * be read.  The message names the file, never its contents.  pin is
 * cleared first and stays cleared on failure.
 */
int p11_pin_read_file(const char *path, struct p11_pin *pin,
    struct err_ctx *e);

/* Sets pin from a NUL-terminated string; ERR_TOO_LARGE over P11_PIN_MAX,
 * ERR_FORMAT when empty. */
int p11_pin_set(struct p11_pin *pin, const char *value, struct err_ctx *e);

/* Wipes pin and marks it unset.  NULL is fine. */
void p11_pin_clear(struct p11_pin *pin);

/*
 * Finds the PIN for token_label: the URI's pin-value, the URI's pin-source
 * file, opt->pin_file, then opt->pin_prompt, the first that exists.  Returns
 * 0 with pin set, ERR_PIN_REQUIRED when no source is available, or the
 * source's error.  opt may be NULL.
 */
int p11_pin_resolve(const struct p11_uri *u, const struct p11_options *opt,
    const char *token_label, struct p11_pin *pin, struct err_ctx *e);

#endif /* DEVID_P11_URI_H */
