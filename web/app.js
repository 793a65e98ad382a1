// app.js: switchboard's status page.  The farm as a buddy list: one row
// per node, grouped, a coloured dot and a word for its state, the reason
// and since when.  The rows follow /api/events (Server-Sent Events) live;
// a row opens to show its sensors and, with a token, to run commands.
//
// The stream is read with fetch() rather than EventSource, because
// EventSource cannot send an Authorization header.  Every text from the
// daemon goes into the page through textContent, never as HTML.
"use strict";

(function () {
  const STATES = ["ok", "warning", "critical", "off", "maint", "down", "unknown"];
  const TOKEN_KEY = "switchboard-token";

  const nodes = new Map();      // name -> node object from the API
  const open = new Set();       // names of rows showing their details
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let retry = 1000;             // ms before reconnecting; grows to 15 s
  let live = false;

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }

  function ago(t) {
    let s = Math.max(0, Math.floor(Date.now() / 1000 - t));
    if (s >= 86400) return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
    if (s >= 3600) return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
    if (s >= 60) return Math.floor(s / 60) + "m" + (s % 60) + "s";
    return s + "s";
  }

  function fmt(v) {
    if (v === null || v === undefined) return "";
    return Number.isInteger(v) ? String(v) : String(Math.round(v * 100) / 100);
  }

  // ---- the live link ----

  function setLink(state, text) {
    const l = $("link");
    l.className = "link " + state;
    l.textContent = state === "lost" ? "live link lost" : text;
    const lost = $("lost");
    if (state === "lost") {
      lost.textContent = "Live updates lost: " + text + ". Reconnecting; what you see may be out of date.";
      lost.hidden = false;
    } else if (state === "live") {
      lost.hidden = true;
    }
    document.body.dataset.link = state;
  }

  function handle(event, data) {
    let obj;
    try {
      obj = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (event === "snapshot") {
      nodes.clear();
      for (const n of obj.nodes || []) nodes.set(n.name, n);
      render();
    } else if (event === "node") {
      nodes.set(obj.name, obj);
      render();
    } else if (event === "notice") {
      notice(obj);
    }
  }

  async function stream() {
    let resp;
    try {
      resp = await fetch("api/events", { headers: authHeaders({ Accept: "text/event-stream" }), cache: "no-store" });
    } catch (e) {
      return "the daemon does not answer";
    }
    if (resp.status === 401 || resp.status === 403) {
      $("token-state").textContent = "this page needs a token to read the farm";
      return "a token is needed (" + resp.status + ")";
    }
    if (!resp.ok || !resp.body) return "HTTP " + resp.status;
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    retry = 1000;
    live = true;
    setLink("live", "live");
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        break;
      }
      if (chunk.done) break;
      buf += dec.decode(chunk.value, { stream: true });
      // Events end with a blank line; fields are "name: value" lines.
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const i = line.indexOf(":");
          const name = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (name === "event") event = value;
          else if (name === "data") data.push(value);
        }
        if (data.length) handle(event, data.join("\n"));
      }
    }
    live = false;
    return "the stream ended";
  }

  async function connect() {
    for (;;) {
      const why = await stream();
      setLink("lost", why);
      await new Promise((r) => setTimeout(r, retry));
      retry = Math.min(retry * 2, 15000);
      setLink("connecting", "reconnecting");
    }
  }

  // ---- the roster ----

  function summary() {
    const count = {};
    for (const n of nodes.values()) count[n.state] = (count[n.state] || 0) + 1;
    const parts = STATES.filter((s) => count[s]).map((s) => count[s] + " " + s);
    $("summary").textContent = nodes.size + " node" + (nodes.size === 1 ? "" : "s") +
      (parts.length ? ": " + parts.join(", ") : "");
  }

  function sensorsTable(n) {
    const t = el("table", "sensors");
    const head = t.createTHead().insertRow();
    for (const h of ["sensor", "value", "state", "thresholds"]) head.appendChild(el("th", null, h));
    const body = t.createTBody();
    for (const s of n.sensors || []) {
      const r = body.insertRow();
      r.className = "sensor-" + s.state;
      r.appendChild(el("td", null, s.name));
      r.appendChild(el("td", "num", s.value === null ? "-" : fmt(s.value) + " " + s.unit));
      r.appendChild(el("td", null, s.state));
      const lim = [];
      if (s.low_critical !== null) lim.push("crit \u2264 " + fmt(s.low_critical));
      if (s.low_warning !== null) lim.push("warn \u2264 " + fmt(s.low_warning));
      if (s.high_warning !== null) lim.push("warn \u2265 " + fmt(s.high_warning));
      if (s.high_critical !== null) lim.push("crit \u2265 " + fmt(s.high_critical));
      r.appendChild(el("td", "muted", lim.join(", ")));
    }
    return t;
  }

  function commandForm(n) {
    const f = el("form", "command");
    const input = el("input");
    input.type = "text";
    input.placeholder = "command for " + n.name + ", e.g. sensors, power status";
    input.setAttribute("aria-label", "command for " + n.name);
    const run = el("button", null, "Run");
    run.type = "submit";
    const out = el("pre", "output");
    out.hidden = true;
    f.append(input, run, out);
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      if (input.value.trim()) command(n.name, input.value.trim(), out, f);
    });
    return f;
  }

  async function command(node, text, out, form) {
    out.hidden = false;
    out.textContent = "running " + text + "\u2026";
    for (const b of form.querySelectorAll(".confirm")) b.remove();
    let resp, body;
    try {
      resp = await fetch("api/nodes/" + encodeURIComponent(node) + "/command", {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/json" }),
        body: JSON.stringify({ command: text }),
      });
      body = await resp.json();
    } catch (e) {
      out.textContent = "no answer: " + e;
      return;
    }
    out.textContent = body.output || body.error || "(no output)";
    out.className = "output " + (body.ok ? "ok" : "failed");
    if (resp.status === 202 && body.confirm) {
      const c = el("button", "confirm", "Confirm (" + body.confirm + ")");
      c.type = "button";
      c.addEventListener("click", () => command(node, "confirm " + body.confirm, out, form));
      form.appendChild(c);
    }
  }

  async function refreshDetails(name) {
    try {
      const resp = await fetch("api/nodes/" + encodeURIComponent(name), { headers: authHeaders(), cache: "no-store" });
      if (resp.ok) {
        nodes.set(name, await resp.json());
        render();
      }
    } catch (e) {
      /* the stream will say the link is down */
    }
  }

  function row(n) {
    const li = el("li", "node state-" + n.state);
    li.dataset.node = n.name;
    li.dataset.state = n.state;
    const btn = el("button", "row");
    btn.type = "button";
    btn.setAttribute("aria-expanded", open.has(n.name) ? "true" : "false");
    const dot = el("span", "dot");
    dot.setAttribute("aria-hidden", "true");
    btn.append(dot, el("span", "name", n.name), el("span", "state", n.state),
      el("span", "reason", n.reason || ""));
    const since = el("span", "since", n.since ? "since " + ago(n.since) : "");
    since.dataset.since = n.since || "";
    since.title = n.since ? new Date(n.since * 1000).toLocaleString() : "";
    btn.appendChild(since);
    btn.addEventListener("click", () => {
      if (open.has(n.name)) open.delete(n.name);
      else {
        open.add(n.name);
        refreshDetails(n.name);
      }
      render();
    });
    li.appendChild(btn);
    if (open.has(n.name)) {
      const d = el("div", "details");
      d.appendChild(el("p", "muted", "power " + (n.power || "unknown") +
        (n.last_poll ? ", polled " + ago(n.last_poll) + " ago" : "") +
        (n.last_error ? ", last error: " + n.last_error : "") +
        (n.groups && n.groups.length ? ", groups " + n.groups.join(", ") : "")));
      if (n.sensors && n.sensors.length) d.appendChild(sensorsTable(n));
      if (token) d.appendChild(commandForm(n));
      li.appendChild(d);
    }
    return li;
  }

  function render() {
    // Keep what the user is typing: re-render everything else around it.
    const active = document.activeElement;
    const typing = active && active.tagName === "INPUT" && active.closest(".node");
    if (typing) {
      summary();
      updateRowsInPlace();
      return;
    }
    const groups = new Map();
    for (const n of nodes.values()) {
      const g = (n.groups && n.groups[0]) || "ungrouped";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(n);
    }
    const root = $("groups");
    root.replaceChildren();
    for (const g of [...groups.keys()].sort()) {
      const sec = el("section", "group");
      sec.appendChild(el("h3", null, g));
      const ul = el("ul", "nodes");
      for (const n of groups.get(g).sort((a, b) => a.name.localeCompare(b.name))) ul.appendChild(row(n));
      sec.appendChild(ul);
      root.appendChild(sec);
    }
    $("empty").hidden = nodes.size > 0;
    summary();
  }

  // While a command is being typed, only the rows' state words change.
  function updateRowsInPlace() {
    for (const li of document.querySelectorAll("li.node")) {
      const n = nodes.get(li.dataset.node);
      if (!n) continue;
      li.className = "node state-" + n.state;
      li.dataset.state = n.state;
      li.querySelector(".state").textContent = n.state;
      li.querySelector(".reason").textContent = n.reason || "";
      const s = li.querySelector(".since");
      s.dataset.since = n.since || "";
    }
    tick();
  }

  function tick() {
    for (const s of document.querySelectorAll(".since")) {
      const t = Number(s.dataset.since);
      if (t) s.textContent = "since " + ago(t);
    }
  }

  // ---- notices ----

  function notice(obj) {
    const list = $("notices");
    const first = list.querySelector(".muted");
    if (first) first.remove();
    const li = el("li");
    const when = obj.time ? new Date(obj.time * 1000) : new Date();
    li.appendChild(el("time", "muted", when.toLocaleTimeString()));
    li.appendChild(el("pre", null, obj.text || ""));
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  }

  // ---- the token ----

  function tokenState() {
    $("token-state").textContent = token ? "commands enabled: the token is kept in this tab only" :
      "read-only: no token";
    document.body.dataset.token = token ? "yes" : "no";
  }

  function init() {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      token = $("token").value.trim();
      $("token").value = "";
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
      tokenState();
      render();
      if (!live) retry = 0;
    });
    $("token-clear").addEventListener("click", () => {
      token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      tokenState();
      render();
    });
    tokenState();
    setInterval(tick, 5000);
    connect();
  }

  init();
})();
