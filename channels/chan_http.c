/*
 * chan_http.c: the HTTP channel on libmicrohttpd.  It serves the JSON API
 * (nodes, commands), incoming webhooks (/hooks/<name>), the live event
 * stream (Server-Sent Events at /api/events), /metrics, /health and the
 * status page's static files, and it owns outgoing webhooks (http_out.c)
 * as its send() destinations.  It knows HTTP; what a command or an alert
 * means is the dialplan's and the router's business.  This file is the
 * driver, libmicrohttpd on the loop, routing, the API's commands and the
 * incoming webhooks; http_conf.c, http_sse.c and http_metrics.c hold the
 * rest (http_server.h), and http_auth.c, http_hooks.c, http_out.c and
 * http_render.c the parts that know no HTTP server.
 *
 * Threads: none of its own.  libmicrohttpd runs in "external epoll" mode
 * (MHD_USE_EPOLL without an internal thread): all of its connections sit
 * in one epoll set whose descriptor is a single fd on the core loop, and
 * MHD_run() is called when that fd is readable or when the timeout
 * MHD_get_timeout() asks for expires.  Every callback thus runs on the
 * loop thread, where sb_dispatch() and the node model live, with no
 * hand-off and no locks.  Compared with MHD_get_fdset() (select-style),
 * nothing has to be re-registered on every loop iteration, and no fd_set
 * limits the descriptors; compared with a thread of its own, the core's
 * data needs no copying across threads.
 *
 * The channel accepts connections itself (MHD_USE_NO_LISTEN_SOCKET and
 * MHD_add_connection()): so it can turn away a connection over the cap
 * with a short 503, and refuse any descriptor at or past 1024, which the
 * XMPP and IRC libraries' select() could not hold.
 *
 * Answers that come later (a command waiting for hardware, the event
 * stream waiting for a change) suspend their connection
 * (MHD_ALLOW_SUSPEND_RESUME); the loop resumes it when there is something
 * to send, and libmicrohttpd's inter-thread channel, itself in the epoll
 * set, wakes the loop to send it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "acl.h"
#include "channel.h"
#include "conf.h"
#include "core.h"
#include "dialplan.h"
#include "dispatch.h"
#include "http_auth.h"
#include "http_hooks.h"
#include "http_lua.h"
#include "http_out.h"
#include "http_render.h"
#include "http_server.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "net.h"
#include "node.h"
#include "notify.h"
#include "util.h"

#define MAX_OUTPUT	(1u << 20)	/* command output kept for one answer */
#define MAX_FILE	(4u << 20)	/* largest static file served */

/* ---- small helpers ---- */

void
http_count_code(struct httpd *h, unsigned code)
{
	size_t i;

	for (i = 0; i < HTTP_MAX_CODES && h->codes[i].code; i++)
		if (h->codes[i].code == code)
			break;
	if (i == HTTP_MAX_CODES)
		i = HTTP_MAX_CODES - 1;	/* the last slot takes the rest */
	h->codes[i].code = h->codes[i].code ? h->codes[i].code : code;
	h->codes[i].n++;
}

/* ---- answers ---- */

void
http_common_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
}

/* Queue a response of len bytes at body (taken: freed with free()). */
static enum MHD_Result
respond(struct req *r, unsigned status, const char *type, char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result rc;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	http_common_headers(resp);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"switchboard\"");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, "Allow", r->route == RT_COMMAND || r->route == RT_HOOK ?
		    "POST" : "GET, HEAD");
	rc = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->responded = 1;
	http_count_code(r->h, status);
	sb_debug("http %s: %s %s %s -> %u", r->h->ch->name, r->peer, r->method, r->url, status);
	return rc;
}

/* Queue obj (taken) as JSON. */
static enum MHD_Result
respond_json(struct req *r, unsigned status, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	size_t len;

	json_decref(obj);
	if (s == NULL)
		return MHD_NO;
	len = strlen(s);
	s = sb_realloc(s, len + 2);
	s[len++] = '\n';
	s[len] = '\0';
	return respond(r, status, "application/json", s, len);
}

enum MHD_Result
http_respond_error(struct req *r, unsigned status, const char *fmt, ...)
{
	json_t *o = json_object();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = sb_vasprintf(fmt, ap);
	va_end(ap);
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", json_string(msg));
	free(msg);
	return respond_json(r, status, o);
}

/* ---- libmicrohttpd on the loop ---- */

static void run_mhd(struct httpd *h);

static long
on_mhd_timer(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct httpd *h = ud;

	(void)loop;
	(void)t;
	h->timer = NULL;
	run_mhd(h);
	return SB_TIMER_STOP;
}

/* Arm the loop timer for libmicrohttpd's next timeout, if it has one. */
static void
rearm(struct httpd *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	uint64_t at;

	if (h->mhd == NULL || h->stopped)
		return;
	if (MHD_get_timeout(h->mhd, &ms) != MHD_YES) {
		if (h->timer) {
			sb_loop_del_timer(sb_core.loop, h->timer);
			h->timer = NULL;
		}
		return;
	}
	if (ms > 3600000)
		ms = 3600000;
	at = sb_now_ms() + ms;
	if (h->timer && at == h->timer_at)
		return;
	if (h->timer)
		sb_loop_del_timer(sb_core.loop, h->timer);
	h->timer = sb_loop_add_timer(sb_core.loop, (long)ms, on_mhd_timer, h);
	h->timer_at = at;
}

static void
run_mhd(struct httpd *h)
{
	if (h->mhd == NULL || h->stopped)
		return;
	h->in_mhd++;
	MHD_run(h->mhd);
	h->in_mhd--;
	rearm(h);
}

static long
on_kick(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct httpd *h = ud;

	(void)loop;
	(void)t;
	h->kick = NULL;
	run_mhd(h);
	return SB_TIMER_STOP;
}

/*
 * Resume a suspended connection.  libmicrohttpd only looks at resumed
 * connections inside MHD_run(), and its wake-up through the epoll set does
 * not reliably fire in external mode, so a run is scheduled for the next
 * loop iteration (not called here: we may be inside MHD_run() already).
 */
void
http_resume(struct httpd *h, struct MHD_Connection *c)
{
	MHD_resume_connection(c);
	if (h->kick == NULL && !h->stopped)
		h->kick = sb_loop_add_timer(sb_core.loop, 0, on_kick, h);
}

static void
on_epoll(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	(void)loop;
	(void)fd;
	(void)mask;
	run_mhd(ud);
}

static void
on_accept(struct sb_loop *loop, int fd, unsigned mask, void *ud)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: application/json\r\nContent-Length: 47\r\nConnection: close\r\n\r\n"
	    "{\"ok\":false,\"error\":\"too many connections\"}\r\n";
	struct httpd *h = ud;

	(void)mask;
	/* A bounded batch: a flood must not starve the rest of the loop. */
	for (int i = 0; i < 64 && !h->stopped; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		const union MHD_DaemonInfo *info;
		int cfd = sb_accept(loop, fd, (struct sockaddr *)&ss, &sl, "http",
		    h->ch->name);

		if (cfd < 0) {
			if (SB_ACCEPT_STARVED(errno))
				h->accept_pauses++;
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				sb_warn("http %s: accept", h->ch->name);
			break;
		}
		if (cfd >= HTTP_FD_CEILING) {
			h->refused_fd++;
			sb_warnx("http %s: connection refused: descriptor %d is past %d",
			    h->ch->name, cfd, HTTP_FD_CEILING);
			close(cfd);
			continue;
		}
		info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (info && info->num_connections >= h->max_conns) {
			h->refused_limit++;
			http_count_code(h, 503);
			(void)!write(cfd, busy, sizeof(busy) - 1);
			close(cfd);
			continue;
		}
		h->in_mhd++;
		if (MHD_add_connection(h->mhd, cfd, (struct sockaddr *)&ss, sl) != MHD_YES)
			sb_debug("http %s: a connection was not taken", h->ch->name);
		h->in_mhd--;
	}
	run_mhd(h);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct httpd *h = cls;
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	sb_debug("http %s: libmicrohttpd: %s", h->ch->name, buf);
}

/* ---- the live event stream ---- */

/* ---- authentication ---- */

static const char *
header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Set r->identity from the bearer token; 0, or -1 if none or unknown. */
static int
authenticate(struct req *r)
{
	struct httpd *h = r->h;
	int i = http_token_match(h->tokens, h->ntokens, http_bearer(header(r, "Authorization")));

	if (i < 0)
		return -1;
	snprintf(r->identity, sizeof(r->identity), "http:%s", h->tokens[i].name);
	return 0;
}

/* A status for a request that must show a token and did not (0: fine). */
static int
need_token(struct req *r, int for_read)
{
	int level;

	if (for_read && r->h->public_read)
		return 0;
	if (authenticate(r) < 0) {
		sb_notice("http %s: %s: %s %s refused: %s", r->h->ch->name, r->peer, r->method,
		    r->url, header(r, "Authorization") ? "unknown token" : "no token");
		r->early_msg = sb_strdup(header(r, "Authorization") ?
		    "unknown token" : "a bearer token is needed");
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (sb_acl_role(r->identity, &level) == NULL) {
		sb_notice("http %s: %s: %s %s refused: %s has no role in the acl", r->h->ch->name,
		    r->peer, r->method, r->url, r->identity);
		r->early_msg = sb_asprintf("%s is not authorized", r->identity);
		return MHD_HTTP_FORBIDDEN;
	}
	return 0;
}

/* ---- routing ---- */

static struct hookin *
hook_find(struct httpd *h, const char *name)
{
	for (size_t i = 0; i < h->nhooks; i++)
		if (strcmp(h->hooks[i].name, name) == 0)
			return &h->hooks[i];
	return NULL;
}

/* Decide what the URL names, whether the method fits and whether the
 * caller may ask; sets r->early to a status when the answer is known
 * before any body.  Credentials are checked before names, so that an
 * unauthenticated caller cannot probe which nodes exist. */
static void
route(struct req *r)
{
	const char *u = r->url;
	int get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
	int post = strcmp(r->method, "POST") == 0;
	int want_post = 0, need_node = 0;

	if (strcmp(u, "/health") == 0) {
		r->route = RT_HEALTH;
	} else if (strcmp(u, "/metrics") == 0) {
		r->route = RT_METRICS;
	} else if (strcmp(u, "/api/nodes") == 0 || strcmp(u, "/api/nodes/") == 0) {
		r->route = RT_NODES;
	} else if (strcmp(u, "/api/events") == 0) {
		r->route = RT_EVENTS;
	} else if (strcmp(u, "/api/command") == 0) {
		r->route = RT_COMMAND;
		want_post = 1;
	} else if (strncmp(u, "/api/nodes/", 11) == 0) {
		const char *name = u + 11, *slash = strchr(name, '/');

		r->arg = slash ? sb_strndup(name, (size_t)(slash - name)) : sb_strdup(name);
		if (slash && strcmp(slash, "/command") == 0) {
			r->route = RT_COMMAND;
			want_post = 1;
		} else if (slash == NULL) {
			r->route = RT_NODE;
		}
		need_node = 1;
	} else if (strncmp(u, "/hooks/", 7) == 0) {
		r->route = RT_HOOK;
		want_post = 1;
		r->arg = sb_strdup(u + 7);
		r->hook = hook_find(r->h, r->arg);
	} else if (strcmp(u, "/") == 0) {
		r->route = RT_FILE;
		r->arg = sb_strdup("index.html");
	} else if (u[0] == '/' && u[1] != '.' && http_valid_name(u + 1)) {
		r->route = RT_FILE;
		r->arg = sb_strdup(u + 1);
	}
	if (r->route == RT_NONE) {
		r->early = MHD_HTTP_NOT_FOUND;
		r->early_msg = sb_asprintf("nothing at %s", u);
		return;
	}
	if ((want_post && !post) || (!want_post && !get) ||
	    (r->route == RT_EVENTS && strcmp(r->method, "GET") != 0)) {
		r->early = MHD_HTTP_METHOD_NOT_ALLOWED;
		r->early_msg = sb_asprintf("%s is not allowed here", r->method);
		return;
	}
	switch (r->route) {
	case RT_METRICS:
	case RT_NODES:
	case RT_NODE:
	case RT_EVENTS:
		r->early = need_token(r, 1);
		break;
	case RT_COMMAND:
		r->early = need_token(r, 0);
		break;
	case RT_HOOK:
		if (r->hook == NULL) {
			r->early = MHD_HTTP_NOT_FOUND;
			r->early_msg = sb_asprintf("no hook '%s'", r->arg);
		} else if (r->hook->has_token) {
			const char *t = http_bearer(header(r, "Authorization"));

			if (http_token_match(&r->hook->token, 1, t) < 0) {
				r->hook->unauthorized++;
				sb_notice("http %s: hook %s: %s: refused: %s", r->h->ch->name,
				    r->hook->name, r->peer, t ? "wrong token" : "no token");
				r->early = MHD_HTTP_UNAUTHORIZED;
				r->early_msg = sb_strdup(t ? "wrong token" : "a bearer token is needed");
			}
		}
		break;
	default:
		break;
	}
	if (!r->early && need_node && sb_node_find(r->arg) == NULL) {
		r->early = MHD_HTTP_NOT_FOUND;
		r->early_msg = sb_asprintf("no node '%s'", r->arg);
	}
}

/* ---- GET ---- */

static enum MHD_Result
serve_file(struct req *r)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".json", "application/json" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	const char *type = "application/octet-stream", *dot = strrchr(r->arg, '.');
	char *path = sb_asprintf("%s/%s", r->h->web_root, r->arg), *body;
	struct MHD_Response *resp;
	enum MHD_Result rc;
	size_t len;

	body = http_read_file(path, MAX_FILE, &len);
	free(path);
	if (body == NULL)
		return http_respond_error(r, MHD_HTTP_NOT_FOUND, "nothing at %s", r->url);
	for (size_t i = 0; dot && i < SB_ARRAY_LEN(types); i++)
		if (strcmp(dot, types[i].ext) == 0)
			type = types[i].type;
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	/* The page loads nothing from elsewhere and runs no inline code. */
	MHD_add_response_header(resp, "Content-Security-Policy",
	    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
	rc = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	r->responded = 1;
	http_count_code(r->h, MHD_HTTP_OK);
	return rc;
}

static enum MHD_Result
handle_get(struct req *r)
{
	struct httpd *h = r->h;

	switch (r->route) {
	case RT_HEALTH: {
		json_t *o = json_object();

		json_object_set_new(o, "ok", json_true());
		json_object_set_new(o, "version", json_string(SB_VERSION));
		json_object_set_new(o, "nodes", json_integer((json_int_t)sb_node_count()));
		return respond_json(r, MHD_HTTP_OK, o);
	}
	case RT_METRICS: {
		struct sb_buf b = { 0 };
		size_t len;

		http_metrics_text(h, &b);
		len = b.len;
		return respond(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		    sb_buf_steal(&b), len);
	}
	case RT_NODES:
		return respond_json(r, MHD_HTTP_OK, http_nodes_json(1));
	case RT_NODE:
		return respond_json(r, MHD_HTTP_OK, http_node_json(sb_node_find(r->arg), 1));
	case RT_EVENTS:
		return http_sse_start(r);
	case RT_FILE:
		return serve_file(r);
	default:
		return http_respond_error(r, MHD_HTTP_NOT_FOUND, "nothing at %s", r->url);
	}
}

/* ---- POST: commands ---- */

static json_t *
parse_body(struct req *r, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(r->body.buf ? r->body.buf : "", r->body.len, JSON_REJECT_DUPLICATES, &je);

	if (j == NULL)
		snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", je.line,
		    je.column, je.text);
	return j;
}

static void
cmd_unlink(struct req *r)
{
	for (struct req **p = &r->h->cmds; *p; p = &(*p)->next_cmd)
		if (*p == r) {
			*p = r->next_cmd;
			break;
		}
	r->running = 0;
	if (r->timer) {
		sb_loop_del_timer(sb_core.loop, r->timer);
		r->timer = NULL;
	}
}

/* Queue the answer of a finished (or timed-out) command. */
static enum MHD_Result
cmd_answer(struct req *r, int timed_out)
{
	struct httpd *h = r->h;
	const char *out = r->out.buf ? r->out.buf : "";
	json_t *o = json_object();
	unsigned status;

	if (timed_out) {
		h->cmd_timeout++;
		status = MHD_HTTP_GATEWAY_TIMEOUT;
		json_object_set_new(o, "ok", json_false());
		json_object_set_new(o, "error", json_string("the command did not finish in time; "
		    "it goes on, its later output is dropped"));
	} else if (!r->failed && r->confirm) {
		h->cmd_confirm++;
		status = MHD_HTTP_ACCEPTED;
		json_object_set_new(o, "ok", json_true());
		json_object_set_new(o, "confirm", json_string(r->confirm));
	} else if (!r->failed) {
		h->cmd_ok++;
		status = MHD_HTTP_OK;
		json_object_set_new(o, "ok", json_true());
	} else if (strncmp(out, "permission denied", 17) == 0 ||
	    strcmp(out, "not authorized") == 0) {
		h->cmd_refused++;
		status = MHD_HTTP_FORBIDDEN;
		json_object_set_new(o, "ok", json_false());
		json_object_set_new(o, "error", json_string(out));
	} else {
		h->cmd_failed++;
		status = MHD_HTTP_UNPROCESSABLE_CONTENT;
		json_object_set_new(o, "ok", json_false());
		json_object_set_new(o, "error", json_string(*out ? out : "the command failed"));
	}
	json_object_set_new(o, "output", json_string(out));
	if (r->out_cut)
		json_object_set_new(o, "truncated", json_true());
	return respond_json(r, status, o);
}

static long
on_cmd_timeout(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct req *r = ud;

	(void)loop;
	(void)t;
	r->timer = NULL;
	sb_notice("http %s: %s: command \"%.60s\" still running after %ld ms; answered 504",
	    r->h->ch->name, r->peer, r->url, r->h->command_timeout_ms);
	cmd_unlink(r);
	cmd_answer(r, 1);
	if (r->suspended) {
		r->suspended = 0;
		http_resume(r->h, r->conn);
	}
	return SB_TIMER_STOP;
}

static enum MHD_Result
handle_command(struct req *r)
{
	struct httpd *h = r->h;
	char err[256], conv[32];
	const char *text, *node = r->arg;
	json_t *j, *jn;
	struct sb_msg *m;

	if ((j = parse_body(r, err, sizeof(err))) == NULL)
		return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
	text = json_string_value(json_object_get(j, "command"));
	jn = json_object_get(j, "node");
	if (!json_is_object(j) || text == NULL || *text == '\0') {
		json_decref(j);
		return http_respond_error(r, MHD_HTTP_BAD_REQUEST,
		    "expected {\"command\": \"...\"} with a non-empty command");
	}
	if (node == NULL && jn && !json_is_null(jn)) {
		if ((node = json_string_value(jn)) == NULL) {
			json_decref(j);
			return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "'node' must be a string");
		}
		if (sb_node_find(node) == NULL) {
			enum MHD_Result rc = http_respond_error(r, MHD_HTTP_NOT_FOUND, "no node '%s'", node);

			json_decref(j);
			return rc;
		}
	}
	snprintf(conv, sizeof(conv), "r%lu", r->id);
	m = sb_msg_new(h->ch->name, r->identity, conv, text);
	if (node)
		sb_msg_set_node(m, node);
	/* Confirmation codes belong to the token, whichever connection. */
	sb_msg_set_session(m, r->identity);
	json_decref(j);
	r->running = 1;
	r->next_cmd = h->cmds;
	h->cmds = r;
	sb_dispatch(m);
	if (r->done)
		return cmd_answer(r, 0);
	if (h->stopped) {
		/* The command restarted or stopped this channel. */
		cmd_unlink(r);
		return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "the HTTP channel is restarting; the command's answer is lost");
	}
	/* It waits for hardware: park the connection until it ends. */
	r->timer = sb_loop_add_timer(sb_core.loop, h->command_timeout_ms, on_cmd_timeout, r);
	MHD_suspend_connection(r->conn);
	r->suspended = 1;
	return MHD_YES;
}

/* ---- POST: incoming webhooks ---- */

static int
is_node(const char *name, void *ud)
{
	(void)ud;
	return sb_node_find(name) != NULL;
}

/*
 * A webhook request whose events are on their way to the store.  It lives
 * apart from the request: the request may be gone (the channel stopped, the
 * answer timed out) before the last done callback runs, and then that
 * callback frees it.
 */
struct hookwait {
	struct req *r;		/* NULL once the request no longer waits */
	unsigned pending;	/* done callbacks still to come */
	unsigned failed;	/* events that could not be made durable */
	size_t  nevents;
	json_t *ids;		/* the new events' ids, "E12" */
};

static void
hookwait_detach(struct req *r)
{
	struct hookwait *w = r->wait;

	if (w == NULL)
		return;
	r->wait = NULL;
	w->r = NULL;
	if (w->pending == 0) {
		json_decref(w->ids);
		free(w);
	}
}

/* Every event is durable or failed: answer, if the request still waits. */
static void
hook_answer(struct req *r)
{
	struct hookwait *w = r->wait;
	struct hookin *k = r->hook;
	struct httpd *h = r->h;

	if (r->running)
		cmd_unlink(r);
	if (!r->responded) {
		if (w->failed) {
			k->failed++;
			sb_warnx("http %s: hook %s: %s: %u of %zu event%s not stored; answered 503",
			    h->ch->name, k->name, r->peer, w->failed, w->nevents,
			    w->nevents == 1 ? "" : "s");
			http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
			    "the events could not be stored; try again");
		} else {
			json_t *o = json_object();

			k->accepted++;
			k->events += w->nevents;
			sb_info("http %s: hook %s: %s: %zu event%s", h->ch->name, k->name, r->peer,
			    w->nevents, w->nevents == 1 ? "" : "s");
			json_object_set_new(o, "ok", json_true());
			json_object_set_new(o, "events", json_integer((json_int_t)w->nevents));
			json_object_set_new(o, "ids", json_incref(w->ids));
			respond_json(r, MHD_HTTP_OK, o);
		}
	}
	hookwait_detach(r);
	if (r->suspended) {
		r->suspended = 0;
		http_resume(h, r->conn);
	}
}

static void
on_event_done(void *ud, int ok)
{
	struct hookwait *w = ud;

	if (!ok)
		w->failed++;
	if (--w->pending > 0)
		return;
	if (w->r)
		hook_answer(w->r);
	else {
		json_decref(w->ids);
		free(w);
	}
}

static long
on_hook_timeout(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct req *r = ud;

	(void)loop;
	(void)t;
	r->timer = NULL;
	sb_warnx("http %s: hook %s: %s: the store did not commit within %ld ms; answered 503",
	    r->h->ch->name, r->hook->name, r->peer, r->h->command_timeout_ms);
	r->hook->failed++;
	cmd_unlink(r);
	http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
	    "the events were not stored in time; try again");
	hookwait_detach(r);
	if (r->suspended) {
		r->suspended = 0;
		http_resume(r->h, r->conn);
	}
	return SB_TIMER_STOP;
}

/*
 * Submit the events; the answer waits until the notifier says each is
 * durable (committed to the store), so a 2xx means the alert survives a
 * crash, and a 503 makes the sender try again.
 */
static enum MHD_Result
hook_submit(struct req *r, struct http_events *ev)
{
	struct hookwait *w = sb_calloc(1, sizeof(*w));
	struct httpd *h = r->h;

	w->r = r;
	w->nevents = ev->n;
	w->ids = json_array();
	w->pending = 1;		/* held until every event is submitted */
	r->wait = w;
	for (size_t i = 0; i < ev->n; i++) {
		struct sb_event_in in = {
			.source = r->hook->name,
			.node = ev->v[i].node,
			.severity = ev->v[i].severity,
			.text = ev->v[i].text,
			.key = ev->v[i].key,
			.resolved = ev->v[i].resolved,
		};
		int64_t id;

		w->pending++;
		if ((id = sb_event_submit(&in, on_event_done, w)) > 0) {
			char eid[32];

			snprintf(eid, sizeof(eid), "E%lld", (long long)id);
			json_array_append_new(w->ids, json_string(eid));
		}
	}
	http_events_free(ev);
	if (--w->pending == 0) {
		hook_answer(r);
		return MHD_YES;
	}
	/* Park the connection until the commit (a loop turn, normally). */
	r->running = 1;
	r->next_cmd = h->cmds;
	h->cmds = r;
	r->timer = sb_loop_add_timer(sb_core.loop, h->command_timeout_ms, on_hook_timeout, r);
	MHD_suspend_connection(r->conn);
	r->suspended = 1;
	return MHD_YES;
}

/* ---- Lua handlers ---- */

struct luacall {
	struct req *r;
	json_t *payload;
	struct http_lua_header hdr[HTTP_LUA_MAX_HEADERS];
	size_t  nhdr;
	struct http_events *out;
};

static enum MHD_Result
collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct luacall *c = cls;

	(void)kind;
	if (c->nhdr == HTTP_LUA_MAX_HEADERS)
		return MHD_NO;
	c->hdr[c->nhdr].name = key;
	c->hdr[c->nhdr].value = value;
	c->nhdr++;
	return MHD_YES;
}

static void
lua_push_args(lua_State *L, void *ud)
{
	static const char *const hide[] = { "Authorization", "Proxy-Authorization", "Cookie", NULL };
	struct luacall *c = ud;

	http_lua_push_json(L, c->payload, HTTP_LUA_MAX_DEPTH, HTTP_LUA_MAX_VALUES);
	http_lua_push_request(L, c->r->hook->name, c->r->method, c->r->url, c->r->peer,
	    c->hdr, c->nhdr, hide);
}

static void
lua_event(void *ud, const struct sb_dialplan_event *e)
{
	struct luacall *c = ud;
	char *key = e->key ? sb_asprintf("%s:%s", c->r->hook->name, e->key) : NULL;

	http_events_add(c->out, e->node, e->severity, e->text, key, e->resolved);
	free(key);
}

/* Run the hook's Lua handler on payload (borrowed); 0, or -1 with err. */
static int
run_lua_handler(struct req *r, json_t *payload, struct http_events *out, char *err,
                size_t errlen)
{
	struct luacall c = { .r = r, .payload = payload, .out = out };
	char msg[1024];

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, collect_header, &c);
	if (sb_dialplan_webhook(r->hook->lua, lua_push_args, &c, lua_event, &c, msg,
	    sizeof(msg)) < 0) {
		http_events_free(out);
		sb_warnx("http %s: hook %s: %s: Lua handler %s failed: %s", r->h->ch->name,
		    r->hook->name, r->peer, r->hook->lua, msg);
		msg[strcspn(msg, "\n")] = '\0';	/* the sender gets the first line */
		snprintf(err, errlen, "handler %s: %s", r->hook->lua, msg);
		return -1;
	}
	return 0;
}

/* Why the signature is refused, or NULL if it is right. */
static const char *
signature_refusal(struct req *r)
{
	struct hookin *k = r->hook;
	const char *sig = header(r, k->hmac_header), *ts;
	const char *body = r->body.buf ? r->body.buf : "";

	if (sig == NULL)
		return "no signature";
	if (k->ts_header == NULL)
		return http_hmac_check(k->hmac_secret, body, r->body.len, sig) ? NULL :
		    "signature mismatch";
	if ((ts = header(r, k->ts_header)) == NULL)
		return "no signed timestamp";
	if (!http_hmac_check_ts(k->hmac_secret, ts, body, r->body.len, sig))
		return "signature mismatch";
	/* Checked after the signature, so only the sender learns of its clock. */
	if (!http_timestamp_fresh(ts, time(NULL), k->max_skew))
		return "stale or bad timestamp";
	return NULL;
}

static enum MHD_Result
handle_hook(struct req *r)
{
	struct hookin *k = r->hook;
	struct http_events ev = { 0 };
	const char *why;
	char err[1100];
	json_t *j;

	if (k->hmac_secret && (why = signature_refusal(r)) != NULL) {
		k->unauthorized++;
		sb_notice("http %s: hook %s: %s: refused: %s", r->h->ch->name, k->name, r->peer, why);
		return http_respond_error(r, MHD_HTTP_UNAUTHORIZED, "%s", why);
	}
	if ((j = parse_body(r, err, sizeof(err))) == NULL) {
		k->bad_request++;
		sb_notice("http %s: hook %s: %s: %s", r->h->ch->name, k->name, r->peer, err);
		return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
	}
	if (k->lua) {
		/* A script's error is the server's: 500, so the sender retries. */
		if (run_lua_handler(r, j, &ev, err, sizeof(err)) < 0) {
			json_decref(j);
			k->failed++;
			return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
		}
	} else if (http_hook_adapt(k->format, k->name, j, k->dedup, is_node, NULL, &ev, err,
	    sizeof(err)) < 0) {
		json_decref(j);
		k->bad_request++;
		sb_notice("http %s: hook %s: %s: %s payload refused: %s", r->h->ch->name, k->name,
		    r->peer, http_hook_format_name(k->format), err);
		return http_respond_error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
	}
	json_decref(j);
	return hook_submit(r, &ev);
}

/* ---- the request handler ---- */

static struct req *
req_new(struct httpd *h, struct MHD_Connection *c, const char *url, const char *method)
{
	struct req *r = sb_calloc(1, sizeof(*r));
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	r->h = h;
	r->conn = c;
	r->id = ++h->next_id;
	r->url = sb_strdup(url);
	sb_strlcpy(r->method, method, sizeof(r->method));
	sb_strlcpy(r->peer, "?", sizeof(r->peer));
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->peer,
			    sizeof(r->peer));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->peer,
			    sizeof(r->peer));
	}
	return r;
}

static void
req_free(struct req *r)
{
	if (r->running)
		cmd_unlink(r);
	hookwait_detach(r);
	free(r->url);
	free(r->arg);
	free(r->early_msg);
	free(r->confirm);
	sb_buf_free(&r->body);
	sb_buf_free(&r->out);
	free(r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	if (*ctx)
		req_free(*ctx);
	*ctx = NULL;
}

/* Bodies of requests refused from their headers are read and thrown away
 * up to this much, so the client reads the answer rather than a reset;
 * past it, or with "Expect: 100-continue", the answer goes at once. */
static size_t
drain_limit(const struct httpd *h)
{
	return h->max_body * 4;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *data, size_t *size, void **ctx)
{
	struct httpd *h = cls;
	struct req *r = *ctx;

	(void)version;
	if (r == NULL) {
		const char *cl, *expect;
		unsigned long long len;

		*ctx = r = req_new(h, c, url, method);
		if (h->stopped)
			return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
		route(r);
		if (strcmp(method, "POST") != 0)
			return r->early ? http_respond_error(r, (unsigned)r->early, "%s", r->early_msg) :
			    handle_get(r);
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
		len = cl ? strtoull(cl, NULL, 10) : 0;
		if (!r->early && len > h->max_body) {
			r->early = MHD_HTTP_CONTENT_TOO_LARGE;
			r->early_msg = sb_asprintf("the body is %llu bytes; the limit is %zu",
			    len, h->max_body);
		}
		if (r->early && ((expect && strcasecmp(expect, "100-continue") == 0) ||
		    len > drain_limit(h)))
			return http_respond_error(r, (unsigned)r->early, "%s", r->early_msg);
		return MHD_YES;
	}
	if (*size) {
		r->seen += *size;
		if (!r->early && r->body.len + *size > h->max_body) {
			r->early = MHD_HTTP_CONTENT_TOO_LARGE;
			r->early_msg = sb_asprintf("the body is over the limit of %zu bytes", h->max_body);
			sb_buf_free(&r->body);
		}
		if (!r->early)
			sb_buf_add(&r->body, data, *size);
		*size = 0;
		/* Past the drain limit without a length: cut the connection. */
		return r->seen > drain_limit(h) ? MHD_NO : MHD_YES;
	}
	if (r->responded || r->suspended)
		return MHD_YES;
	if (h->stopped)
		return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
	if (r->early)
		return http_respond_error(r, (unsigned)r->early, "%s", r->early_msg);
	return r->route == RT_HOOK ? handle_hook(r) : handle_command(r);
}

/* ---- the driver ---- */

static void on_out_result(void *, uint64_t, enum http_out_result);

static int
http_open(struct sb_channel *ch, const config_setting_t *s, char *err, size_t errlen)
{
	struct httpd *h = sb_calloc(1, sizeof(*h));

	h->ch = ch;
	h->lfd = h->efd = -1;
	ch->priv = h;
	if (http_conf_parse(h, s, err, errlen) < 0) {
		http_conf_free(h);
		free(h);
		ch->priv = NULL;
		return -1;
	}
	http_out_set_result(h->out, on_out_result, h);
	return 0;
}

static int
listen_on(struct httpd *h)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
	    .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int one = 1, rc;

	snprintf(port, sizeof(port), "%d", h->port);
	if ((rc = getaddrinfo(h->bind, port, &hints, &ai)) != 0) {
		sb_warnx("http %s: %s: %s", h->ch->name, h->bind, gai_strerror(rc));
		return -1;
	}
	h->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->lfd < 0) {
		sb_warn("http %s: socket", h->ch->name);
		freeaddrinfo(ai);
		return -1;
	}
	setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(h->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(h->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(h->lfd, 128) < 0) {
		sb_warn("http %s: listen on %s port %d", h->ch->name, h->bind, h->port);
		freeaddrinfo(ai);
		close(h->lfd);
		h->lfd = -1;
		return -1;
	}
	freeaddrinfo(ai);
	h->bound_port = h->port;
	if (getsockname(h->lfd, (struct sockaddr *)&ss, &sl) == 0)
		h->bound_port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void http_stop(struct sb_channel *);

static int
http_start(struct sb_channel *ch)
{
	struct httpd *h = ch->priv;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET |
	    MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h },
		{ MHD_OPTION_CONNECTION_TIMEOUT, h->idle_timeout, NULL },
		{ MHD_OPTION_CONNECTION_LIMIT, h->max_conns + 1, NULL },
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h },
		{ h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->tls_cert },
		{ h->tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};

	h->stopped = 0;
	h->dead_mhd = 0;
	if (h->tls_cert)
		flags |= MHD_USE_TLS;
	if (listen_on(h) < 0)
		return -1;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (h->mhd == NULL) {
		sb_warnx("http %s: libmicrohttpd did not start%s", ch->name,
		    h->tls_cert ? " (is the TLS key the certificate's?)" : "");
		goto fail;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	h->efd = info ? info->epoll_fd : -1;
	if (h->efd < 0 || sb_loop_add_fd(sb_core.loop, h->efd, SB_READ, on_epoll, h) < 0 ||
	    sb_loop_add_fd(sb_core.loop, h->lfd, SB_READ, on_accept, h) < 0) {
		sb_warnx("http %s: cannot watch its sockets", ch->name);
		goto fail;
	}
	h->keepalive = sb_loop_add_timer(sb_core.loop, h->keepalive_ms, http_sse_keepalive, h);
	if (http_out_start(h->out, sb_core.loop) < 0)
		sb_warnx("http %s: outgoing webhooks are disabled", ch->name);
	rearm(h);
	sb_info("http %s: listening on %s://%s%s%s:%d/", ch->name, h->tls_cert ? "https" : "http",
	    strchr(h->bind, ':') ? "[" : "", h->bind, strchr(h->bind, ':') ? "]" : "",
	    h->bound_port);
	return 0;
fail:
	http_stop(ch);
	return -1;
}

static void
stop_daemon(struct httpd *h)
{
	if (h->mhd == NULL)
		return;
	/* libmicrohttpd must not be stopped with a connection suspended:
	 * answer the waiting commands, end the streams, resume them all, and
	 * give it a few turns to send what that says. */
	while (h->cmds) {
		struct req *r = h->cmds;

		cmd_unlink(r);
		if (r->suspended && !r->responded)
			http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
		if (r->suspended) {
			r->suspended = 0;
			MHD_resume_connection(r->conn);
		}
	}
	http_sse_close_all(h);
	/* A few turns: resume, read the streams' end, send it. */
	for (int i = 0; i < 4; i++)
		MHD_run(h->mhd);
	MHD_stop_daemon(h->mhd);
	h->mhd = NULL;
}

static void
http_stop(struct sb_channel *ch)
{
	struct httpd *h = ch->priv;

	if (h == NULL)
		return;
	h->stopped = 1;
	http_out_stop(h->out);
	if (h->keepalive) {
		sb_loop_del_timer(sb_core.loop, h->keepalive);
		h->keepalive = NULL;
	}
	if (h->timer) {
		sb_loop_del_timer(sb_core.loop, h->timer);
		h->timer = NULL;
	}
	if (h->kick) {
		sb_loop_del_timer(sb_core.loop, h->kick);
		h->kick = NULL;
	}
	/* The port is freed now, so a restarted channel can listen at once. */
	if (h->lfd >= 0) {
		sb_loop_del_fd(sb_core.loop, h->lfd);
		close(h->lfd);
		h->lfd = -1;
	}
	if (h->efd >= 0) {
		sb_loop_del_fd(sb_core.loop, h->efd);
		h->efd = -1;	/* libmicrohttpd's: it closes it */
	}
	/* Stopped by a command that came through this very channel: the
	 * daemon is inside MHD_run() up the stack.  close() finishes it. */
	if (h->in_mhd)
		h->dead_mhd = 1;
	else
		stop_daemon(h);
}

static void
http_close(struct sb_channel *ch)
{
	struct httpd *h = ch->priv;

	if (h == NULL)
		return;
	http_stop(ch);
	h->in_mhd = 0;
	stop_daemon(h);
	http_conf_free(h);
	free(h);
	ch->priv = NULL;
}

static int
http_reply(struct sb_channel *ch, const struct sb_msg *req, const char *text, unsigned flags)
{
	struct httpd *h = ch->priv;
	unsigned long id;
	struct req *r;

	if (req->conv[0] != 'r')
		return 0;
	id = strtoul(req->conv + 1, NULL, 10);
	for (r = h->cmds; r; r = r->next_cmd)
		if (r->id == id)
			break;
	if (r == NULL) {
		sb_debug("http %s: a reply for a request that is gone was dropped", ch->name);
		return 0;
	}
	if (text && *text && !r->out_cut) {
		if (r->out.len + strlen(text) + 1 > MAX_OUTPUT) {
			r->out_cut = 1;
		} else {
			if (r->out.len)
				sb_buf_puts(&r->out, "\n");
			sb_buf_puts(&r->out, text);
		}
	}
	if (!(flags & SB_REPLY_DONE))
		return 0;
	r->done = 1;
	r->failed = (flags & SB_REPLY_FAIL) != 0;
	r->confirm = sb_strdup(req->confirm);
	cmd_unlink(r);
	if (r->suspended) {
		/* A suspended connection may be given its answer at any time. */
		cmd_answer(r, 0);
		r->suspended = 0;
		http_resume(h, r->conn);
	}
	return 0;
}

/* The default audience: the status pages that are open. */
static void
sse_notice(struct httpd *h, const char *text, uint64_t id)
{
	json_t *o = json_object();

	if (id)
		json_object_set_new(o, "id", json_integer((json_int_t)id));
	json_object_set_new(o, "text", json_string(text));
	json_object_set_new(o, "time", json_integer((json_int_t)time(NULL)));
	http_sse_broadcast(h, "notice", o);
}

static int
http_send(struct sb_channel *ch, const char *to, const char *text)
{
	struct httpd *h = ch->priv;

	if (to == NULL || *to == '\0') {
		sse_notice(h, text, 0);
		return 0;
	}
	switch (http_out_send(h->out, to, text)) {
	case 0:
		return 0;
	case -1:
		sb_warnx("http %s: no webhook named \"%s\"", ch->name, to);
		return -1;
	default:
		return -1;
	}
}

/* An outgoing webhook's outcome for a spooled notice (see http_deliver). */
static void
on_out_result(void *ud, uint64_t id, enum http_out_result res)
{
	(void)ud;
	sb_notice_result(id, res == HTTP_OUT_DONE ? SB_SEND_DONE :
	    res == HTTP_OUT_LATER ? SB_SEND_LATER : SB_SEND_FAIL);
}

/*
 * A spooled notice.  To the default audience (the open status pages) it is
 * done once broadcast: a page that is not open has nothing to catch up.
 * To a webhook it is one POST, whose outcome comes back through
 * on_out_result(): 2xx done; no answer, 5xx, 408 or 429 later (the spool
 * retries with its own backoff); any other status a failure.
 */
static int
http_deliver(struct sb_channel *ch, const struct sb_notice *n)
{
	struct httpd *h = ch->priv;
	char *body;

	if (n->to == NULL || *n->to == '\0') {
		sse_notice(h, n->text, n->id);
		return SB_SEND_DONE;
	}
	if (!http_out_has(h->out, n->to)) {
		sb_warnx("http %s: no webhook named \"%s\"; notice %llu dropped", ch->name, n->to,
		    (unsigned long long)n->id);
		return SB_SEND_FAIL;
	}
	if (h->stopped)
		return SB_SEND_LATER;
	body = http_out_notice_body(http_out_format_of(h->out, n->to), ch->name, n->text,
	    n->json, time(NULL));
	switch (http_out_deliver(h->out, n->to, n->id, n->attempt, body)) {
	case 0:
		return SB_SEND_PENDING;
	case -1:
		return SB_SEND_FAIL;
	default:
		return SB_SEND_LATER;
	}
}

static int
http_presence(struct sb_channel *ch, const struct sb_node *n)
{
	http_sse_broadcast(ch->priv, "node", http_node_json(n, 1));
	return 0;
}

static void
http_describe(struct sb_channel *ch, struct sb_buf *b)
{
	struct httpd *h = ch->priv;
	const union MHD_DaemonInfo *info = h->mhd ?
	    MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;

	sb_buf_printf(b, "%s://%s%s%s:%d/, %u connection%s, %zu event stream%s, %zu hook%s in, "
	    "%zu webhook%s out (%zu waiting)", h->tls_cert ? "https" : "http",
	    strchr(h->bind, ':') ? "[" : "", h->bind, strchr(h->bind, ':') ? "]" : "",
	    h->bound_port ? h->bound_port : h->port, info ? info->num_connections : 0,
	    info && info->num_connections == 1 ? "" : "s", h->nstreams,
	    h->nstreams == 1 ? "" : "s", h->nhooks, h->nhooks == 1 ? "" : "s",
	    http_out_count(h->out), http_out_count(h->out) == 1 ? "" : "s",
	    http_out_queued(h->out));
}

const struct sb_channel_driver sb_chan_http = {
	.name = "http",
	.abi = SB_CHANNEL_ABI,
	.keys = http_keys,
	.open = http_open,
	.start = http_start,
	.reply = http_reply,
	.send = http_send,
	.deliver = http_deliver,
	.presence = http_presence,
	.describe = http_describe,
	.stop = http_stop,
	.close = http_close,
};
