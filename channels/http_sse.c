/*
 * http_sse.c: the live event stream, GET /api/events (Server-Sent Events).
 * A new client first gets a "snapshot" event with every node; then a
 * "node" event for each change presence() reports and a "notice" event
 * for each notification routed to the channel's default audience; a
 * comment line every keep-alive period shows a dead client.
 *
 * A stream with nothing to send parks its connection (suspends it);
 * queuing text resumes it.  A client that falls more than 1 MiB behind is
 * dropped rather than kept in memory.
 */
#include <string.h>

#include "channel.h"
#include "http_render.h"
#include "http_server.h"
#include "log.h"
#include "loop.h"
#include "util.h"

#define MAX_SSE_QUEUE	(1u << 20)	/* a stream that reads nothing is dropped */

static ssize_t
sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	size_t n;

	(void)pos;
	/* A channel that stops ends the stream properly (EventSource then
	 * reconnects); a client dropped for reading too slowly is cut off. */
	if (s->closing)
		return s->closing == SSE_CUT ? MHD_CONTENT_READER_END_WITH_ERROR :
		    MHD_CONTENT_READER_END_OF_STREAM;
	if (s->off == s->q.len) {
		/* Nothing to send: park the connection until sse_push(). */
		s->q.len = s->off = 0;
		MHD_suspend_connection(s->conn);
		s->suspended = 1;
		return 0;
	}
	n = s->q.len - s->off < max ? s->q.len - s->off : max;
	memcpy(buf, s->q.buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void
sse_free(void *cls)
{
	struct sse *s = cls;
	struct httpd *h = s->h;

	for (struct sse **p = &h->streams; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			h->nstreams--;
			break;
		}
	sb_buf_free(&s->q);
	free(s);
}

static void
sse_wake(struct sse *s)
{
	if (s->suspended) {
		s->suspended = 0;
		http_resume(s->h, s->conn);
	}
}

/* Queue text on one stream; a stream too far behind is dropped. */
static void
sse_push(struct sse *s, const char *text)
{
	if (s->closing)
		return;
	if (s->q.len - s->off + strlen(text) > MAX_SSE_QUEUE) {
		sb_notice("http %s: an event stream reads too slowly; closed", s->h->ch->name);
		s->closing = SSE_CUT;
	} else {
		sb_buf_puts(&s->q, text);
	}
	sse_wake(s);
}

/* "event: <name>\ndata: <obj as JSON>\n\n" to every stream; obj taken. */
void
http_sse_broadcast(struct httpd *h, const char *event, json_t *obj)
{
	char *data, *text;

	if (h->streams == NULL || h->stopped) {
		json_decref(obj);
		return;
	}
	data = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (data == NULL)
		return;
	text = sb_asprintf("event: %s\ndata: %s\n\n", event, data);
	free(data);
	for (struct sse *s = h->streams; s; s = s->next)
		sse_push(s, text);
	free(text);
}

long
http_sse_keepalive(struct sb_loop *loop, struct sb_timer *t, void *ud)
{
	struct httpd *h = ud;

	(void)loop;
	(void)t;
	/* Also how a client that went away is noticed: the write fails. */
	for (struct sse *s = h->streams; s; s = s->next)
		if (s->q.len == s->off)
			sse_push(s, ": keepalive\n\n");
	return h->keepalive_ms;
}

enum MHD_Result
http_sse_start(struct req *r)
{
	struct httpd *h = r->h;
	struct MHD_Response *resp;
	struct sse *s;
	json_t *nodes;
	char *snap;
	enum MHD_Result rc;

	if (h->nstreams >= h->max_streams)
		return http_respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams");
	s = sb_calloc(1, sizeof(*s));
	s->h = h;
	s->conn = r->conn;
	/* The first event is the whole farm, so a client needs no separate
	 * GET and misses no change between the two. */
	nodes = http_nodes_json(1);
	snap = json_dumps(nodes, JSON_COMPACT);
	json_decref(nodes);
	sb_buf_printf(&s->q, "retry: 2000\n\nevent: snapshot\ndata: %s\n\n", snap ? snap : "{}");
	free(snap);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, s, sse_free);
	if (resp == NULL) {
		sb_buf_free(&s->q);
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	http_common_headers(resp);
	s->next = h->streams;
	h->streams = s;
	h->nstreams++;
	rc = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	r->responded = 1;
	http_count_code(h, MHD_HTTP_OK);
	sb_debug("http %s: %s: event stream opened (%zu)", h->ch->name, r->peer, h->nstreams);
	return rc;
}

void
http_sse_close_all(struct httpd *h)
{
	for (struct sse *s = h->streams; s; s = s->next) {
		s->closing = SSE_END;
		sse_wake(s);
	}
}
