/*
 * http_metrics.c: GET /metrics in Prometheus' text format (version 0.0.4):
 * the node model, this channel's requests, connections, streams, API
 * commands, incoming webhook results and outgoing webhook deliveries.
 */
#include <microhttpd.h>

#include "channel.h"
#include "http_out.h"
#include "http_render.h"
#include "http_server.h"
#include "util.h"

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
}
