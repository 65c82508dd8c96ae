/*
 * p11-token.c - the PKCS#11 token backend: module loading through p11-kit,
 * choice of the token, session and login, reconnection after the token
 * was removed, and the private-key operations.
 *
 * Every private-key operation runs through p11_run(): when the token says
 * it went away (p11_rv_is_loss()), the session is closed, the same token
 * (label and serial) is looked for again, a new session is opened, the
 * cached PIN logs in once, the keys are found again and checked to be the
 * same keys, and the operation is tried once more.  If the token is still
 * missing the caller gets ERR_TOKEN_NOT_PRESENT, and the next operation
 * starts with another reconnection attempt.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "p11-modconf.h"
#include "p11-private.h"

/* Tokens and slots a module may list: beyond this it is misbehaving. */
#define P11_SLOTS_MAX 256

static const struct {
	CK_RV rv;
	const char *name;
} p11_rv_names[] = {
#define P11_RV(x) { x, #x }
	P11_RV(CKR_OK),
	P11_RV(CKR_CANCEL),
	P11_RV(CKR_HOST_MEMORY),
	P11_RV(CKR_SLOT_ID_INVALID),
	P11_RV(CKR_GENERAL_ERROR),
	P11_RV(CKR_FUNCTION_FAILED),
	P11_RV(CKR_ARGUMENTS_BAD),
	P11_RV(CKR_ATTRIBUTE_READ_ONLY),
	P11_RV(CKR_ATTRIBUTE_SENSITIVE),
	P11_RV(CKR_ATTRIBUTE_TYPE_INVALID),
	P11_RV(CKR_ATTRIBUTE_VALUE_INVALID),
	P11_RV(CKR_ACTION_PROHIBITED),
	P11_RV(CKR_DATA_INVALID),
	P11_RV(CKR_DATA_LEN_RANGE),
	P11_RV(CKR_DEVICE_ERROR),
	P11_RV(CKR_DEVICE_MEMORY),
	P11_RV(CKR_DEVICE_REMOVED),
	P11_RV(CKR_ENCRYPTED_DATA_INVALID),
	P11_RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
	P11_RV(CKR_FUNCTION_CANCELED),
	P11_RV(CKR_FUNCTION_NOT_SUPPORTED),
	P11_RV(CKR_KEY_HANDLE_INVALID),
	P11_RV(CKR_KEY_SIZE_RANGE),
	P11_RV(CKR_KEY_TYPE_INCONSISTENT),
	P11_RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
	P11_RV(CKR_KEY_NOT_WRAPPABLE),
	P11_RV(CKR_KEY_UNEXTRACTABLE),
	P11_RV(CKR_MECHANISM_INVALID),
	P11_RV(CKR_MECHANISM_PARAM_INVALID),
	P11_RV(CKR_OBJECT_HANDLE_INVALID),
	P11_RV(CKR_OPERATION_ACTIVE),
	P11_RV(CKR_OPERATION_NOT_INITIALIZED),
	P11_RV(CKR_PIN_INCORRECT),
	P11_RV(CKR_PIN_INVALID),
	P11_RV(CKR_PIN_LEN_RANGE),
	P11_RV(CKR_PIN_EXPIRED),
	P11_RV(CKR_PIN_LOCKED),
	P11_RV(CKR_SESSION_CLOSED),
	P11_RV(CKR_SESSION_COUNT),
	P11_RV(CKR_SESSION_HANDLE_INVALID),
	P11_RV(CKR_SESSION_READ_ONLY),
	P11_RV(CKR_SESSION_EXISTS),
	P11_RV(CKR_TEMPLATE_INCOMPLETE),
	P11_RV(CKR_TEMPLATE_INCONSISTENT),
	P11_RV(CKR_TOKEN_NOT_PRESENT),
	P11_RV(CKR_TOKEN_NOT_RECOGNIZED),
	P11_RV(CKR_TOKEN_WRITE_PROTECTED),
	P11_RV(CKR_USER_ALREADY_LOGGED_IN),
	P11_RV(CKR_USER_NOT_LOGGED_IN),
	P11_RV(CKR_USER_PIN_NOT_INITIALIZED),
	P11_RV(CKR_USER_TYPE_INVALID),
	P11_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
	P11_RV(CKR_WRAPPED_KEY_INVALID),
	P11_RV(CKR_WRAPPING_KEY_HANDLE_INVALID),
	P11_RV(CKR_DOMAIN_PARAMS_INVALID),
	P11_RV(CKR_CURVE_NOT_SUPPORTED),
	P11_RV(CKR_BUFFER_TOO_SMALL),
	P11_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
	P11_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
	P11_RV(CKR_FUNCTION_REJECTED),
	P11_RV(P11_RV_BAD_OUTPUT),
#undef P11_RV
};

const char *
p11_rv_name(unsigned long rv)
{
	size_t i;

	for (i = 0; i < sizeof(p11_rv_names) / sizeof(p11_rv_names[0]); i++)
		if (p11_rv_names[i].rv == rv)
			return p11_rv_names[i].name;
	return NULL;
}

const char *
p11_rv_text(CK_RV rv, char *buf, size_t buf_len)
{
	const char *name;

	if ((name = p11_rv_name(rv)) != NULL)
		return name;
	snprintf(buf, buf_len, "CKR 0x%08lx", (unsigned long)rv);
	return buf;
}

int
p11_rv_is_loss(CK_RV rv)
{
	return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	    rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED;
}

int
p11_rv_err(CK_RV rv)
{
	if (p11_rv_is_loss(rv))
		return ERR_TOKEN_NOT_PRESENT;
	switch (rv) {
	case CKR_OK:
		return 0;
	case CKR_HOST_MEMORY:
		return ERR_ALLOC;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return ERR_PIN_INCORRECT;
	case CKR_PIN_LOCKED:
	case CKR_PIN_EXPIRED:
		return ERR_PIN_LOCKED;
	case CKR_USER_NOT_LOGGED_IN:
		return ERR_PIN_REQUIRED;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_FUNCTION_NOT_SUPPORTED:
	case CKR_CURVE_NOT_SUPPORTED:
	case CKR_KEY_SIZE_RANGE:
		return ERR_UNSUPPORTED;
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
		return ERR_DECRYPT;
	case CKR_KEY_FUNCTION_NOT_PERMITTED:
	case CKR_ACTION_PROHIBITED:
		return ERR_DENIED;
	default:
		return ERR_TOKEN;
	}
}

static void p11_session_drop(struct p11_token *p);

int
p11_fail(struct p11_token *p, CK_RV rv, struct err_ctx *e, const char *what)
{
	char num[32];
	const char *name = p11_rv_text(rv, num, sizeof(num));
	int code = p11_rv_err(rv);

	if (code == ERR_TOKEN_NOT_PRESENT) {
		/* The session is gone: the next operation reconnects. */
		p11_session_drop(p);
		return err_set(e, code, "token '%s' is not present (%s during "
		    "%s): insert it; devid opens a new session on the next "
		    "operation", p->token_label, name, what);
	}
	if (code == 0)
		code = ERR_TOKEN;
	return err_set(e, code, "token '%s': %s failed (%s)", p->token_label,
	    what, name);
}

int
p11_no_enc_key(struct p11_token *p, struct err_ctx *e, const char *what)
{
	return err_set(e, ERR_UNSUPPORTED, "token '%s' is used for its "
	    "signing key only (sig_only): %s needs the encryption key, "
	    "which devid neither creates nor opens in this mode",
	    p->token_label, what);
}

/* Copies a space-padded PKCS#11 string into a trimmed C string. */
static void
p11_trim_copy(char *out, size_t out_max, const CK_UTF8CHAR *in, size_t len)
{
	while (len > 0 && (in[len - 1] == ' ' || in[len - 1] == '\0'))
		len--;
	if (len >= out_max)
		len = out_max - 1;
	memcpy(out, in, len);
	out[len] = '\0';
}

/* --- module --- */

/*
 * Loads and initialises the module the URI names: module-path loads that
 * file; module-name loads the one library its p11-kit registration names
 * (p11_modconf_resolve), never every registered module.  On failure
 * p->module is left for p11_token_close().
 */
static int
p11_module_load(struct p11_token *p, struct err_ctx *e)
{
	const struct p11_uri *u = p->uri;
	char resolved[1024];
	const char *path, *msg;
	CK_INFO info;
	CK_RV rv;
	int r;

	if (u->module_path != NULL) {
		snprintf(p->module_desc, sizeof(p->module_desc), "'%s'",
		    u->module_path);
		path = u->module_path;
	} else {
		snprintf(p->module_desc, sizeof(p->module_desc), "'%s'",
		    u->module_name);
		if ((r = p11_modconf_resolve(u->module_name, NULL, resolved,
		    sizeof(resolved), e)) != 0)
			return r;
		path = resolved;
	}
	if ((p->module = p11_kit_module_load(path, 0)) == NULL) {
		msg = p11_kit_message();
		return err_set(e, ERR_NOT_FOUND, "cannot load PKCS#11 module "
		    "%s from %s: %s", p->module_desc, path,
		    msg != NULL ? msg : "unknown reason");
	}

	if ((rv = p11_kit_module_initialize(p->module)) != CKR_OK) {
		msg = p11_kit_message();
		return err_set(e, ERR_TOKEN, "PKCS#11 module %s failed to "
		    "initialise (%s): %s", p->module_desc,
		    p11_rv_name(rv) != NULL ? p11_rv_name(rv) : "error",
		    msg != NULL ? msg : "no details");
	}
	p->module_initialized = 1;

	if ((rv = p->module->C_GetInfo(&info)) != CKR_OK)
		return err_set(e, ERR_TOKEN, "PKCS#11 module %s: C_GetInfo "
		    "failed", p->module_desc);
	if (!p11_kit_uri_match_module_info(u->kit, &info))
		return err_set(e, ERR_CONFIG, "PKCS#11 module %s does not "
		    "match the URI's library-* attributes", p->module_desc);
	return 0;
}

/* --- token and session --- */

/* True when ti is the token chosen before (label, serial, maker, model). */
static int
p11_same_token(const CK_TOKEN_INFO *a, const CK_TOKEN_INFO *b)
{
	return memcmp(a->label, b->label, sizeof(a->label)) == 0 &&
	    memcmp(a->serialNumber, b->serialNumber,
	    sizeof(a->serialNumber)) == 0 &&
	    memcmp(a->manufacturerID, b->manufacturerID,
	    sizeof(a->manufacturerID)) == 0 &&
	    memcmp(a->model, b->model, sizeof(a->model)) == 0;
}

/*
 * The slots with a token in *slots (caller frees; NULL when there are
 * none) and their number in *n.  A token inserted between the two calls
 * of C_GetSlotList makes the list longer: it asks again a few times.
 */
static int
p11_slot_list(struct p11_token *p, CK_SLOT_ID **out, CK_ULONG *n,
    struct err_ctx *e)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG i;
	CK_RV rv;
	int r = ERR_INTERNAL;

	for (i = 0; i < 3; i++) {
		free(slots);
		slots = NULL;
		if ((rv = p->module->C_GetSlotList(CK_TRUE, NULL, n)) !=
		    CKR_OK) {
			r = p11_fail(p, rv, e, "listing slots");
			goto out;
		}
		if (*n > P11_SLOTS_MAX) {
			r = err_set(e, ERR_TOKEN, "PKCS#11 module %s lists %lu "
			    "slots", p->module_desc, (unsigned long)*n);
			goto out;
		}
		if (*n == 0)
			break;
		if ((slots = calloc(*n, sizeof(*slots))) == NULL) {
			r = err_set(e, ERR_ALLOC, "out of memory");
			goto out;
		}
		rv = p->module->C_GetSlotList(CK_TRUE, slots, n);
		if (rv == CKR_OK)
			break;
		if (rv != CKR_BUFFER_TOO_SMALL) {
			r = p11_fail(p, rv, e, "listing slots");
			goto out;
		}
	}
	if (rv != CKR_OK) {
		r = p11_fail(p, rv, e, "listing slots");
		goto out;
	}
	*out = slots;
	slots = NULL; /* transferred */
	r = 0;
 out:
	free(slots);
	return r;
}

/*
 * True when slot holds an initialised token that is the one chosen before
 * (again = 1) or that matches the URI, its slot attributes and its slot
 * id (want_slot, (CK_SLOT_ID)-1 for any); its token info is then in *ti.
 */
static int
p11_slot_matches(struct p11_token *p, CK_SLOT_ID slot, int again,
    CK_SLOT_ID want_slot, CK_TOKEN_INFO *ti)
{
	CK_SLOT_INFO si;

	if (p->module->C_GetTokenInfo(slot, ti) != CKR_OK ||
	    (ti->flags & CKF_TOKEN_INITIALIZED) == 0)
		return 0;
	if (again)
		return p11_same_token(ti, &p->tinfo);
	if (p->module->C_GetSlotInfo(slot, &si) != CKR_OK)
		return 0;
	return p11_kit_uri_match_token_info(p->uri->kit, ti) &&
	    p11_kit_uri_match_slot_info(p->uri->kit, &si) &&
	    (want_slot == (CK_SLOT_ID)-1 || want_slot == slot);
}

/*
 * Finds the slot of the token: the one initialised token that matches the
 * URI, or (again = 1) the token chosen before.  Sets p->slot and p->tinfo.
 * ERR_TOKEN_NOT_PRESENT when none is there, ERR_CONFIG when the URI
 * matches more than one.
 */
static int
p11_find_token(struct p11_token *p, int again, struct err_ctx *e)
{
	CK_SLOT_ID *slots = NULL, want_slot;
	CK_TOKEN_INFO ti, found_ti;
	CK_ULONG n = 0, i, found = 0;
	char first[33] = "", second[33] = "";
	int r = ERR_INTERNAL;

	if ((r = p11_slot_list(p, &slots, &n, e)) != 0)
		goto out;
	want_slot = p11_kit_uri_get_slot_id(p->uri->kit);
	memset(&found_ti, 0, sizeof(found_ti));
	for (i = 0; i < n; i++) {
		if (!p11_slot_matches(p, slots[i], again, want_slot, &ti))
			continue;
		if (found == 0) {
			p->slot = slots[i];
			found_ti = ti;
			p11_trim_copy(first, sizeof(first), ti.label,
			    sizeof(ti.label));
		} else if (found == 1) {
			p11_trim_copy(second, sizeof(second), ti.label,
			    sizeof(ti.label));
		}
		found++;
	}
	if (found == 0) {
		if (again)
			r = err_set(e, ERR_TOKEN_NOT_PRESENT, "token '%s' is "
			    "not present: insert it; devid opens a new "
			    "session on the next operation", p->token_label);
		else
			r = err_set(e, ERR_TOKEN_NOT_PRESENT, "no token "
			    "matching the URI is present in PKCS#11 module "
			    "%s: insert it, or check token= and serial=",
			    p->module_desc);
		goto out;
	}
	if (found > 1) {
		r = err_set(e, ERR_CONFIG, "the URI matches %lu tokens "
		    "('%s', '%s'%s): add token= or serial= to choose one",
		    (unsigned long)found, first, second,
		    found > 2 ? ", ..." : "");
		goto out;
	}
	p->tinfo = found_ti;
	p11_trim_copy(p->token_label, sizeof(p->token_label),
	    found_ti.label, sizeof(found_ti.label));
	r = 0;
 out:
	free(slots);
	return r;
}

/* Closes the session if there is one; the token may already be gone. */
static void
p11_session_drop(struct p11_token *p)
{
	if (p->have_session)
		(void)p->module->C_CloseSession(p->session);
	p->have_session = 0;
	p->logged_in = 0;
}

/* Opens a read-write session on p->slot (read-only if the token is
 * write-protected: using keys needs no writes). */
static int
p11_session_open(struct p11_token *p, struct err_ctx *e)
{
	CK_RV rv;

	rv = p->module->C_OpenSession(p->slot,
	    CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &p->session);
	if (rv == CKR_TOKEN_WRITE_PROTECTED)
		rv = p->module->C_OpenSession(p->slot, CKF_SERIAL_SESSION,
		    NULL, NULL, &p->session);
	if (rv != CKR_OK)
		return p11_fail(p, rv, e, "opening a session");
	p->have_session = 1;
	p->logged_in = 0;
	return 0;
}

/* "few tries left" etc. from the token's PIN flags, read just now. */
static const char *
p11_tries_text(struct p11_token *p, CK_FLAGS *flags_out)
{
	CK_TOKEN_INFO ti;

	*flags_out = 0;
	if (p->module->C_GetTokenInfo(p->slot, &ti) != CKR_OK)
		return "the token did not say how many tries are left";
	*flags_out = ti.flags;
	if (ti.flags & CKF_USER_PIN_LOCKED)
		return "the PIN is now locked: unblock it with the SO PIN";
	if (ti.flags & CKF_USER_PIN_FINAL_TRY)
		return "final try left";
	if (ti.flags & CKF_USER_PIN_COUNT_LOW)
		return "few tries left";
	return "the token does not say how many tries are left";
}

int
p11_login(struct p11_token *p, struct err_ctx *e)
{
	CK_FLAGS flags;
	CK_RV rv;
	char num[32];
	const char *tries;
	int r = ERR_INTERNAL;

	if (p->logged_in || (p->tinfo.flags & CKF_LOGIN_REQUIRED) == 0)
		return 0;
	if (p->pin_refused)
		return err_set(e, ERR_PIN_INCORRECT, "token '%s' rejected the "
		    "PIN before; devid does not try it again: open the token "
		    "again with the right PIN", p->token_label);

	if (p->tinfo.flags & CKF_PROTECTED_AUTHENTICATION_PATH) {
		/* The PIN is entered on the reader's own pad. */
		p->base.stats.logins++;
		rv = p->module->C_Login(p->session, CKU_USER, NULL, 0);
	} else {
		if (!p->pin.set && (r = p11_pin_resolve(p->uri, &p->opt,
		    p->token_label, &p->pin, e)) != 0)
			return r;
		p->base.stats.logins++;
		rv = p->module->C_Login(p->session, CKU_USER,
		    (CK_UTF8CHAR_PTR)p->pin.value, (CK_ULONG)p->pin.len);
	}
	if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
		p->logged_in = 1;
		return 0;
	}
	if (p11_rv_is_loss(rv))
		return p11_fail(p, rv, e, "logging in");

	/* Refused: forget the PIN and never send it again. */
	p11_pin_clear(&p->pin);
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID ||
	    rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_LOCKED ||
	    rv == CKR_PIN_EXPIRED) {
		p->pin_refused = 1;
		p11_pin_clear(&p->uri->pin);
	}
	tries = p11_tries_text(p, &flags);
	r = p11_rv_err(rv);
	if (rv == CKR_PIN_INCORRECT && (flags & CKF_USER_PIN_LOCKED))
		r = ERR_PIN_LOCKED;
	if (r == ERR_PIN_INCORRECT || r == ERR_PIN_LOCKED)
		return err_set(e, r, "token '%s' rejected the PIN (%s): %s",
		    p->token_label, p11_rv_text(rv, num, sizeof(num)), tries);
	return err_set(e, r == 0 ? ERR_TOKEN : r, "token '%s': logging in "
	    "failed (%s)", p->token_label, p11_rv_text(rv, num, sizeof(num)));
}

/*
 * Opens a new session on the same token after a loss and logs in once.
 * Leaves no session behind on failure.
 */
static int
p11_reconnect(struct p11_token *p, struct err_ctx *e)
{
	int r = ERR_INTERNAL;

	p11_session_drop(p);
	if ((r = p11_find_token(p, 1, e)) != 0 ||
	    (r = p11_session_open(p, e)) != 0)
		goto out;
	if ((r = p11_login(p, e)) != 0)
		goto out;
	if (p->keys_ready && (r = p11_keys_refind(p, e)) != 0)
		goto out;
	p->base.stats.reconnects++;
	r = 0;
 out:
	if (r != 0)
		p11_session_drop(p);
	return r;
}

/* One attempt at an operation; returns the token's CK_RV. */
typedef CK_RV (*p11_op_fn)(struct p11_token *p, void *arg);

/*
 * Runs fn with a session that is logged in, reconnecting once when the
 * token went away or left an operation open in the session, and logging
 * in once when the token forgot the login.
 * Returns 0 with the operation's last return value in *rv, or an ERR_*
 * code (with e set) when no session could be had.
 */
static int
p11_run(struct p11_token *p, p11_op_fn fn, void *arg, CK_RV *rv,
    struct err_ctx *e)
{
	int r;

	if ((r = p11_ensure_session(p, e)) != 0)
		return r;
	*rv = fn(p, arg);
	if (p11_rv_is_loss(*rv)) {
		if ((r = p11_reconnect(p, e)) != 0)
			return r;
		*rv = fn(p, arg);
	} else if (*rv == CKR_USER_NOT_LOGGED_IN) {
		p->logged_in = 0;
		if ((r = p11_login(p, e)) != 0)
			return r;
		*rv = fn(p, arg);
	} else if (*rv == CKR_OPERATION_ACTIVE) {
		/* Some modules (tpm2-pkcs11 1.9 after a failed C_Decrypt)
		 * leave an operation open; a new session clears it. */
		if ((r = p11_reconnect(p, e)) != 0)
			return r;
		*rv = fn(p, arg);
	}
	if (p11_rv_is_loss(*rv))
		p11_session_drop(p);
	return 0;
}

int
p11_ensure_session(struct p11_token *p, struct err_ctx *e)
{
	int r;

	if (p->have_session) {
		r = p11_login(p, e);
		/* Lost while idle: p11_fail() dropped the session. */
		if (r != ERR_TOKEN_NOT_PRESENT || p->have_session)
			return r;
		err_clear(e);
	}
	return p11_reconnect(p, e);
}

/* --- operations --- */

/*
 * For keys with CKA_ALWAYS_AUTHENTICATE (a PIV card's signature key, for
 * one): the PIN once more, right after the operation's Init.  Uses the
 * cached PIN only; a refusal ends its use like any refused PIN.
 */
static CK_RV
p11_context_login(struct p11_token *p, const struct p11_key *k)
{
	CK_RV rv;

	if (!k->always_auth)
		return CKR_OK;
	if (p->tinfo.flags & CKF_PROTECTED_AUTHENTICATION_PATH)
		return p->module->C_Login(p->session, CKU_CONTEXT_SPECIFIC,
		    NULL, 0);
	if (!p->pin.set)
		return CKR_USER_NOT_LOGGED_IN;
	p->base.stats.logins++;
	rv = p->module->C_Login(p->session, CKU_CONTEXT_SPECIFIC,
	    (CK_UTF8CHAR_PTR)p->pin.value, (CK_ULONG)p->pin.len);
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ||
	    rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
	    rv == CKR_PIN_EXPIRED) {
		p11_pin_clear(&p->pin);
		p11_pin_clear(&p->uri->pin);
		p->pin_refused = 1;
	}
	return rv;
}

/* ERR_INVALID_ARG until open_keys or create_keys has succeeded. */
static int
p11_need_keys(struct p11_token *p, struct err_ctx *e)
{
	if (!p->keys_ready)
		return err_set(e, ERR_INVALID_ARG, "token '%s': open or "
		    "create the device keys first", p->token_label);
	return 0;
}

struct p11_sign_args {
	uint8_t digest[CRYPTO_SHA256_LEN];
	uint8_t sig[CRYPTO_ECDSA_SIG_LEN];
};

/* One ECDSA signature over a->digest into a->sig (64 bytes, r||s). */
static CK_RV
p11_do_sign(struct p11_token *p, void *arg)
{
	struct p11_sign_args *a = arg;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ULONG len = sizeof(a->sig);
	CK_RV rv;

	if ((rv = p->module->C_SignInit(p->session, &mech, p->sig.priv)) !=
	    CKR_OK ||
	    (rv = p11_context_login(p, &p->sig)) != CKR_OK)
		return rv;
	if ((rv = p->module->C_Sign(p->session, a->digest,
	    sizeof(a->digest), a->sig, &len)) != CKR_OK)
		return rv;
	return len == sizeof(a->sig) ? CKR_OK : P11_RV_BAD_OUTPUT;
}

/*
 * token_ops.sign_digest: CKM_ECDSA over the 32-byte digest with the signing
 * key.  PKCS#11 returns r||s already, as the protocol wants.  sig is
 * written only on success.
 */
static int
p11_sign_digest(struct token *t, const uint8_t digest[32], uint8_t sig[64],
    struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	struct p11_sign_args a;
	CK_RV rv = CKR_OK;
	char num[32];
	int r = ERR_INTERNAL;

	if ((r = p11_need_keys(p, e)) != 0)
		return r;
	memset(&a, 0, sizeof(a));
	memcpy(a.digest, digest, sizeof(a.digest));
	if ((r = p11_run(p, p11_do_sign, &a, &rv, e)) != 0)
		goto out;
	if (rv != CKR_OK) {
		if (p11_rv_is_loss(rv))
			r = p11_fail(p, rv, e, "signing");
		else
			r = err_set(e, p11_rv_err(rv), "token '%s': signing "
			    "with key '%s' failed (%s)", p->token_label,
			    p->sig.label, p11_rv_text(rv, num, sizeof(num)));
		goto out;
	}
	memcpy(sig, a.sig, sizeof(a.sig));
	t->stats.signs++;
	r = 0;
 out:
	crypto_wipe(&a, sizeof(a));
	return r;
}

struct p11_ecdh_args {
	uint8_t peer[CRYPTO_P256_POINT_LEN];
	uint8_t value[64];
	CK_ULONG value_len;
};

/*
 * One CKM_ECDH1_DERIVE (CKD_NULL, raw peer point): derives a 32-byte
 * generic secret as a session object, reads it into a->value and destroys
 * the object whatever happened.
 */
static CK_RV
p11_do_ecdh(struct p11_token *p, void *arg)
{
	struct p11_ecdh_args *a = arg;
	CK_ECDH1_DERIVE_PARAMS params;
	CK_MECHANISM mech;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_ULONG value_len = 32;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &value_len, sizeof(value_len) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_SENSITIVE, &no, sizeof(no) },
		{ CKA_EXTRACTABLE, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE get = { CKA_VALUE, a->value, sizeof(a->value) };
	CK_OBJECT_HANDLE secret = CK_INVALID_HANDLE;
	CK_RV rv;

	memset(&params, 0, sizeof(params));
	params.kdf = CKD_NULL;
	params.pPublicData = a->peer;
	params.ulPublicDataLen = sizeof(a->peer);
	mech.mechanism = CKM_ECDH1_DERIVE;
	mech.pParameter = &params;
	mech.ulParameterLen = sizeof(params);

	rv = p->module->C_DeriveKey(p->session, &mech, p->enc.priv, tmpl,
	    sizeof(tmpl) / sizeof(tmpl[0]), &secret);
	if (rv != CKR_OK)
		return rv;
	rv = p->module->C_GetAttributeValue(p->session, secret, &get, 1);
	a->value_len = get.ulValueLen;
	/* The derived secret must not outlive this call, whatever happened. */
	(void)p->module->C_DestroyObject(p->session, secret);
	if (rv == CKR_OK && a->value_len != 32)
		rv = P11_RV_BAD_OUTPUT;
	return rv;
}

/*
 * token_ops.ecdh: the shared x-coordinate of the encryption key and peer,
 * computed in the token.  The peer point is checked in software first.
 * ERR_UNSUPPORTED for an RSA key or with opt.sig_only (no encryption key).
 * out (a secret) is written only on success; every copy here is wiped.
 */
static int
p11_ecdh(struct token *t, const uint8_t peer[65], uint8_t out[32],
    struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	struct p11_ecdh_args a;
	EVP_PKEY *check = NULL;
	CK_RV rv = CKR_OK;
	char num[32];
	int r = ERR_INTERNAL;

	if (p->opt.sig_only)
		return p11_no_enc_key(p, e, "ECDH");
	if ((r = p11_need_keys(p, e)) != 0)
		return r;
	if (p->enc.type != CKK_EC)
		return err_set(e, ERR_UNSUPPORTED, "token '%s': the encryption "
		    "key '%s' is RSA; ECDH needs hpke-p256", p->token_label,
		    p->enc.label);
	/* Do not rely on the token to reject points off the curve. */
	if (crypto_ec_point_to_pkey(peer, CRYPTO_P256_POINT_LEN, &check) != 0)
		return err_set(e, ERR_FORMAT, "ECDH peer point is not a valid "
		    "P-256 point");
	EVP_PKEY_free(check);

	memset(&a, 0, sizeof(a));
	memcpy(a.peer, peer, sizeof(a.peer));
	if ((r = p11_run(p, p11_do_ecdh, &a, &rv, e)) != 0)
		goto out;
	if (rv != CKR_OK) {
		if (p11_rv_is_loss(rv))
			r = p11_fail(p, rv, e, "ECDH");
		else
			r = err_set(e, p11_rv_err(rv), "token '%s': ECDH with "
			    "key '%s' failed (%s)", p->token_label,
			    p->enc.label, p11_rv_text(rv, num, sizeof(num)));
		goto out;
	}
	memcpy(out, a.value, 32);
	t->stats.ecdhs++;
	r = 0;
 out:
	crypto_wipe(&a, sizeof(a));
	return r;
}

/* RSA moduli devid accepts: up to 4096 bits. */
#define P11_RSA_MAX_BYTES 512

struct p11_decrypt_args {
	uint8_t ct[P11_RSA_MAX_BYTES];
	CK_ULONG ct_len;
	uint8_t pt[P11_RSA_MAX_BYTES];
	CK_ULONG pt_len;
};

/* One CKM_RSA_PKCS_OAEP decryption (SHA-256, MGF1-SHA-256, no label). */
static CK_RV
p11_do_decrypt(struct p11_token *p, void *arg)
{
	struct p11_decrypt_args *a = arg;
	CK_RSA_PKCS_OAEP_PARAMS params;
	CK_MECHANISM mech;
	CK_RV rv;

	memset(&params, 0, sizeof(params));
	params.hashAlg = CKM_SHA256;
	params.mgf = CKG_MGF1_SHA256;
	params.source = CKZ_DATA_SPECIFIED;
	params.pSourceData = NULL;
	params.ulSourceDataLen = 0;
	mech.mechanism = CKM_RSA_PKCS_OAEP;
	mech.pParameter = &params;
	mech.ulParameterLen = sizeof(params);

	if ((rv = p->module->C_DecryptInit(p->session, &mech, p->enc.priv)) !=
	    CKR_OK ||
	    (rv = p11_context_login(p, &p->enc)) != CKR_OK)
		return rv;
	/* Room for a whole modulus: no CKR_BUFFER_TOO_SMALL, which would
	 * leave the operation active. */
	a->pt_len = sizeof(a->pt);
	return p->module->C_Decrypt(p->session, a->ct, a->ct_len, a->pt,
	    &a->pt_len);
}

/*
 * token_ops.rsa_decrypt: RSA-OAEP-SHA256 in the token.  A ciphertext that
 * is not one modulus long, or that the token rejects, is ERR_DECRYPT; a
 * token without OAEP-SHA256, an EC key or opt.sig_only (no encryption
 * key) is ERR_UNSUPPORTED.  out (a secret) is written only on success;
 * the working copy is wiped.
 */
static int
p11_rsa_decrypt(struct token *t, const uint8_t *ct, size_t ct_len,
    uint8_t *out, size_t out_max, size_t *out_len, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	struct p11_decrypt_args *a = NULL;
	CK_RV rv = CKR_OK;
	char num[32];
	int r = ERR_INTERNAL;

	if (p->opt.sig_only)
		return p11_no_enc_key(p, e, "RSA-OAEP decryption");
	if ((r = p11_need_keys(p, e)) != 0)
		return r;
	if (p->enc.type != CKK_RSA)
		return err_set(e, ERR_UNSUPPORTED, "token '%s': the encryption "
		    "key '%s' is EC; RSA-OAEP needs rsa-oaep-sha256",
		    p->token_label, p->enc.label);
	if (ct_len != p->enc.rsa_bytes)
		return err_set(e, ERR_DECRYPT, "RSA-OAEP ciphertext is %zu "
		    "bytes, the key's modulus %zu", ct_len, p->enc.rsa_bytes);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	memcpy(a->ct, ct, ct_len);
	a->ct_len = (CK_ULONG)ct_len;
	if ((r = p11_run(p, p11_do_decrypt, a, &rv, e)) != 0)
		goto out;
	switch (rv) {
	case CKR_OK:
		break;
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_ARGUMENTS_BAD:
		/* SoftHSM 2.6 answers OAEP-SHA256 with CKR_ARGUMENTS_BAD. */
		r = err_set(e, ERR_UNSUPPORTED, "token '%s' does not do "
		    "RSA-OAEP with SHA-256 and MGF1-SHA-256 (%s): it cannot "
		    "use rsa-oaep-sha256 keys", p->token_label,
		    p11_rv_text(rv, num, sizeof(num)));
		goto out;
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
	case CKR_DATA_INVALID:
	case CKR_DATA_LEN_RANGE:
	case CKR_GENERAL_ERROR:
	case CKR_FUNCTION_FAILED:
		/* Modules report bad OAEP padding in all these ways. */
		r = err_set(e, ERR_DECRYPT, "token '%s': RSA-OAEP decryption "
		    "with key '%s' failed (%s)", p->token_label, p->enc.label,
		    p11_rv_text(rv, num, sizeof(num)));
		goto out;
	default:
		if (p11_rv_is_loss(rv))
			r = p11_fail(p, rv, e, "RSA-OAEP decryption");
		else
			r = err_set(e, p11_rv_err(rv), "token '%s': RSA-OAEP "
			    "decryption with key '%s' failed (%s)",
			    p->token_label, p->enc.label,
			    p11_rv_text(rv, num, sizeof(num)));
		goto out;
	}
	if (a->pt_len > out_max) {
		r = err_set(e, ERR_TOO_LARGE, "RSA-OAEP plaintext of %lu bytes "
		    "does not fit in %zu", (unsigned long)a->pt_len, out_max);
		goto out;
	}
	memcpy(out, a->pt, a->pt_len);
	*out_len = a->pt_len;
	t->stats.decrypts++;
	r = 0;
 out:
	if (a != NULL) {
		crypto_wipe(a, sizeof(*a));
		free(a);
	}
	return r;
}

/* Formats an object URI for one key (no PIN: the URI never holds one). */
static int
p11_key_uri(struct p11_token *p, const struct p11_key *k, char *out,
    size_t out_max, struct err_ctx *e)
{
	P11KitUri *kit = NULL;
	CK_TOKEN_INFO *ti;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE attrs[3];
	CK_ULONG n = 0;
	char *text = NULL;
	int r = ERR_INTERNAL;

	if ((kit = p11_kit_uri_new()) == NULL) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	ti = p11_kit_uri_get_token_info(kit);
	memcpy(ti->label, p->tinfo.label, sizeof(ti->label));
	memcpy(ti->serialNumber, p->tinfo.serialNumber,
	    sizeof(ti->serialNumber));
	attrs[n].type = CKA_CLASS;
	attrs[n].pValue = &cls;
	attrs[n++].ulValueLen = sizeof(cls);
	attrs[n].type = CKA_LABEL;
	attrs[n].pValue = (void *)k->label;
	attrs[n++].ulValueLen = strlen(k->label);
	if (k->id_len > 0) {
		attrs[n].type = CKA_ID;
		attrs[n].pValue = (void *)k->id;
		attrs[n++].ulValueLen = k->id_len;
	}
	if (p11_kit_uri_set_attributes(kit, attrs, n) != P11_KIT_URI_OK) {
		r = err_set(e, ERR_ALLOC, "out of memory");
		goto out;
	}
	if (p->uri->module_name != NULL)
		p11_kit_uri_set_module_name(kit, p->uri->module_name);
	else
		p11_kit_uri_set_module_path(kit, p->uri->module_path);
	if (p11_kit_uri_format(kit, P11_KIT_URI_FOR_ANY, &text) !=
	    P11_KIT_URI_OK) {
		r = err_set(e, ERR_INTERNAL, "cannot format the URI of key "
		    "'%s'", k->label);
		goto out;
	}
	if (strlen(text) >= out_max) {
		r = err_set(e, ERR_TOO_LARGE, "the URI of key '%s' is longer "
		    "than %zu bytes", k->label, out_max - 1);
		goto out;
	}
	memcpy(out, text, strlen(text) + 1);
	r = 0;
 out:
	free(text);
	if (kit != NULL)
		p11_kit_uri_free(kit);
	return r;
}

/*
 * token_ops.describe: labels, key URIs and the checked attributes.  With
 * opt.sig_only, enc_ref and enc_attrs are empty and enc_alg is
 * TOKEN_ENC_NONE: there is no encryption key.
 */
static int
p11_describe(struct token *t, struct token_desc *d, struct err_ctx *e)
{
	struct p11_token *p = (struct p11_token *)t;
	int r;

	snprintf(d->backend, sizeof(d->backend), "pkcs11");
	snprintf(d->token, sizeof(d->token), "%s", p->token_label);
	d->enc_alg = t->enc_alg;
	d->parent[0] = '\0';
	d->enc_ref[0] = '\0';
	d->enc_attrs[0] = '\0';
	if (!p->keys_ready)
		return 0;
	if ((r = p11_key_uri(p, &p->sig, d->sig_ref, sizeof(d->sig_ref),
	    e)) != 0)
		return r;
	snprintf(d->sig_attrs, sizeof(d->sig_attrs), "%s", p->sig.attrs);
	if (p->opt.sig_only)
		return 0;
	if ((r = p11_key_uri(p, &p->enc, d->enc_ref, sizeof(d->enc_ref),
	    e)) != 0)
		return r;
	snprintf(d->enc_attrs, sizeof(d->enc_attrs), "%s", p->enc.attrs);
	return 0;
}

/*
 * token_ops.close: closes the session (which ends the login), finalises and
 * releases the module, wipes the cached PIN and frees t.  Works on a
 * half-built token too (p11_token_new's failure path).
 */
static void
p11_close(struct token *t)
{
	struct p11_token *p = (struct p11_token *)t;

	if (p == NULL)
		return;
	p11_key_clear(&p->sig);
	p11_key_clear(&p->enc);
	if (p->module != NULL) {
		/* Closing our only session also ends the login. */
		p11_session_drop(p);
		if (p->module_initialized)
			(void)p11_kit_module_finalize(p->module);
		p11_kit_module_release(p->module);
	}
	p11_uri_free(p->uri);
	free(p->opt_pin_file);
	p11_pin_clear(&p->pin);
	crypto_wipe(p, sizeof(*p));
	free(p);
}

static const struct token_ops p11_token_ops = {
	.name = "pkcs11",
	.create_keys = p11_create_keys,
	.open_keys = p11_open_keys,
	.public_key = p11_public_key,
	.sign_digest = p11_sign_digest,
	.ecdh = p11_ecdh,
	.rsa_decrypt = p11_rsa_decrypt,
	.describe = p11_describe,
	.close = p11_close,
};

int
p11_token_new(const char *uri, const struct p11_options *opt,
    struct token **out, struct err_ctx *e)
{
	struct p11_token *p = NULL;
	int r = ERR_INTERNAL;

	return_val_if_fail(uri != NULL && out != NULL, ERR_INVALID_ARG);

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return err_set(e, ERR_ALLOC, "out of memory");
	p->base.ops = &p11_token_ops;
	p->sig.priv = p->enc.priv = CK_INVALID_HANDLE;
	snprintf(p->token_label, sizeof(p->token_label), "(unknown)");
	if (opt != NULL) {
		p->opt = *opt;
		if (opt->pin_file != NULL &&
		    (p->opt_pin_file = strdup(opt->pin_file)) == NULL) {
			r = err_set(e, ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	/* Keep no pointer into the caller's options. */
	p->opt.pin_file = p->opt_pin_file;
	p->opt.label_base = NULL;

	if ((r = p11_uri_parse(uri, &p->uri, e)) != 0 ||
	    (r = p11_uri_label_base(p->uri, opt != NULL ? opt->label_base :
	    NULL, p->label_base, sizeof(p->label_base), e)) != 0)
		goto out;
	if ((r = p11_module_load(p, e)) != 0 ||
	    (r = p11_find_token(p, 0, e)) != 0 ||
	    (r = p11_session_open(p, e)) != 0)
		goto out;

	*out = &p->base;
	p = NULL; /* transferred */
	r = 0;
 out:
	if (p != NULL)
		p11_close(&p->base);
	return r;
}
