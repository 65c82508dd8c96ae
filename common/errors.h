/*
 * errors.h - devid error codes and the error context.
 *
 * Every fallible function in devid returns an int: 0 on success or one of
 * the negative ERR_* codes below.  Where a user needs to know more than the
 * code (which object, which token, what to do next) the function also takes
 * a struct err_ctx and records a human sentence in it.
 */
#ifndef DEVID_ERRORS_H
#define DEVID_ERRORS_H

#include <stddef.h>

enum devid_err {
	ERR_OK = 0,
	ERR_INTERNAL = -1,         /* a bug or an unexpected library failure */
	ERR_ALLOC = -2,            /* out of memory */
	ERR_INVALID_ARG = -3,      /* API misuse by the caller */
	ERR_TOO_LARGE = -4,        /* a size limit was exceeded */
	ERR_TRUNCATED = -5,        /* input ended early */
	ERR_FORMAT = -6,           /* malformed input */
	ERR_CRYPTO = -7,           /* a cryptographic library operation failed */
	ERR_SIGNATURE = -8,        /* a signature did not verify */
	ERR_DECRYPT = -9,          /* authenticated decryption failed */
	ERR_REJECTED = -10,        /* message rejected (uniform result) */
	ERR_CHAIN = -11,           /* account-log hash chain broken */
	ERR_ROLLBACK = -12,        /* signed head older than one already seen */
	ERR_FORK = -13,            /* two different hashes at one seq */
	ERR_WRONG_KEY = -14,       /* signed by a key other than the pinned one */
	ERR_STALE = -15,           /* signed head too old */
	ERR_REPLAY = -16,          /* seen before */
	ERR_NOT_FOUND = -17,       /* no such object */
	ERR_EXISTS = -18,          /* object already exists */
	ERR_IO = -19,              /* file or socket I/O failed */
	ERR_NETWORK = -20,         /* a remote peer could not be reached */
	ERR_UNSUPPORTED = -21,     /* algorithm or mechanism not supported */
	ERR_TOKEN = -22,           /* token operation failed */
	ERR_TOKEN_NOT_PRESENT = -23, /* token removed or unreachable */
	ERR_PIN_INCORRECT = -24,   /* wrong PIN or auth value */
	ERR_PIN_LOCKED = -25,      /* PIN blocked or dictionary-attack lockout */
	ERR_PIN_REQUIRED = -26,    /* a PIN is needed and none was available */
	ERR_KEY_POLICY = -27,      /* key attributes do not prove non-exportability */
	ERR_PARENT_MISMATCH = -28, /* TPM parent key differs from the pinned one */
	ERR_TIMEOUT = -29,         /* an operation did not finish in time */
	ERR_DENIED = -30,          /* not permitted */
	ERR_CONFIG = -31,          /* bad configuration */
	ERR_QUOTA = -32,           /* a storage quota is used up */
	ERR_FAIR_SHARE = -33,      /* one party's fair share is used up */
	ERR_GONE = -34,            /* existed, but was removed (expired) */
	ERR_LAST = -35             /* not a code: one past the last */
};

/* Returns a short static description of code; never NULL. */
const char *err_str(int code);

#define ERR_MSG_MAX 512

/*
 * An error context: the code and a human-readable sentence saying what
 * failed, on which object, and what to do.  Callers allocate it (usually on
 * the stack) and zero it with err_clear().  Messages never contain secrets.
 */
struct err_ctx {
	int code;
	char msg[ERR_MSG_MAX];
};

/* Resets ctx to "no error".  ctx may be NULL. */
void err_clear(struct err_ctx *ctx);

/*
 * Records code and a printf-style message in ctx (if ctx is not NULL) and
 * returns code, so callers can write `return err_set(e, ERR_FORMAT, ...)`.
 * The first error recorded wins unless err_clear() is called; a later call
 * with a message prepends nothing and is ignored, so the innermost cause is
 * kept.
 */
int err_set(struct err_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Like err_set() but always replaces what ctx holds, for callers that add
 * context: "registry: " + inner message.  Returns code.
 */
int err_wrap(struct err_ctx *ctx, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The message in ctx, or err_str(code) when no message was recorded. */
const char *err_msg(const struct err_ctx *ctx);

/* Misuse checks (p11-kit style): these are bugs in the caller. */
#define return_val_if_fail(expr, val) do {			\
		if (!(expr))					\
			return (val);				\
	} while (0)

#endif /* DEVID_ERRORS_H */
