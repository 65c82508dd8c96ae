/*
 * p11-uri.c - RFC 7512 URIs and PIN sources for the PKCS#11 backend.
 *
 * The PIN is a secret everywhere here: it is copied only into struct
 * p11_pin, every temporary copy is wiped, and no message ever quotes it
 * (nor quotes the URI text, which may hold a pin-value).
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"
#include "p11-uri.h"

/* Longest URI accepted, in bytes: far beyond any real one. */
#define P11_URI_TEXT_MAX 4096

void
p11_pin_clear(struct p11_pin *pin)
{
	if (pin == NULL)
		return;
	crypto_wipe(pin, sizeof(*pin));
}

int
p11_pin_set(struct p11_pin *pin, const char *value, struct err_ctx *e)
{
	size_t len;

	p11_pin_clear(pin);
	len = strnlen(value, P11_PIN_MAX + 1);
	if (len > P11_PIN_MAX)
		return err_set(e, ERR_TOO_LARGE,
		    "the PIN is longer than %d bytes", P11_PIN_MAX);
	if (len == 0)
		return err_set(e, ERR_FORMAT, "the PIN is empty");
	memcpy(pin->value, value, len);
	pin->value[len] = '\0';
	pin->len = len;
	pin->set = 1;
	return 0;
}

int
p11_pin_read_file(const char *path, struct p11_pin *pin, struct err_ctx *e)
{
	/* Room for the longest PIN, "\r\n", and one byte to detect more. */
	char raw[P11_PIN_MAX + 3];
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int fd = -1, r = ERR_INTERNAL;

	p11_pin_clear(pin);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		r = err_set(e, ERR_IO, "cannot open PIN file '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		r = err_set(e, ERR_IO, "cannot stat PIN file '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = err_set(e, ERR_IO, "PIN file '%s' is not a regular file",
		    path);
		goto out;
	}
	/* Like ssh with a private key: the group may not read it either. */
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		r = err_set(e, ERR_DENIED, "PIN file '%s' is open to other "
		    "users (mode %03o): run chmod 600 %s", path,
		    (unsigned int)(st.st_mode & 0777), path);
		goto out;
	}
	for (;;) {
		n = read(fd, raw + len, sizeof(raw) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = err_set(e, ERR_IO, "cannot read PIN file '%s': %s",
			    path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(raw)) {
			r = err_set(e, ERR_TOO_LARGE, "PIN file '%s' holds "
			    "more than %d bytes", path, P11_PIN_MAX);
			goto out;
		}
	}
	if (len > 0 && raw[len - 1] == '\n') {
		len--;
		if (len > 0 && raw[len - 1] == '\r')
			len--;
	}
	if (len == 0) {
		r = err_set(e, ERR_FORMAT, "PIN file '%s' is empty", path);
		goto out;
	}
	if (len > P11_PIN_MAX) {
		r = err_set(e, ERR_TOO_LARGE, "PIN file '%s' holds more than "
		    "%d bytes", path, P11_PIN_MAX);
		goto out;
	}
	if (memchr(raw, '\0', len) != NULL) {
		r = err_set(e, ERR_FORMAT, "PIN file '%s' contains a NUL byte",
		    path);
		goto out;
	}
	memcpy(pin->value, raw, len);
	pin->value[len] = '\0';
	pin->len = len;
	pin->set = 1;
	r = 0;
 out:
	crypto_wipe(raw, sizeof(raw));
	if (fd != -1)
		close(fd);
	return r;
}

int
p11_pin_resolve(const struct p11_uri *u, const struct p11_options *opt,
    const char *token_label, struct p11_pin *pin, struct err_ctx *e)
{
	char typed[P11_PIN_MAX + 1];
	int r = ERR_INTERNAL;

	p11_pin_clear(pin);
	if (u != NULL && u->pin.set) {
		*pin = u->pin;
		return 0;
	}
	if (u != NULL && u->pin_file != NULL)
		return p11_pin_read_file(u->pin_file, pin, e);
	if (opt != NULL && opt->pin_file != NULL)
		return p11_pin_read_file(opt->pin_file, pin, e);
	if (opt == NULL || opt->pin_prompt == NULL)
		return err_set(e, ERR_PIN_REQUIRED, "token '%s' needs a PIN: "
		    "give pin-value or pin-source in the URI, or a PIN file",
		    token_label);

	memset(typed, 0, sizeof(typed));
	if ((r = opt->pin_prompt(opt->pin_prompt_arg, token_label, typed,
	    sizeof(typed))) != 0) {
		if (r == ERR_PIN_REQUIRED)
			err_set(e, r, "no PIN given for token '%s'",
			    token_label);
		else
			err_set(e, r, "asking for the PIN of token '%s' "
			    "failed: %s", token_label, err_str(r));
		goto out;
	}
	if (memchr(typed, '\0', sizeof(typed)) == NULL) {
		r = err_set(e, ERR_TOO_LARGE, "the PIN for token '%s' is "
		    "longer than %d bytes", token_label, P11_PIN_MAX);
		goto out;
	}
	if (typed[0] == '\0') {
		r = err_set(e, ERR_PIN_REQUIRED, "no PIN given for token '%s'",
		    token_label);
		goto out;
	}
	r = p11_pin_set(pin, typed, e);
 out:
	crypto_wipe(typed, sizeof(typed));
	return r;
}

void
p11_uri_free(struct p11_uri *u)
{
	if (u == NULL)
		return;
	if (u->kit != NULL)
		p11_kit_uri_free(u->kit);
	free(u->module_name);
	free(u->module_path);
	free(u->object);
	free(u->pin_file);
	p11_pin_clear(&u->pin);
	crypto_wipe(u, sizeof(*u));
	free(u);
}

/* A NUL-terminated copy of an attribute value; ERR_CONFIG if it holds a
 * NUL or is longer than max. */
static int
p11_uri_attr_string(const CK_ATTRIBUTE *a, const char *what, size_t max,
    char **out, struct err_ctx *e)
{
	char *s;

	if (a->ulValueLen == 0 || a->ulValueLen > max)
		return err_set(e, ERR_CONFIG, "URI %s must be 1 to %zu bytes",
		    what, max);
	if (memchr(a->pValue, '\0', a->ulValueLen) != NULL)
		return err_set(e, ERR_CONFIG, "URI %s contains a NUL byte",
		    what);
	if ((s = malloc(a->ulValueLen + 1)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(s, a->pValue, a->ulValueLen);
	s[a->ulValueLen] = '\0';
	*out = s;
	return 0;
}

/* Moves p11-kit's copy of pin-value into u->pin and wipes the original. */
static int
p11_uri_take_pin_value(struct p11_uri *u, struct err_ctx *e)
{
	const char *v;
	char *kit_copy;
	int r;

	if ((v = p11_kit_uri_get_pin_value(u->kit)) == NULL)
		return 0;
	r = p11_pin_set(&u->pin, v, e);
	/* p11-kit frees its strings without wiping them; the string is a
	 * private heap copy, so wiping it in place is safe. */
	kit_copy = (char *)v;
	crypto_wipe(kit_copy, strlen(kit_copy));
	p11_kit_uri_set_pin_value(u->kit, NULL);
	if (r != 0)
		return err_wrap(e, ERR_CONFIG, "URI pin-value: %s",
		    err_msg(e));
	return 0;
}

/* Accepts "file:/abs/path", "file:///abs/path" or "/abs/path". */
static int
p11_uri_take_pin_source(struct p11_uri *u, struct err_ctx *e)
{
	const char *src, *path;

	if ((src = p11_kit_uri_get_pin_source(u->kit)) == NULL)
		return 0;
	if (strncmp(src, "file://", 7) == 0)
		path = src + 7;
	else if (strncmp(src, "file:", 5) == 0)
		path = src + 5;
	else
		path = src;
	if (path[0] != '/')
		return err_set(e, ERR_CONFIG, "URI pin-source must be an "
		    "absolute file path (file:/path/to/pin); devid reads no "
		    "other PIN sources");
	if (u->pin.set)
		return err_set(e, ERR_CONFIG, "URI gives both pin-value and "
		    "pin-source: keep one");
	if ((u->pin_file = strdup(path)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	return 0;
}

/* Exactly one of module-name (a p11-kit name) and module-path (an
 * absolute path). */
static int
p11_uri_take_module(struct p11_uri *u, struct err_ctx *e)
{
	const char *name, *path;

	name = p11_kit_uri_get_module_name(u->kit);
	path = p11_kit_uri_get_module_path(u->kit);
	if (name != NULL && path != NULL)
		return err_set(e, ERR_CONFIG, "PKCS#11 URI gives both "
		    "module-name and module-path: keep one");
	if (name == NULL && path == NULL)
		return err_set(e, ERR_CONFIG, "PKCS#11 URI must name the "
		    "module: add ?module-name=NAME (registered with p11-kit) "
		    "or ?module-path=/path/to/module.so");
	if (name != NULL) {
		if (name[0] == '\0' || strchr(name, '/') != NULL)
			return err_set(e, ERR_CONFIG, "URI module-name must be "
			    "a p11-kit module name, not a path (use "
			    "module-path for files)");
		if ((u->module_name = strdup(name)) == NULL)
			return err_set(e, ERR_ALLOC, "out of memory");
		return 0;
	}
	if (path[0] != '/')
		return err_set(e, ERR_CONFIG, "URI module-path '%s' must be an "
		    "absolute path", path);
	if ((u->module_path = strdup(path)) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	return 0;
}

/* The optional object label, id and type (which can only be
 * "private"). */
static int
p11_uri_take_object(struct p11_uri *u, struct err_ctx *e)
{
	CK_ATTRIBUTE *a;
	CK_OBJECT_CLASS cls;
	int r;

	if ((a = p11_kit_uri_get_attribute(u->kit, CKA_LABEL)) != NULL &&
	    (r = p11_uri_attr_string(a, "object", P11_LABEL_MAX, &u->object,
	    e)) != 0)
		return r;
	if ((a = p11_kit_uri_get_attribute(u->kit, CKA_ID)) != NULL) {
		if (a->ulValueLen == 0 || a->ulValueLen > P11_ID_MAX)
			return err_set(e, ERR_CONFIG, "URI id must be 1 to %d "
			    "bytes", P11_ID_MAX);
		memcpy(u->id, a->pValue, a->ulValueLen);
		u->id_len = a->ulValueLen;
	}
	if ((a = p11_kit_uri_get_attribute(u->kit, CKA_CLASS)) != NULL) {
		if (a->ulValueLen != sizeof(cls))
			return err_set(e, ERR_CONFIG, "URI type is malformed");
		memcpy(&cls, a->pValue, sizeof(cls));
		if (cls != CKO_PRIVATE_KEY)
			return err_set(e, ERR_CONFIG, "URI type must be "
			    "'private' (device keys are private keys)");
	}
	return 0;
}

int
p11_uri_parse(const char *text, struct p11_uri **out, struct err_ctx *e)
{
	struct p11_uri *u = NULL;
	int kr, r = ERR_INTERNAL;

	return_val_if_fail(text != NULL && out != NULL, ERR_INVALID_ARG);

	if (strnlen(text, P11_URI_TEXT_MAX + 1) > P11_URI_TEXT_MAX)
		return err_set(e, ERR_CONFIG, "PKCS#11 URI longer than %d "
		    "bytes", P11_URI_TEXT_MAX);
	if ((u = calloc(1, sizeof(*u))) == NULL ||
	    (u->kit = p11_kit_uri_new()) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	kr = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, u->kit);
	/* Take the PIN out of p11-kit's hands before anything can fail. */
	if ((r = p11_uri_take_pin_value(u, e)) != 0)
		goto out;
	if (kr != P11_KIT_URI_OK) {
		r = err_set(e, ERR_CONFIG, "not a valid PKCS#11 URI (RFC "
		    "7512): %s", p11_kit_uri_message(kr));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(u->kit)) {
		r = err_set(e, ERR_CONFIG, "PKCS#11 URI has attributes devid "
		    "does not know; it understands token, manufacturer, "
		    "model, serial, slot-*, object, id, type, module-name, "
		    "module-path, pin-value and pin-source");
		goto out;
	}
	if ((r = p11_uri_take_pin_source(u, e)) != 0 ||
	    (r = p11_uri_take_module(u, e)) != 0 ||
	    (r = p11_uri_take_object(u, e)) != 0)
		goto out;
	*out = u;
	u = NULL; /* transferred */
	r = 0;
 out:
	p11_uri_free(u);
	return r;
}

int
p11_uri_label_base(const struct p11_uri *u, const char *def, char *base,
    size_t base_max, struct err_ctx *e)
{
	const char *src = (u != NULL && u->object != NULL) ? u->object : def;
	size_t len;

	if (src == NULL)
		src = P11_LABEL_BASE_DEFAULT;
	len = strlen(src);
	if (len > 4 && (strcmp(src + len - 4, "-sig") == 0 ||
	    strcmp(src + len - 4, "-enc") == 0))
		len -= 4;
	if (len == 0)
		return err_set(e, ERR_CONFIG, "the key label base is empty");
	/* Room for the base, "-sig" and the NUL. */
	if (len + 5 > base_max)
		return err_set(e, ERR_CONFIG, "the key label base is longer "
		    "than %zu bytes", base_max - 5);
	memcpy(base, src, len);
	base[len] = '\0';
	return 0;
}
