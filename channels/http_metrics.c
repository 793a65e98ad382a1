/*
 * http_metrics.c: GET /metrics in Prometheus' text format (version 0.0.4):
 * the node model, this channel's requests, connections, streams, API
 * commands, incoming webhook results and outgoing webhook deliveries; then
 * what the core counts: every channel's messages and reconnects, commands
 * by outcome, the notifier and its spool, the store.
 */
#include <microhttpd.h>

#include "channel.h"
#include "dispatch.h"
#include "http_out.h"
#include "http_render.h"
#include "http_server.h"
#include "notify.h"
#include "store.h"
#include "util.h"

static void
counter(struct sb_buf *b, const char *name, const char *help, uint64_t v)
{
	http_prom_head(b, name, "counter", help);
	sb_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
gauge(struct sb_buf *b, const char *name, const char *help, double v)
{
	http_prom_head(b, name, "gauge", help);
	sb_buf_printf(b, "%s %.9g\n", name, v);
}

/* One sample of a per-channel family: name{channel,driver[,extra]} v. */
static void
chan_sample(struct sb_buf *b, const char *name, const struct sb_channel *ch,
            const char *extra, uint64_t v)
{
	sb_buf_printf(b, "%s{channel=\"", name);
	http_prom_label(b, ch->name);
	sb_buf_puts(b, "\",driver=\"");
	http_prom_label(b, ch->drv->name);
	sb_buf_printf(b, "\"%s} %llu\n", extra ? extra : "", (unsigned long long)v);
}

/* What the core counts for every channel, the dispatcher, the notifier
 * and the store: the same on every HTTP channel's page. */
static void
core_metrics(struct sb_buf *b)
{
	struct sb_dispatch_stats ds;
	struct sb_notify_stats ns;
	struct sb_store_stats ss;
	size_t n = sb_channel_count();

	http_prom_head(b, "switchboard_channel_up", "gauge",
	    "1 if the channel instance is started (connected or listening).");
	for (size_t i = 0; i < n; i++)
		chan_sample(b, "switchboard_channel_up", sb_channel_at(i), NULL,
		    sb_channel_at(i)->started ? 1 : 0);
	http_prom_head(b, "switchboard_channel_messages_total", "counter",
	    "Chat messages by channel: in, handed to the dispatcher; out, replies and "
	    "notifications sent.");
	for (size_t i = 0; i < n; i++) {
		const struct sb_channel *ch = sb_channel_at(i);

		chan_sample(b, "switchboard_channel_messages_total", ch, ",direction=\"in\"",
		    ch->msgs_in);
		chan_sample(b, "switchboard_channel_messages_total", ch, ",direction=\"out\"",
		    ch->msgs_out);
	}
	http_prom_head(b, "switchboard_channel_reconnects_total", "counter",
	    "Connections a channel re-established after losing them.");
	for (size_t i = 0; i < n; i++)
		chan_sample(b, "switchboard_channel_reconnects_total", sb_channel_at(i), NULL,
		    sb_channel_at(i)->reconnects);

	sb_dispatch_stats(&ds);
	http_prom_head(b, "switchboard_commands_total", "counter",
	    "Commands on every channel by outcome (refused: unknown sender, permission, "
	    "an ACL rule or the rate limit).");
	sb_buf_printf(b, "switchboard_commands_total{result=\"ok\"} %llu\n",
	    (unsigned long long)ds.ok);
	sb_buf_printf(b, "switchboard_commands_total{result=\"failed\"} %llu\n",
	    (unsigned long long)ds.failed);
	sb_buf_printf(b, "switchboard_commands_total{result=\"refused\"} %llu\n",
	    (unsigned long long)ds.refused);
	counter(b, "switchboard_commands_rate_limited_total",
	    "Commands refused by the rate limit (also counted as refused).", ds.rate_limited);

	sb_notify_stats(&ns);
	counter(b, "switchboard_events_total", "Events accepted by the notifier.", ns.events);
	counter(b, "switchboard_events_deduplicated_total",
	    "Events dropped as duplicates of an open event with the same key.", ns.deduplicated);
	counter(b, "switchboard_events_muted_total",
	    "Events muted by a silence or maintenance.", ns.muted);
	gauge(b, "switchboard_events_open", "Open events (not resolved).", (double)ns.open_events);
	counter(b, "switchboard_notifications_spooled_total",
	    "Notifications written to the spool.", ns.messages);
	counter(b, "switchboard_notifications_delivered_total",
	    "Notifications their channel confirmed.", ns.delivered);
	counter(b, "switchboard_notifications_retries_total",
	    "Delivery attempts that failed and are retried.", ns.retries);
	counter(b, "switchboard_notifications_failed_total",
	    "Notifications dropped after a permanent failure.", ns.failed);
	counter(b, "switchboard_notifications_dropped_total",
	    "Notifications dropped past the spool's cap or age.", ns.dropped);
	counter(b, "switchboard_notifications_escalations_total",
	    "Unacknowledged events sent on to a next tier.", ns.escalations);
	gauge(b, "switchboard_spool_depth", "Notifications waiting for delivery.",
	    (double)ns.spool_depth);

	sb_store_stats(&ss);
	counter(b, "switchboard_store_commits_total", "Commits of the durable store.", ss.commits);
	counter(b, "switchboard_store_commit_failures_total",
	    "Commits of the durable store that failed.", ss.commit_failures);
	gauge(b, "switchboard_store_last_commit_seconds", "How long the last commit took.",
	    (double)ss.last_commit_us / 1e6);
}

void
http_metrics_text(struct httpd *h, struct sb_buf *b)
{
	const char *ch = h->ch->name;

	http_prom_head(b, "switchboard_build_info", "gauge", "Always 1; the version in a label.");
	sb_buf_printf(b, "switchboard_build_info{version=\"%s\"} 1\n", SB_VERSION);
	http_prom_nodes(b);

	http_prom_head(b, "switchboard_http_requests_total", "counter",
	    "HTTP requests answered, by status code.");
	for (size_t i = 0; i < HTTP_MAX_CODES && h->codes[i].code; i++) {
		sb_buf_puts(b, "switchboard_http_requests_total{channel=\"");
		http_prom_label(b, ch);
		sb_buf_printf(b, "\",code=\"%u\"} %lu\n", h->codes[i].code, h->codes[i].n);
	}
	http_prom_head(b, "switchboard_http_connections_refused_total", "counter",
	    "Connections turned away: over max_connections, or a descriptor past 1023.");
	sb_buf_puts(b, "switchboard_http_connections_refused_total{channel=\"");
	http_prom_label(b, ch);
	sb_buf_printf(b, "\",reason=\"limit\"} %lu\n", h->refused_limit);
	sb_buf_puts(b, "switchboard_http_connections_refused_total{channel=\"");
	http_prom_label(b, ch);
	sb_buf_printf(b, "\",reason=\"descriptor\"} %lu\n", h->refused_fd);
	http_prom_head(b, "switchboard_http_accept_pauses_total", "counter",
	    "Times the channel stopped accepting for a while: no descriptor was left.");
	sb_buf_puts(b, "switchboard_http_accept_pauses_total{channel=\"");
	http_prom_label(b, ch);
	sb_buf_printf(b, "\"} %lu\n", h->accept_pauses);
	{
		const union MHD_DaemonInfo *info = h->mhd ?
		    MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;

		http_prom_head(b, "switchboard_http_connections", "gauge", "Open HTTP connections.");
		sb_buf_puts(b, "switchboard_http_connections{channel=\"");
		http_prom_label(b, ch);
		sb_buf_printf(b, "\"} %u\n", info ? info->num_connections : 0);
	}
	http_prom_head(b, "switchboard_http_event_streams", "gauge", "Open /api/events streams.");
	sb_buf_puts(b, "switchboard_http_event_streams{channel=\"");
	http_prom_label(b, ch);
	sb_buf_printf(b, "\"} %zu\n", h->nstreams);

	http_prom_head(b, "switchboard_http_commands_total", "counter",
	    "Commands run through the API, by result (refused: not authorized or permission denied).");
	{
		static const char *const names[] = { "ok", "failed", "refused", "confirm", "timeout" };
		unsigned long v[] = { h->cmd_ok, h->cmd_failed, h->cmd_refused, h->cmd_confirm,
		    h->cmd_timeout };

		for (size_t i = 0; i < SB_ARRAY_LEN(names); i++) {
			sb_buf_puts(b, "switchboard_http_commands_total{channel=\"");
			http_prom_label(b, ch);
			sb_buf_printf(b, "\",result=\"%s\"} %lu\n", names[i], v[i]);
		}
	}

	http_prom_head(b, "switchboard_webhook_requests_total", "counter",
	    "Incoming webhook requests, by result.");
	for (size_t i = 0; i < h->nhooks; i++) {
		static const char *const names[] = { "accepted", "unauthorized", "bad_request", "error" };
		const struct hookin *k = &h->hooks[i];
		unsigned long v[] = { k->accepted, k->unauthorized, k->bad_request, k->failed };

		for (size_t j = 0; j < SB_ARRAY_LEN(names); j++) {
			sb_buf_puts(b, "switchboard_webhook_requests_total{channel=\"");
			http_prom_label(b, ch);
			sb_buf_puts(b, "\",hook=\"");
			http_prom_label(b, k->name);
			sb_buf_printf(b, "\",result=\"%s\"} %lu\n", names[j], v[j]);
		}
	}
	http_prom_head(b, "switchboard_webhook_events_total", "counter",
	    "Events made from incoming webhooks.");
	for (size_t i = 0; i < h->nhooks; i++) {
		sb_buf_puts(b, "switchboard_webhook_events_total{channel=\"");
		http_prom_label(b, ch);
		sb_buf_puts(b, "\",hook=\"");
		http_prom_label(b, h->hooks[i].name);
		sb_buf_printf(b, "\"} %lu\n", h->hooks[i].events);
	}
	http_out_metrics(h->out, b);
	core_metrics(b);
}
