/*
 * http_auth.c: constant-time comparison, SHA-256, HMAC-SHA256, hex, and
 * bearer tokens for the HTTP channel.  The hashes are GnuTLS's (nettle
 * under it): a well-reviewed implementation beats a hand-written one here,
 * and its answers are checked against RFC 4231's vectors in the unit test.
 * GnuTLS rather than OpenSSL because libmicrohttpd has already loaded and
 * initialised it, where OpenSSL 3's first digest loads its configuration
 * and provider: ~1.8 ms of every start, on the main thread.
 *
 * Tokens are kept and compared as SHA-256 digests: then every comparison
 * has one fixed length, so neither a token's length nor the position of
 * the first wrong byte shows in the time an answer takes.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "http_auth.h"

int
http_ct_equal(const void *a, const void *b, size_t len)
{
	return gnutls_memcmp(a, b, len) == 0;
}

void
http_sha256(const void *data, size_t len, unsigned char out[HTTP_SHA256_LEN])
{
	static const unsigned char none;

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, len ? data : &none, len, out) < 0)
		memset(out, 0, HTTP_SHA256_LEN);	/* cannot happen with SHA-256 */
}

void
http_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                 unsigned char out[HTTP_SHA256_LEN])
{
	static const unsigned char none;

	/* Never a NULL pointer, even for an empty key or body. */
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, keylen ? key : &none, keylen,
	    len ? data : &none, len, out) < 0)
		memset(out, 0, HTTP_SHA256_LEN);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
http_hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
	if (strlen(hex) != 2 * outlen)
		return -1;
	for (size_t i = 0; i < outlen; i++) {
		int hi = hexval((unsigned char)hex[2 * i]);
		int lo = hexval((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void
http_hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int
http_hmac_check(const char *secret, const void *body, size_t len, const char *sig)
{
	unsigned char want[HTTP_SHA256_LEN], got[HTTP_SHA256_LEN];

	if (sig == NULL)
		return 0;
	while (*sig == ' ' || *sig == '\t')
		sig++;
	if (strncasecmp(sig, "sha256=", 7) == 0)
		sig += 7;
	/* The header's format is public; only its value is secret. */
	if (http_hex_decode(sig, got, sizeof(got)) < 0)
		return 0;
	http_hmac_sha256(secret, strlen(secret), body, len, want);
	return http_ct_equal(want, got, sizeof(want));
}

int
http_hmac_check_ts(const char *secret, const char *ts, const void *body, size_t len,
                   const char *sig)
{
	size_t tl = strlen(ts);
	char *buf = malloc(tl + 1 + len + 1);
	int ok;

	if (buf == NULL)
		return 0;
	memcpy(buf, ts, tl);
	buf[tl] = ':';
	if (len)
		memcpy(buf + tl + 1, body, len);
	ok = http_hmac_check(secret, buf, tl + 1 + len, sig);
	free(buf);
	return ok;
}

int
http_timestamp_fresh(const char *ts, time_t now, long max_skew)
{
	long long t = 0;
	size_t n = 0;

	if (ts == NULL)
		return 0;
	for (; ts[n] >= '0' && ts[n] <= '9' && n < 12; n++)
		t = t * 10 + (ts[n] - '0');
	if (n == 0 || ts[n] != '\0')
		return 0;
	return t >= (long long)now - max_skew && t <= (long long)now + max_skew;
}

const char *
http_bearer(const char *value)
{
	if (value == NULL)
		return NULL;
	while (*value == ' ')
		value++;
	if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
		return NULL;
	value += 7;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value ? value : NULL;
}

int
http_token_match(const struct http_token *tokens, size_t n, const char *presented)
{
	unsigned char d[HTTP_SHA256_LEN];
	int found = -1;

	if (presented == NULL)
		return -1;
	http_sha256(presented, strlen(presented), d);
	/* No early exit: the time does not tell which token matched. */
	for (size_t i = 0; i < n; i++) {
		int eq = http_ct_equal(d, tokens[i].digest, sizeof(d));

		found = eq && found < 0 ? (int)i : found;
	}
	return found;
}
