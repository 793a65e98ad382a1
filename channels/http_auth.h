/*
 * http_auth.h: the HTTP channel's credential checks: bearer tokens, HMAC
 * signatures of webhook bodies, and the constant-time comparisons both
 * rest on.  Pure functions on memory (SHA-256 and HMAC come from OpenSSL's
 * libcrypto); no sockets, no config, no logging.
 */
#ifndef SB_HTTP_AUTH_H
#define SB_HTTP_AUTH_H

#include <stddef.h>
#include <time.h>

#define HTTP_SHA256_LEN 32

/* A configured token: its name (the identity is "http:<name>") and the
 * SHA-256 of its secret, so every comparison has the same length. */
struct http_token {
	char   *name;
	unsigned char digest[HTTP_SHA256_LEN];
};

/* 1 if the len bytes at a and b are equal; the time taken depends on len
 * only, never on where the first difference is. */
int  http_ct_equal(const void *a, const void *b, size_t len);

void http_sha256(const void *data, size_t len, unsigned char out[HTTP_SHA256_LEN]);
void http_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      unsigned char out[HTTP_SHA256_LEN]);

/* Decode exactly outlen bytes of hex (either case) from hex, which must
 * hold nothing else.  Returns 0, or -1 if it is not that. */
int  http_hex_decode(const char *hex, unsigned char *out, size_t outlen);
/* Write 2*len lowercase hex digits and a NUL into out. */
void http_hex_encode(const unsigned char *in, size_t len, char *out);

/* Is sig (a header value: "<hex>" or "sha256=<hex>") the HMAC-SHA256 of
 * body under secret?  1 or 0; the comparison is constant-time. */
int  http_hmac_check(const char *secret, const void *body, size_t len, const char *sig);

/* The same for Grafana's signed timestamp: the HMAC of "<ts>:<body>". */
int  http_hmac_check_ts(const char *secret, const char *ts, const void *body, size_t len,
                        const char *sig);
/* Is ts a Unix time in decimal digits, at most max_skew seconds from now
 * either way?  1 or 0. */
int  http_timestamp_fresh(const char *ts, time_t now, long max_skew);

/* The token in an Authorization header value "Bearer <token>" (scheme
 * case-insensitive), or NULL.  Returns a pointer into value (borrowed). */
const char *http_bearer(const char *value);

/* Which of the n tokens (borrowed) is presented?  Every token is compared,
 * in constant time, whatever matches.  Returns its index or -1. */
int  http_token_match(const struct http_token *, size_t n, const char *presented);

#endif
