/*
 * http_keys.c: the HTTP channel's config keys.  They are in the daemon,
 * not in the module chan_http.so with the rest of the channel, so that a
 * configuration is checked (and --dump-keys lists them) without loading
 * libmicrohttpd and GnuTLS (core/channel.c).
 */
#include <stddef.h>

#include "conf.h"

#ifndef SB_DATADIR
#define SB_DATADIR "/usr/local/share/switchboard"
#endif

static const struct sb_conf_key token_keys[] = {
	{ "name", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "the token's name; who presents it is the identity http:<name> (map it in acl)" },
	{ "token", SB_CT_STRING, 0, NULL, NULL,
	  "the secret, sent as \"Authorization: Bearer <token>\"; 16 characters or more" },
	{ "token_file", SB_CT_STRING, 0, NULL, NULL,
	  "a file holding the token instead (token or token_file is required); relative: in "
	  "$CREDENTIALS_DIRECTORY" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key hook_keys[] = {
	{ "name", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "the hook's URL is /hooks/<name>; also the source of its events" },
	{ "format", SB_CT_STRING, 0, NULL, "json",
	  "alertmanager, grafana or json ({\"node\", \"severity\", \"text\"})" },
	{ "handler", SB_CT_STRING, 0, NULL, NULL,
	  "what turns the payload into events: a built-in format (as format) or \"lua:<name>\", "
	  "a script's webhook \"<name>\" (function ...)" },
	{ "token", SB_CT_STRING, 0, NULL, NULL,
	  "bearer token the sender presents (16 characters or more)" },
	{ "token_file", SB_CT_STRING, 0, NULL, NULL,
	  "a file holding the token instead; relative: in $CREDENTIALS_DIRECTORY" },
	{ "hmac_secret", SB_CT_STRING, 0, NULL, NULL,
	  "key of the HMAC-SHA256 of the body the sender puts in hmac_header" },
	{ "hmac_secret_file", SB_CT_STRING, 0, NULL, NULL,
	  "a file holding hmac_secret instead; relative: in $CREDENTIALS_DIRECTORY" },
	{ "hmac_header", SB_CT_STRING, 0, NULL, "X-Signature-256",
	  "header holding the signature, hex, optionally prefixed sha256=" },
	{ "hmac_timestamp_header", SB_CT_STRING, 0, NULL, NULL,
	  "header holding a Unix time the sender signs as \"<time>:<body>\" (Grafana's "
	  "timestamp header); the time must be within hmac_max_skew" },
	{ "hmac_max_skew", SB_CT_FLOAT, 0, NULL, "300",
	  "seconds a signed timestamp may be off from our clock, either way" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

static const struct sb_conf_key webhook_keys[] = {
	{ "name", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL,
	  "destination name: route to \"<channel>:<name>\" (or \"http:<name>\")" },
	{ "url", SB_CT_STRING, SB_KEY_REQUIRED, NULL, NULL, "http:// or https:// URL to POST to" },
	{ "format", SB_CT_STRING, 0, NULL, "slack",
	  "slack ({\"text\"}: Slack, Mattermost) or json ({\"text\", \"channel\", \"time\"})" },
	{ "token", SB_CT_STRING, 0, NULL, NULL, "sent as \"Authorization: Bearer <token>\"" },
	{ "token_file", SB_CT_STRING, 0, NULL, NULL,
	  "a file holding the token instead; relative: in $CREDENTIALS_DIRECTORY" },
	{ "timeout", SB_CT_FLOAT, 0, NULL, "10", "seconds one attempt may take" },
	{ "max_attempts", SB_CT_INT, 0, NULL, "10", "attempts before a notification is dropped" },
	{ "retry_delay", SB_CT_FLOAT, 0, NULL, "2", "seconds before the first retry; doubles each time" },
	{ "retry_max_delay", SB_CT_FLOAT, 0, NULL, "300", "longest wait between two attempts" },
	{ "queue_max", SB_CT_INT, 0, NULL, "1000", "notifications kept waiting; newer ones are dropped" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};

const struct sb_conf_key http_keys[] = {
	{ "bind", SB_CT_STRING, 0, NULL, "127.0.0.1", "numeric IPv4 or IPv6 address to listen on" },
	{ "port", SB_CT_INT, 0, NULL, "8080", "TCP port (0: any free port, logged)" },
	{ "tls_cert", SB_CT_STRING, 0, NULL, NULL, "PEM certificate (chain) file: serve HTTPS" },
	{ "tls_key", SB_CT_STRING, 0, NULL, NULL, "PEM private key file for tls_cert" },
	{ "web_root", SB_CT_STRING, 0, NULL, SB_DATADIR "/web", "folder of the status page's files" },
	{ "max_body", SB_CT_INT, 0, NULL, "1048576", "largest request body in bytes; larger gets 413" },
	{ "max_connections", SB_CT_INT, 0, NULL, "256",
	  "open connections at once (at most 768); more get 503" },
	{ "idle_timeout", SB_CT_INT, 0, NULL, "60", "seconds an idle connection stays open" },
	{ "command_timeout", SB_CT_FLOAT, 0, NULL, "60",
	  "seconds POST .../command waits for a command to finish (then 504)" },
	{ "public_read", SB_CT_BOOL, 0, NULL, "true",
	  "GET of nodes, events and metrics needs no token (the page is read-only without one)" },
	{ "max_event_streams", SB_CT_INT, 0, NULL, "64", "clients of /api/events at once (at most max_connections)" },
	{ "keepalive", SB_CT_FLOAT, 0, NULL, "15", "seconds between keep-alive comments on /api/events" },
	{ "tokens", SB_CT_LIST, 0, token_keys, "( )", "API bearer tokens" },
	{ "hooks", SB_CT_LIST, 0, hook_keys, "( )", "incoming webhooks, POST /hooks/<name>" },
	{ "webhooks", SB_CT_LIST, 0, webhook_keys, "( )", "outgoing webhooks: notification destinations" },
	{ NULL, 0, 0, NULL, NULL, NULL },
};
