/*
 * fuzz_http.c: what the HTTP channel makes of a request's head before any
 * handler runs: the router (which route, which node or hook, which method
 * fits), the bearer token check against the configured tokens and the
 * ACL, and for a webhook the HMAC signature check (plain, and Grafana's
 * signed timestamp) and the body through the hook's adapter.
 *
 * chan_http.c is included rather than linked so that its static router can
 * be called; libmicrohttpd's header lookup is replaced by one that reads
 * the fuzzer's headers.  The status page's files: a routed file name must
 * never leave the web root.
 *
 * Input: "METHOD URL\n", header lines "Name: value\n", an empty line, the
 * body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

static const char *fuzz_header(struct MHD_Connection *, enum MHD_ValueKind, const char *);
#define MHD_lookup_connection_value fuzz_header
#include "chan_http.c"
#undef MHD_lookup_connection_value

#include "fuzz_world.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define MAX_HEADERS 16
static struct { char *name, *value; } headers[MAX_HEADERS];
static size_t nheaders;

static const char *
fuzz_header(struct MHD_Connection *c, enum MHD_ValueKind kind, const char *name)
{
	(void)c;
	(void)kind;
	for (size_t i = 0; i < nheaders; i++)
		if (strcasecmp(headers[i].name, name) == 0)
			return headers[i].value;
	return NULL;
}

static const char http_conf[] =
	"port = 0;\n"
	"tokens = ( { name = \"ci\"; token = \"ci-token-0123456789\"; },\n"
	"           { name = \"ro\"; token = \"ro-token-0123456789\"; } );\n"
	"hooks = (\n"
	"  { name = \"am\"; format = \"alertmanager\"; token = \"am-token-0123456789\"; },\n"
	"  { name = \"grafana\"; format = \"grafana\"; hmac_secret = \"grafana-secret-0123456789\";\n"
	"    hmac_header = \"X-Grafana-Alerting-Signature\";\n"
	"    hmac_timestamp_header = \"X-Grafana-Alerting-Signature-Timestamp\"; },\n"
	"  { name = \"generic\"; format = \"json\"; hmac_secret = \"generic-secret-0123456789\"; }\n"
	");\n";

static struct sb_channel hch;
static struct httpd *H;

static void
setup(void)
{
	static config_t cf;
	char err[512] = "";
	static char name[] = "http", ctx[] = "default";

	sb_fuzz_world_start(NULL);
	config_init(&cf);
	if (config_read_string(&cf, http_conf) != CONFIG_TRUE) {
		fprintf(stderr, "fuzz_http: config: %s\n", config_error_text(&cf));
		exit(1);
	}
	hch.drv = &sb_chan_http;
	hch.name = name;
	hch.context = hch.group_context = ctx;
	if (http_open(&hch, config_root_setting(&cf), err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_http: open: %s\n", err);
		exit(1);
	}
	H = hch.priv;
}

/* Split the input into the request line, headers and body (all copied). */
static char *
parse_input(const char *in, size_t len, char **method, char **url, const char **body,
            size_t *bodylen)
{
	char *s = malloc(len + 1), *line, *next, *end;

	if (s == NULL)
		abort();
	memcpy(s, in, len);
	s[len] = '\0';
	end = s + len;
	nheaders = 0;
	*method = *url = NULL;
	*body = "";
	*bodylen = 0;
	for (line = s; line < end; line = next) {
		char *nl = memchr(line, '\n', (size_t)(end - line));

		next = nl ? nl + 1 : end;
		if (nl)
			*nl = '\0';
		if (*method == NULL) {
			char *sp = strchr(line, ' ');

			if (sp == NULL)
				return s;
			*sp = '\0';
			*method = line;
			*url = sp + 1;
		} else if (*line == '\0') {
			*body = next;
			*bodylen = (size_t)(end - next);
			return s;
		} else if (nheaders < MAX_HEADERS) {
			char *colon = strchr(line, ':');

			if (colon == NULL)
				continue;
			*colon = '\0';
			headers[nheaders].name = line;
			headers[nheaders].value = colon + 1 + (colon[1] == ' ');
			nheaders++;
		}
	}
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *method, *url, err[1100];
	const char *body;
	size_t bodylen;
	struct req *r;

	if (size > 65536)
		return -1;
	if (H == NULL)
		setup();
	copy = parse_input((const char *)data, size, &method, &url, &body, &bodylen);
	if (method == NULL || *url == '\0') {
		free(copy);
		return 0;
	}
	r = sb_calloc(1, sizeof(*r));
	r->h = H;
	r->url = sb_strdup(url);
	sb_strlcpy(r->method, method, sizeof(r->method));
	sb_strlcpy(r->peer, "192.0.2.1", sizeof(r->peer));
	route(r);
	if (r->route == RT_FILE && !r->early)
		if (r->arg[0] == '.' || strchr(r->arg, '/'))
			abort();	/* could leave the web root */
	if (r->route == RT_HOOK && !r->early && r->hook) {
		struct hookin *k = r->hook;
		struct http_events ev = { 0 };
		json_t *j;

		sb_buf_add(&r->body, body, bodylen);
		if ((k->hmac_secret == NULL || signature_refusal(r) == NULL) &&
		    (j = parse_body(r, err, sizeof(err))) != NULL) {
			http_hook_adapt(k->format, k->name, j, k->dedup, is_node, NULL, &ev, err,
			    sizeof(err));
			json_decref(j);
			http_events_free(&ev);
		}
	}
	req_free(r);
	free(copy);
	return 0;
}
