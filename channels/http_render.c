/*
 * http_render.c: nodes as JSON and metrics as Prometheus text (see
 * http_render.h).  Borrowed views of the model; nothing here is kept.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hal.h"
#include "http_render.h"
#include "node.h"
#include "util.h"

static json_t *
num_or_null(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *
sensors_json(const struct sb_readings *r)
{
	json_t *a = json_array();

	for (size_t i = 0; r && i < r->nsensors; i++) {
		const struct sb_sensor *s = &r->sensors[i];
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(s->name));
		json_object_set_new(o, "kind", json_string(sb_sensor_kind_name(s->kind)));
		json_object_set_new(o, "unit", json_string(s->unit));
		json_object_set_new(o, "value", s->has_value ? num_or_null(s->value) : json_null());
		json_object_set_new(o, "state", json_string(sb_sensor_state_name(s->state)));
		json_object_set_new(o, "low_critical", num_or_null(s->low_crit));
		json_object_set_new(o, "low_warning", num_or_null(s->low_warn));
		json_object_set_new(o, "high_warning", num_or_null(s->high_warn));
		json_object_set_new(o, "high_critical", num_or_null(s->high_crit));
		json_array_append_new(a, o);
	}
	return a;
}

json_t *
http_node_json(const struct sb_node *n, int with_sensors)
{
	json_t *o = json_object(), *g = json_array();

	for (size_t i = 0; i < n->ngroups; i++)
		json_array_append_new(g, json_string(n->groups[i]));
	json_object_set_new(o, "name", json_string(n->name));
	json_object_set_new(o, "groups", g);
	json_object_set_new(o, "state", json_string(sb_state_name(n->state)));
	json_object_set_new(o, "reason", json_string(n->reason));
	json_object_set_new(o, "since", json_integer((json_int_t)n->since));
	json_object_set_new(o, "last_poll", n->last_poll ? json_integer((json_int_t)n->last_poll) :
	    json_null());
	json_object_set_new(o, "last_error", n->last_status ? json_string(n->last_error) :
	    json_null());
	json_object_set_new(o, "polls", json_integer((json_int_t)n->polls));
	if (with_sensors) {
		json_object_set_new(o, "power", json_string(n->last ?
		    sb_power_name(n->last->power) : "unknown"));
		json_object_set_new(o, "sensors", sensors_json(n->last));
	}
	return o;
}

json_t *
http_nodes_json(int with_sensors)
{
	json_t *o = json_object(), *a = json_array();

	for (size_t i = 0; i < sb_node_count(); i++)
		json_array_append_new(a, http_node_json(sb_node_at(i), with_sensors));
	json_object_set_new(o, "nodes", a);
	json_object_set_new(o, "time", json_integer((json_int_t)time(NULL)));
	return o;
}

void
http_prom_label(struct sb_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_buf_puts(b, "\\\\");
		else if (*s == '"')
			sb_buf_puts(b, "\\\"");
		else if (*s == '\n')
			sb_buf_puts(b, "\\n");
		else
			sb_buf_add(b, s, 1);
	}
}

void
http_prom_head(struct sb_buf *b, const char *name, const char *type, const char *help)
{
	sb_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
http_prom_nodes(struct sb_buf *b)
{
	size_t count[SB_ST_COUNT] = { 0 };

	for (size_t i = 0; i < sb_node_count(); i++)
		count[sb_node_at(i)->state]++;
	http_prom_head(b, "switchboard_nodes", "gauge", "Nodes by state.");
	for (int s = 0; s < SB_ST_COUNT; s++)
		sb_buf_printf(b, "switchboard_nodes{state=\"%s\"} %zu\n",
		    sb_state_name((enum sb_state)s), count[s]);
	http_prom_head(b, "switchboard_node_state", "gauge",
	    "1 for the state each node is in, 0 for the others.");
	for (size_t i = 0; i < sb_node_count(); i++) {
		const struct sb_node *n = sb_node_at(i);

		for (int s = 0; s < SB_ST_COUNT; s++) {
			sb_buf_puts(b, "switchboard_node_state{node=\"");
			http_prom_label(b, n->name);
			sb_buf_printf(b, "\",state=\"%s\"} %d\n", sb_state_name((enum sb_state)s),
			    (int)n->state == s);
		}
	}
	http_prom_head(b, "switchboard_node_since_seconds", "gauge",
	    "Unix time at which each node entered its state.");
	for (size_t i = 0; i < sb_node_count(); i++) {
		const struct sb_node *n = sb_node_at(i);

		sb_buf_puts(b, "switchboard_node_since_seconds{node=\"");
		http_prom_label(b, n->name);
		sb_buf_printf(b, "\"} %lld\n", (long long)n->since);
	}
}
