/*
 * http_conf.c: the parsing of the HTTP channel's section (its keys are in
 * http_keys.c) into struct httpd: listening address, limits, TLS files, API tokens, incoming hooks
 * and outgoing webhooks.  Tokens and hook secrets are kept as SHA-256
 * digests (http_auth.h) for constant-time comparison.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "conf.h"
#include "http_out.h"
#include "http_server.h"

#ifndef SB_DATADIR
#define SB_DATADIR "/usr/local/share/switchboard"
#endif

#define DEDUP_CAP	4096		/* alert fingerprints remembered per hook */

int
http_valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

char *
http_read_file(const char *path, size_t max, size_t *lenp)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	buf = sb_malloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	if (lenp)
		*lenp = got;
	return buf;
}

static int
conf_fail(char *err, size_t errlen, const config_setting_t *s, const char *fmt, ...)
    SB_PRINTF(4, 5);

static int
conf_fail(char *err, size_t errlen, const config_setting_t *s, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s)
		snprintf(err, errlen, "line %u: %s", config_setting_source_line(s), msg);
	else
		snprintf(err, errlen, "%s", msg);
	return -1;
}

static int
open_tokens(struct httpd *h, const config_setting_t *s, char *err, size_t errlen)
{
	config_setting_t *l = config_setting_get_member(s, "tokens");

	h->ntokens = l ? (size_t)config_setting_length(l) : 0;
	h->tokens = sb_calloc(h->ntokens + 1, sizeof(*h->tokens));
	for (size_t i = 0; i < h->ntokens; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *name = sb_conf_str(e, "name", "");
		char *tok;
		size_t toklen;

		h->tokens[i].name = sb_strdup(name);
		if (!http_valid_name(name))
			return conf_fail(err, errlen, e, "token name \"%s\" must be 1-63 letters, "
			    "digits, '-', '_' or '.'", name);
		if (sb_conf_secret(e, "token", &tok, err, errlen) < 0)
			return -1;
		if (tok == NULL)
			return conf_fail(err, errlen, e, "token %s needs token or token_file", name);
		toklen = strlen(tok);
		http_sha256(tok, toklen, h->tokens[i].digest);
		sb_secret_free(tok);	/* only its hash is kept */
		if (toklen < 16)
			return conf_fail(err, errlen, e, "token %s: the secret needs 16 characters "
			    "or more", name);
		for (size_t j = 0; j < i; j++) {
			if (strcmp(h->tokens[j].name, name) == 0)
				return conf_fail(err, errlen, e, "duplicate token name \"%s\"", name);
			if (http_ct_equal(h->tokens[j].digest, h->tokens[i].digest, HTTP_SHA256_LEN))
				return conf_fail(err, errlen, e, "tokens %s and %s have the same secret",
				    h->tokens[j].name, name);
		}
	}
	return 0;
}

static int
open_hooks(struct httpd *h, const config_setting_t *s, char *err, size_t errlen)
{
	config_setting_t *l = config_setting_get_member(s, "hooks");

	h->nhooks = l ? (size_t)config_setting_length(l) : 0;
	h->hooks = sb_calloc(h->nhooks + 1, sizeof(*h->hooks));
	for (size_t i = 0; i < h->nhooks; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		struct hookin *k = &h->hooks[i];
		const char *name = sb_conf_str(e, "name", "");
		const char *fmt = sb_conf_str(e, "format", NULL);
		const char *handler = sb_conf_str(e, "handler", NULL);
		const char *tsh = sb_conf_str(e, "hmac_timestamp_header", NULL);
		char *tok, *sec;
		size_t toklen = 0;
		int f;

		k->name = sb_strdup(name);
		if (sb_conf_secret(e, "token", &tok, err, errlen) < 0)
			return -1;
		if (tok) {		/* only its hash is kept */
			k->has_token = 1;
			toklen = strlen(tok);
			http_sha256(tok, toklen, k->token.digest);
			sb_secret_free(tok);
		}
		if (sb_conf_secret(e, "hmac_secret", &sec, err, errlen) < 0)
			return -1;
		k->hmac_secret = sec;	/* taken */
		k->hmac_header = sb_strdup(sb_conf_str(e, "hmac_header", "X-Signature-256"));
		if (!http_valid_name(name))
			return conf_fail(err, errlen, e, "hook name \"%s\" must be 1-63 letters, "
			    "digits, '-', '_' or '.'", name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(h->hooks[j].name, name) == 0)
				return conf_fail(err, errlen, e, "duplicate hook \"%s\"", name);
		if (handler && strncmp(handler, "lua:", 4) == 0) {
			if (fmt)
				return conf_fail(err, errlen, e, "hook %s: a Lua handler takes no "
				    "format", name);
			if (!http_valid_name(handler + 4))
				return conf_fail(err, errlen, e, "hook %s: handler \"%s\": the Lua "
				    "handler's name must be 1-63 letters, digits, '-', '_' or '.'",
				    name, handler);
			k->lua = sb_strdup(handler + 4);
			fmt = "json";
		} else if (handler && fmt && strcmp(handler, fmt) != 0) {
			return conf_fail(err, errlen, e, "hook %s: format \"%s\" and handler "
			    "\"%s\" disagree (handler is enough)", name, fmt, handler);
		} else if (handler) {
			fmt = handler;
		}
		if (fmt == NULL)
			fmt = "json";
		if ((f = http_hook_format_parse(fmt)) < 0)
			return conf_fail(err, errlen, e, "hook %s: handler must be alertmanager, "
			    "grafana, json or lua:<name>, not \"%s\"", name, fmt);
		k->format = (enum http_hook_format)f;
		if (tsh && sec == NULL)
			return conf_fail(err, errlen, e, "hook %s: hmac_timestamp_header needs "
			    "hmac_secret", name);
		k->ts_header = sb_strdup(tsh);
		k->max_skew = (long)sb_conf_float(e, "hmac_max_skew", 300);
		if (k->max_skew < 1 || k->max_skew > 86400)
			return conf_fail(err, errlen, e, "hook %s: hmac_max_skew must be 1 to 86400 "
			    "seconds", name);
		if (!k->has_token && sec == NULL)
			return conf_fail(err, errlen, e, "hook %s needs a token or an hmac_secret "
			    "(or both)", name);
		if ((k->has_token && toklen < 16) || (sec && strlen(sec) < 16))
			return conf_fail(err, errlen, e, "hook %s: token and hmac_secret need 16 "
			    "characters or more", name);
		k->dedup = http_dedup_new(DEDUP_CAP);
	}
	return 0;
}

static int
open_webhooks(struct httpd *h, const config_setting_t *s, char *err, size_t errlen)
{
	config_setting_t *l = config_setting_get_member(s, "webhooks");
	size_t n = l ? (size_t)config_setting_length(l) : 0;
	struct http_webhook_conf *c = sb_calloc(n + 1, sizeof(*c));

	for (size_t i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *name = sb_conf_str(e, "name", ""), *url = sb_conf_str(e, "url", "");
		const char *fmt = sb_conf_str(e, "format", "slack");
		int bad = 0;

		c[i].name = sb_strdup(name);
		c[i].url = sb_strdup(url);
		if (sb_conf_secret(e, "token", &c[i].bearer, err, errlen) < 0) {
			h->out = http_out_new(h->ch->name, c, i + 1);
			return -1;
		}
		c[i].timeout_ms = (long)(sb_conf_float(e, "timeout", 10) * 1000);
		c[i].max_attempts = (int)sb_conf_int(e, "max_attempts", 10);
		c[i].retry_ms = (long)(sb_conf_float(e, "retry_delay", 2) * 1000);
		c[i].retry_max_ms = (long)(sb_conf_float(e, "retry_max_delay", 300) * 1000);
		c[i].queue_max = (size_t)sb_conf_int(e, "queue_max", 1000);
		if (!http_valid_name(name))
			bad = conf_fail(err, errlen, e, "webhook name \"%s\" must be 1-63 letters, "
			    "digits, '-', '_' or '.'", name);
		for (size_t j = 0; j < i && !bad; j++)
			if (strcmp(c[j].name, name) == 0)
				bad = conf_fail(err, errlen, e, "duplicate webhook \"%s\"", name);
		if (!bad && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
			bad = conf_fail(err, errlen, e, "webhook %s: url must start with http:// or "
			    "https://", name);
		if (!bad && strcmp(fmt, "slack") == 0)
			c[i].format = HTTP_OUT_SLACK;
		else if (!bad && strcmp(fmt, "json") == 0)
			c[i].format = HTTP_OUT_JSON;
		else if (!bad)
			bad = conf_fail(err, errlen, e, "webhook %s: format must be slack or json",
			    name);
		if (!bad && (c[i].timeout_ms < 100 || c[i].max_attempts < 1 || c[i].retry_ms < 10 ||
		    c[i].retry_max_ms < c[i].retry_ms || c[i].queue_max < 1))
			bad = conf_fail(err, errlen, e, "webhook %s: timeout must be 0.1 s or more, "
			    "max_attempts and queue_max 1 or more, retry_delay 0.01 s or more and "
			    "not above retry_max_delay", name);
		if (bad) {
			/* http_out takes the array; hand it what is filled in. */
			h->out = http_out_new(h->ch->name, c, i + 1);
			return -1;
		}
	}
	h->out = http_out_new(h->ch->name, c, n);
	return 0;
}

int
http_conf_parse(struct httpd *h, const config_setting_t *s, char *err, size_t errlen)
{
	const char *cert = sb_conf_str(s, "tls_cert", NULL), *key = sb_conf_str(s, "tls_key", NULL);
	unsigned char addr[sizeof(struct in6_addr)];
	long long v;

	h->bind = sb_strdup(sb_conf_str(s, "bind", "127.0.0.1"));
	if (inet_pton(AF_INET, h->bind, addr) != 1 && inet_pton(AF_INET6, h->bind, addr) != 1) {
		snprintf(err, errlen, "bind must be a numeric IPv4 or IPv6 address, not \"%s\"", h->bind);
		return -1;
	}
	v = sb_conf_int(s, "port", 8080);
	if (v < 0 || v > 65535) {
		snprintf(err, errlen, "port must be 0 to 65535");
		return -1;
	}
	h->port = (int)v;
	h->web_root = sb_strdup(sb_conf_str(s, "web_root", SB_DATADIR "/web"));
	v = sb_conf_int(s, "max_body", 1048576);
	if (v < 1024 || v > 64 * 1048576) {
		snprintf(err, errlen, "max_body must be 1024 to 67108864 bytes");
		return -1;
	}
	h->max_body = (size_t)v;
	/* Other channels and the core need descriptors below 1024 too. */
	v = sb_conf_int(s, "max_connections", 256);
	if (v < 1 || v > 768) {
		snprintf(err, errlen, "max_connections must be 1 to 768");
		return -1;
	}
	h->max_conns = (unsigned)v;
	v = sb_conf_int(s, "idle_timeout", 60);
	if (v < 1 || v > 86400) {
		snprintf(err, errlen, "idle_timeout must be 1 to 86400 seconds");
		return -1;
	}
	h->idle_timeout = (unsigned)v;
	h->command_timeout_ms = (long)(sb_conf_float(s, "command_timeout", 60) * 1000);
	if (h->command_timeout_ms < 100 || h->command_timeout_ms > 3600000) {
		snprintf(err, errlen, "command_timeout must be 0.1 to 3600 seconds");
		return -1;
	}
	h->keepalive_ms = (long)(sb_conf_float(s, "keepalive", 15) * 1000);
	if (h->keepalive_ms < 100 || h->keepalive_ms > 3600000) {
		snprintf(err, errlen, "keepalive must be 0.1 to 3600 seconds");
		return -1;
	}
	v = sb_conf_int(s, "max_event_streams", h->max_conns < 64 ? h->max_conns : 64);
	if (v < 0 || v > (long long)h->max_conns) {
		snprintf(err, errlen, "max_event_streams must be 0 to max_connections");
		return -1;
	}
	h->max_streams = (unsigned)v;
	h->public_read = sb_conf_bool(s, "public_read", 1);
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "tls_cert and tls_key go together");
		return -1;
	}
	if (cert) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd was built without TLS");
			return -1;
		}
		if ((h->tls_cert = http_read_file(cert, 1 << 20, NULL)) == NULL) {
			snprintf(err, errlen, "tls_cert %s: %s", cert, strerror(errno));
			return -1;
		}
		if ((h->tls_key = http_read_file(key, 1 << 20, NULL)) == NULL) {
			snprintf(err, errlen, "tls_key %s: %s", key, strerror(errno));
			return -1;
		}
	}
	if (open_tokens(h, s, err, errlen) < 0 || open_hooks(h, s, err, errlen) < 0 ||
	    open_webhooks(h, s, err, errlen) < 0)
		return -1;
	return 0;
}

void
http_conf_free(struct httpd *h)
{
	http_out_free(h->out);
	h->out = NULL;
	for (size_t i = 0; i < h->ntokens; i++)
		free(h->tokens[i].name);
	free(h->tokens);
	for (size_t i = 0; i < h->nhooks; i++) {
		free(h->hooks[i].name);
		free(h->hooks[i].hmac_secret);
		free(h->hooks[i].hmac_header);
		free(h->hooks[i].ts_header);
		free(h->hooks[i].lua);
		http_dedup_free(h->hooks[i].dedup);
	}
	free(h->hooks);
	free(h->bind);
	free(h->web_root);
	free(h->tls_cert);
	free(h->tls_key);
}
