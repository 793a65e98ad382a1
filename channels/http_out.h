/*
 * http_out.h: outgoing webhooks.  Each named webhook is a URL that
 * notifications are POSTed to as JSON, one at a time and in order, with a
 * timeout and the outcome logged.  A spooled notice (http_out_deliver) is
 * tried once per call and its outcome reported to the result callback:
 * the spool retries with its own backoff and keeps it across restarts.
 * Text sent directly (http_out_send: no spool in effect) is retried here,
 * in memory, with exponential backoff.
 * Transfers run on libcurl's multi interface driven by the core loop (its
 * sockets and timer are loop fds and a loop timer), so nothing blocks.
 * Loop thread only.
 */
#ifndef SB_HTTP_OUT_H
#define SB_HTTP_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct sb_buf;
struct sb_loop;

enum http_out_format {
	HTTP_OUT_SLACK,		/* {"text": ...}: Slack, Mattermost, Rocket.Chat */
	HTTP_OUT_JSON,		/* {"text": ..., "channel": ..., "time": ...} */
};

struct http_webhook_conf {
	char   *name;
	char   *url;
	enum http_out_format format;
	char   *bearer;		/* Authorization: Bearer, or NULL */
	long    timeout_ms;	/* one attempt */
	int     max_attempts;	/* then the notification is dropped, and logged */
	long    retry_ms;	/* first retry delay; doubles up to retry_max_ms */
	long    retry_max_ms;
	size_t  queue_max;	/* waiting notifications; new ones past it are dropped */
};

struct http_out;

/* The outcome of one attempt at a spooled notice. */
enum http_out_result {
	HTTP_OUT_DONE,		/* 2xx */
	HTTP_OUT_LATER,		/* no answer, 5xx, 408, 429: try again later */
	HTTP_OUT_FAIL,		/* any other status: it will not change */
};
typedef void http_out_result_fn(void *ud, uint64_t id, enum http_out_result);

/* Takes confs (an array of n) and every string in them. */
struct http_out *http_out_new(const char *chan, struct http_webhook_conf *confs, size_t n);
void http_out_free(struct http_out *);		/* NULL-safe; stops first */
int  http_out_start(struct http_out *, struct sb_loop *);
void http_out_stop(struct http_out *);		/* idempotent; keeps the queue */

/* Queue text for the webhook named name (text copied).  0, -1 if there is
 * no such webhook, -2 if its queue is full (dropped, logged). */
int  http_out_send(struct http_out *, const char *name, const char *text);
/* Where the outcomes of spooled notices go (loop thread; never called from
 * inside http_out_deliver()). */
void http_out_set_result(struct http_out *, http_out_result_fn *, void *ud);
/* Queue spooled notice id (attempt: the spool's count, for the log) for
 * one POST of body (taken).  0 (the outcome comes to the result
 * callback), -1 if there is no such webhook, -2 if it cannot be taken now
 * (stopped, or the queue is full: the spool tries again later).  An id
 * already queued is not queued twice. */
int  http_out_deliver(struct http_out *, const char *name, uint64_t id, unsigned attempt,
                      char *body);
/* The body of a spooled notice for a webhook of format f: {"text"} for
 * slack, the notice's JSON (json, borrowed) with "channel" and "time"
 * added for json.  The caller frees it. */
char *http_out_notice_body(enum http_out_format, const char *chan, const char *text,
                           const char *json, time_t);
enum http_out_format http_out_format_of(const struct http_out *, const char *name);
int  http_out_has(const struct http_out *, const char *name);
size_t http_out_count(const struct http_out *);
size_t http_out_queued(const struct http_out *);

/* The request body for text; the caller frees it. */
char *http_out_body(enum http_out_format, const char *chan, const char *text, time_t);
/* Should a failed attempt with this HTTP status (0: no answer) be retried? */
int  http_out_retryable(long status);
/* Delay before retry number attempt (1, 2, ...): retry_ms doubled each
 * time, at most retry_max_ms. */
long http_out_backoff(long retry_ms, long retry_max_ms, int attempt);

/* Prometheus families for the webhooks, appended to b. */
void http_out_metrics(const struct http_out *, struct sb_buf *);

#endif
