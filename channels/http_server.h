/*
 * http_server.h: the HTTP channel's own types, shared by the files that
 * make it up and by nothing else:
 *
 *   chan_http.c     the driver, libmicrohttpd on the loop, routing, the
 *                   API's commands and the incoming webhooks
 *   http_conf.c     the channel's config keys and their parsing
 *   http_sse.c      the live event stream, GET /api/events
 *   http_metrics.c  GET /metrics
 *
 * Everything here runs on the loop thread.
 */
#ifndef SB_HTTP_SERVER_H
#define SB_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libconfig.h>
#include <microhttpd.h>

#include "conf.h"
#include "http_auth.h"
#include "http_hooks.h"
#include "log.h"
#include "util.h"

#define HTTP_FD_CEILING	1024	/* select()-based libraries share the process */
#define HTTP_MAX_CODES	24	/* distinct status codes counted */

struct hookwait;
struct http_out;
struct httpd;
struct sb_channel;
struct sb_loop;
struct sb_timer;

/* An incoming webhook, /hooks/<name>. */
struct hookin {
	char   *name;
	enum http_hook_format format;
	int     has_token;
	struct http_token token;	/* its name is unused */
	char   *hmac_secret;
	char   *hmac_header;
	char   *ts_header;	/* signed timestamp ("<time>:<body>"), or NULL */
	long    max_skew;	/* seconds */
	char   *lua;		/* a Lua handler's name, or NULL: format's adapter */
	struct http_dedup *dedup;
	unsigned long accepted, unauthorized, bad_request, failed, events;
};

/* One client of /api/events.  Owned by its libmicrohttpd response: freed
 * by the response's free callback, when the connection is gone. */
struct sse {
	struct sse *next;
	struct httpd *h;
	struct MHD_Connection *conn;
	struct sb_buf q;
	size_t  off;
	int     suspended;
	int     closing;	/* 0, or end the stream at the next read: */
#define SSE_END	1		/* properly (the channel stops) */
#define SSE_CUT	2		/* with an error (the client is too slow) */
};

enum route {
	RT_NONE,
	RT_HEALTH,
	RT_METRICS,
	RT_NODES,
	RT_NODE,
	RT_EVENTS,
	RT_COMMAND,
	RT_HOOK,
	RT_FILE,
};

/* One request; libmicrohttpd keeps it in its per-request pointer and
 * chan_http.c frees it when the request completes. */
struct req {
	struct httpd *h;
	struct MHD_Connection *conn;
	unsigned long id;
	char    method[16];
	char   *url;
	char    peer[64];
	enum route route;
	char   *arg;		/* the node, hook or file named by the URL */
	struct hookin *hook;
	char    identity[96];	/* "http:<token name>", or "" */
	struct sb_buf body;
	size_t  seen;		/* body bytes received, kept or not */
	int     early;		/* a status decided from the headers alone */
	char   *early_msg;
	int     responded;
	/* a command in flight */
	struct req *next_cmd;
	int     running;
	int     suspended;
	int     done, failed;
	char   *confirm;
	struct sb_buf out;
	int     out_cut;
	struct sb_timer *timer;
	/* a webhook waiting for its events to be durable (chan_http.c) */
	struct hookwait *wait;
};

/* A channel instance: its priv. */
struct httpd {
	struct sb_channel *ch;
	/* config, fixed once open() returns (http_conf.c) */
	char   *bind;
	int     port;
	char   *tls_cert, *tls_key;	/* PEM text */
	char   *web_root;
	size_t  max_body;
	unsigned max_conns;
	unsigned idle_timeout;
	long    command_timeout_ms;
	int     public_read;
	unsigned max_streams;
	long    keepalive_ms;
	struct http_token *tokens;
	size_t  ntokens;
	struct hookin *hooks;
	size_t  nhooks;
	struct http_out *out;
	/* running */
	struct MHD_Daemon *mhd;
	int     lfd;		/* listening socket */
	int     efd;		/* libmicrohttpd's epoll set */
	int     bound_port;
	struct sb_timer *timer;	/* libmicrohttpd's next timeout */
	uint64_t timer_at;
	struct sb_timer *keepalive;
	struct sb_timer *kick;	/* run libmicrohttpd on the next iteration */
	int     in_mhd;		/* inside MHD_run() or MHD_add_connection() */
	int     stopped;
	int     dead_mhd;	/* stopped inside MHD_run(): stop the daemon in close() */
	unsigned long next_id;
	struct req *cmds;	/* commands in flight */
	struct sse *streams;
	size_t  nstreams;
	/* metrics */
	struct {
		unsigned code;
		unsigned long n;
	} codes[HTTP_MAX_CODES];
	unsigned long refused_limit, refused_fd, accept_pauses;
	unsigned long cmd_ok, cmd_failed, cmd_refused, cmd_confirm, cmd_timeout;
};

/* http_conf.c */
extern const struct sb_conf_key http_keys[];
/* Fill h's config part from the channel's section (borrowed); 0, or -1
 * with err set.  http_conf_free() frees what it filled, even on failure. */
int  http_conf_parse(struct httpd *, const config_setting_t *, char *err, size_t errlen);
void http_conf_free(struct httpd *);
int  http_valid_name(const char *);
/* The file at path if it is a regular file of at most max bytes (then
 * NUL-terminated; the caller frees it), else NULL with errno set. */
char *http_read_file(const char *path, size_t max, size_t *len);

/* chan_http.c: answers, for the other files */
void http_count_code(struct httpd *, unsigned code);
void http_common_headers(struct MHD_Response *);
enum MHD_Result http_respond_error(struct req *, unsigned status, const char *fmt, ...)
    SB_PRINTF(3, 4);
/* Resume a suspended connection and make sure libmicrohttpd runs soon. */
void http_resume(struct httpd *, struct MHD_Connection *);

/* http_sse.c */
enum MHD_Result http_sse_start(struct req *);
/* "event: <event>\ndata: <obj as JSON>\n\n" to every stream; obj taken. */
void http_sse_broadcast(struct httpd *, const char *event, json_t *obj);
/* The keep-alive timer's callback (ud: the httpd). */
long http_sse_keepalive(struct sb_loop *, struct sb_timer *, void *ud);
/* End every stream (the channel stops). */
void http_sse_close_all(struct httpd *);

/* http_metrics.c: the whole /metrics page into b. */
void http_metrics_text(struct httpd *, struct sb_buf *);

#endif
