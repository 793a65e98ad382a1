/*
 * http_render.h: the node model as JSON (the API, the live event stream)
 * and as Prometheus text (the /metrics endpoint).  Reads the model on the
 * loop thread; knows no HTTP.
 */
#ifndef SB_HTTP_RENDER_H
#define SB_HTTP_RENDER_H

#include <jansson.h>

struct sb_buf;
struct sb_node;

/* A new object (the caller owns it): name, groups, state, reason, since,
 * last poll, last error; with_sensors adds power and every sensor with its
 * value, unit, state and thresholds. */
json_t *http_node_json(const struct sb_node *, int with_sensors);
/* {"nodes": [...], "time": now}: every node, in config order. */
json_t *http_nodes_json(int with_sensors);

/* Append s as a Prometheus label value (backslash, quote, newline escaped). */
void http_prom_label(struct sb_buf *, const char *s);
/* Append "# HELP name help\n# TYPE name type\n". */
void http_prom_head(struct sb_buf *, const char *name, const char *type, const char *help);
/* The node families: switchboard_nodes{state}, switchboard_node_state{node,
 * state} (one-hot), switchboard_node_since_seconds{node}. */
void http_prom_nodes(struct sb_buf *);

#endif
