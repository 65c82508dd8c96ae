/*
 * errors.c - error code text and the error context.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

static const char *const err_text[] = {
	[0] = "success",
	[1] = "internal error",
	[2] = "out of memory",
	[3] = "invalid argument",
	[4] = "too large",
	[5] = "input truncated",
	[6] = "malformed input",
	[7] = "cryptographic operation failed",
	[8] = "signature verification failed",
	[9] = "decryption failed",
	[10] = "message rejected",
	[11] = "account log hash chain broken",
	[12] = "account log rollback",
	[13] = "account log fork",
	[14] = "signed by an unexpected key",
	[15] = "stale signed head",
	[16] = "replayed",
	[17] = "not found",
	[18] = "already exists",
	[19] = "I/O error",
	[20] = "network error",
	[21] = "not supported",
	[22] = "token error",
	[23] = "token not present",
	[24] = "incorrect PIN",
	[25] = "PIN locked",
	[26] = "PIN required",
	[27] = "key attributes do not prove non-exportability",
	[28] = "TPM parent key mismatch",
	[29] = "timed out",
	[30] = "permission denied",
	[31] = "configuration error",
	[32] = "storage quota exceeded",
	[33] = "fair share used up",
	[34] = "no longer available",
};

const char *
err_str(int code)
{
	size_t i;

	if (code > 0 || code <= ERR_LAST)
		return "unknown error";
	i = (size_t)(-code);
	if (i >= sizeof(err_text) / sizeof(err_text[0]) || err_text[i] == NULL)
		return "unknown error";
	return err_text[i];
}

void
err_clear(struct err_ctx *ctx)
{
	if (ctx == NULL)
		return;
	ctx->code = 0;
	ctx->msg[0] = '\0';
}

static void err_vrecord(struct err_ctx *ctx, int code, const char *fmt,
    va_list ap) __attribute__((format(printf, 3, 0)));

static void
err_vrecord(struct err_ctx *ctx, int code, const char *fmt, va_list ap)
{
	int n;

	ctx->code = code;
	if (fmt == NULL) {
		ctx->msg[0] = '\0';
		return;
	}
	n = vsnprintf(ctx->msg, sizeof(ctx->msg), fmt, ap);
	if (n < 0)
		ctx->msg[0] = '\0';
}

int
err_set(struct err_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;

	if (ctx == NULL || ctx->code != 0)
		return code;
	va_start(ap, fmt);
	err_vrecord(ctx, code, fmt, ap);
	va_end(ap);
	return code;
}

int
err_wrap(struct err_ctx *ctx, int code, const char *fmt, ...)
{
	struct err_ctx tmp;
	va_list ap;

	if (ctx == NULL)
		return code;
	/* Format into a copy: the arguments may point into ctx->msg. */
	va_start(ap, fmt);
	err_vrecord(&tmp, code, fmt, ap);
	va_end(ap);
	*ctx = tmp;
	return code;
}

const char *
err_msg(const struct err_ctx *ctx)
{
	if (ctx == NULL)
		return "unknown error";
	if (ctx->msg[0] != '\0')
		return ctx->msg;
	return err_str(ctx->code);
}
