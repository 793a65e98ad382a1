"""The HTTP channel end to end (issue 7): the real daemon on the demo farm
with an http channel on 127.0.0.1 and a port the kernel picks (read back
from the daemon's log), driven by independent clients: Python's
http.client, curl, a local webhook receiver (http.server) and headless
Chromium over the DevTools protocol.

  test_http_api_*      nodes JSON, commands, confirmation, status codes
  test_http_auth_*     401, 403, public_read
  test_http_body_*     the body cap (413), with and without 100-continue
  test_http_hook_*     Alertmanager, Grafana (HMAC, signed timestamp), generic
                       JSON, Lua handlers; a 2xx only once committed
  test_http_command_*  a command past command_timeout: 504
  test_http_out_*      outgoing webhook: retries until delivered, once
  test_http_metrics_*  /metrics parsed by a strict parser
  test_http_sse_*      /api/events gets the snapshot and live changes
  test_http_limits_*   the connection cap
  test_http_tls_*      HTTPS with a self-signed certificate
  test_http_reload_*   a reload through the API restarts the channel
  test_http_browser_*  the status page in Chromium: four nodes, live change

Run: /usr/bin/python3 tests/e2e/run.py -k http

When a test fails, the daemon's log and config are kept in
build/test-logs/e2e-http/<test>/; the browser test always leaves its
screenshot there.
"""
import base64
import functools
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import resource
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time

import sbtest
from sbtest import Daemon, wait_for

CI_TOKEN = "ci-token-0123456789abcdef"          # role operator
VIEW_TOKEN = "viewer-token-0123456789abc"       # role viewer
ADMIN_TOKEN = "admin-token-0123456789abcd"      # role admin
NOBODY_TOKEN = "nobody-token-0123456789ab"      # no acl entry
AM_TOKEN = "alertmanager-token-0123456789"
GRAFANA_SECRET = "grafana-hmac-secret-0123456789"
CI_HOOK_TOKEN = "ci-hook-token-0123456789abc"
NODES = ("ftp", "web", "mail", "db")
LOGS = os.path.join(sbtest.ROOT, "build", "test-logs", "e2e-http")

# A real Alertmanager webhook (payload version 4): two alerts, one group.
AM_FIRING = {
    "receiver": "switchboard", "status": "firing",
    "alerts": [
        {"status": "firing",
         "labels": {"alertname": "HighCPUTemp", "instance": "web:9100", "job": "node",
                    "severity": "critical"},
         "annotations": {"summary": "CPU at 95 C"},
         "startsAt": "2024-05-01T10:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph?g0.expr=node_hwmon_temp",
         "fingerprint": "5ef77f1f8a3ecfa5"},
        {"status": "firing",
         "labels": {"alertname": "HighCPUTemp", "instance": "mail:9100", "job": "node",
                    "severity": "warning"},
         "annotations": {"summary": "CPU at 86 C"},
         "startsAt": "2024-05-01T10:00:05.000Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph?g0.expr=node_hwmon_temp",
         "fingerprint": "2cd1a3d9b1aa8d5c"},
    ],
    "groupLabels": {"alertname": "HighCPUTemp"},
    "commonLabels": {"alertname": "HighCPUTemp", "job": "node"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": "{}:{alertname=\"HighCPUTemp\"}",
    "truncatedAlerts": 0,
}

# Grafana's unified alerting webhook contact point.
GRAFANA_FIRING = {
    "receiver": "switchboard", "status": "firing", "orgId": 1,
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "InletHot", "grafana_folder": "DC", "node": "ftp",
                   "severity": "critical"},
        "annotations": {"summary": "inlet at 41 C"},
        "startsAt": "2024-05-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://grafana:3000/alerting/grafana/abc/view",
        "fingerprint": "9a1b2c3d4e5f6a7b", "silenceURL": "", "dashboardURL": "",
        "panelURL": "", "values": {"B": 41}, "valueString": "[ var='B' value=41 ]"}],
    "groupLabels": {"alertname": "InletHot"},
    "commonLabels": {"alertname": "InletHot"},
    "commonAnnotations": {},
    "externalURL": "http://grafana:3000/",
    "version": "1",
    "groupKey": "{}:{alertname=\"InletHot\"}",
    "truncatedAlerts": 0,
    "title": "[FIRING:1] InletHot",
    "state": "alerting",
    "message": "**Firing**",
}


# ---------------------------------------------------------------- helpers

_current = {}


def evidence(fn):
    """On failure keep the daemon's log and config, and end the message
    with the log's last lines."""
    @functools.wraps(fn)
    def run():
        _current.clear()
        try:
            return fn()
        except BaseException as e:
            keep = os.path.join(LOGS, fn.__name__)
            shutil.rmtree(keep, ignore_errors=True)
            os.makedirs(keep, exist_ok=True)
            d = _current.get("daemon")
            tail = []
            if d:
                for path in (d.log, d.conf):
                    if os.path.exists(path):
                        shutil.copy(path, keep)
                tail = d.logtext().splitlines()[-15:]
            note = "\n-- kept in %s; daemon log ends:\n%s" % (keep, "\n".join(tail))
            if isinstance(e, AssertionError):
                raise AssertionError("%s%s" % (e, note)) from None
            raise
    return run


def http_section(extra="", hooks_extra="", command_timeout=20):
    return """  { name = "web"; driver = "http"; bind = "127.0.0.1"; port = 0;
    web_root = "%s";
    command_timeout = %s;
    tokens = (
      { name = "ci"; token = "%s"; },
      { name = "viewer"; token = "%s"; },
      { name = "admin"; token = "%s"; },
      { name = "nobody"; token = "%s"; }
    );
    hooks = (
      { name = "alertmanager"; format = "alertmanager"; token = "%s"; },
      { name = "grafana"; format = "grafana"; hmac_secret = "%s"; },
      { name = "ci"; format = "json"; token = "%s"; }%s
    );
%s  }""" % (os.path.join(sbtest.ROOT, "web"), command_timeout, CI_TOKEN, VIEW_TOKEN,
            ADMIN_TOKEN, NOBODY_TOKEN, AM_TOKEN, GRAFANA_SECRET, CI_HOOK_TOKEN,
            "".join(",\n      " + h for h in ([hooks_extra] if isinstance(hooks_extra, str)
                                               and hooks_extra else hooks_extra or [])),
            extra)


def conf_text(http_extra="", routes=None, section=None, hooks_extra=""):
    """The demo farm plus an http channel; routes (Lua) replace the shipped
    routes.lua when given."""
    with open(os.path.join(sbtest.ROOT, "config", "demo.conf")) as f:
        text = f.read()
    scripts = '"%s"' % os.path.join(sbtest.ROOT, "scripts")
    if routes is not None:
        d = sbtest.tmpdir()
        with open(os.path.join(d, "routes.lua"), "w") as f:
            f.write(routes)
        scripts = '"%s", %s' % (d, scripts)
    text = text.replace('"../scripts"', scripts)
    channels = '{ name = "console"; driver = "console"; context = "default"; }'
    assert channels in text
    text = text.replace(channels, channels + ",\n" + (section or http_section(http_extra,
                                                                              hooks_extra)))
    acl = "acl = (\n"
    assert acl in text
    return text.replace(acl, acl + '  { match = "http:ci"; role = "operator"; },\n'
                        '  { match = "http:viewer"; role = "viewer"; },\n'
                        '  { match = "http:admin"; role = "admin"; },\n')


def start(http_extra="", routes=None, section=None, hooks_extra=""):
    d = Daemon(conf_text=conf_text(http_extra, routes, section, hooks_extra)).start()
    _current["daemon"] = d
    m = wait_for(lambda: re.search(r"http web: listening on (https?)://127\.0\.0\.1:(\d+)/",
                                   d.logtext()), what="the http channel to listen")
    d.scheme, d.port = m.group(1), int(m.group(2))
    return d


def request(d, method, path, body=None, headers=None, token=None, timeout=30, ctx=None):
    """One request on a new connection: (status, headers dict, body bytes)."""
    if d.scheme == "https":
        c = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=timeout, context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def get_json(d, path, token=None, want=200):
    st, h, b = request(d, "GET", path, token=token)
    assert st == want, (path, st, b)
    assert h["content-type"].startswith("application/json"), h
    return json.loads(b)


def command(d, text, token=CI_TOKEN, node=None, path="/api/command"):
    body = {"command": text}
    if node:
        body["node"] = node
    st, h, b = request(d, "POST", path, body=body, token=token)
    assert h.get("content-type", "").startswith("application/json"), (st, h, b)
    return st, json.loads(b)


def wait_all_ok(d):
    def ok():
        states = {n["name"]: n["state"] for n in get_json(d, "/api/nodes")["nodes"]}
        return states if all(states.get(n) == "ok" for n in NODES) else None
    return wait_for(ok, what="four nodes ok over the API")


class ConsoleTap:
    """The console's live event lines ("!events on"), as "switchboard -r"
    sees them: the routed events reach us here."""

    def __init__(self, d):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(d.sock)
        self.s.sendall(b"!events on\n1 core show version\n")
        self.buf = b""
        self.lines = []
        self.done = False
        sbtest.add_cleanup(self.s.close)
        # Lines are handled in order: once the command has ended, events
        # are on.
        deadline = time.monotonic() + sbtest.WAIT
        while not self.done:
            assert time.monotonic() < deadline, "the console did not answer"
            self._pump(0.1)

    def _pump(self, timeout):
        r, _, _ = select.select([self.s], [], [], timeout)
        if r:
            data = self.s.recv(65536)
            if not data:
                raise AssertionError("the console closed the event stream")
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.startswith(b"* "):
                    self.lines.append(line[2:].decode(errors="replace"))
                elif line.startswith(b"1 . "):
                    self.done = True

    def text(self):
        return "\n".join(self.lines)

    def wait(self, pattern, timeout=sbtest.WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text(), re.M)
            if m:
                return m
            self._pump(0.1)
        raise AssertionError("no console event matching %r; got:\n%s" % (pattern, self.text()))

    def settle(self, seconds=0.5):
        """Read what arrives within seconds (used before asserting an
        absence, after a positive wait proved the path works)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(0.05)


# ---------------------------------------------------------------- the API

@evidence
def test_http_is_a_module_loaded_beside_the_start():
    """libmicrohttpd and GnuTLS are not linked into the daemon: the HTTP
    driver is chan_http.so (build/modules/), loaded once the other channels
    have started.  The daemon comes up with the HTTP
    channel and the others all answering; --check-config loads the module
    too, and without it names the channel, the driver and why."""
    p = subprocess.run(["ldd", sbtest.BIN], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "libmicrohttpd" not in p.stdout and "libgnutls" not in p.stdout, p.stdout
    d = start()
    assert get_json(d, "/health")["nodes"] == 4
    out = d.ok("core show channels")
    assert "web" in out and "console" in out, out
    p = subprocess.run([sbtest.BIN, "-c", d.conf, "--check-config"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    # --dump-keys lists the HTTP keys without loading anything.
    alone = sbtest.binary_alone()
    p = subprocess.run([alone, "--dump-keys"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "channels[driver=http].hooks[].hmac_secret" in p.stdout, \
        p.stdout[-2000:]
    p = subprocess.run([alone, "-c", d.conf, "--check-config"],
                       capture_output=True, text=True, timeout=30)
    if os.path.exists(os.path.join(sbtest.INSTALLED_MODULES, "chan_http.so")):
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode == 1, (p.returncode, p.stderr)
        assert re.search(r":\d+: channel web: driver http: .*chan_http\.so", p.stderr), p.stderr


def test_http_first_states_come_before_the_module_channels():
    """Started without a user to become, the daemon polls its nodes before
    the HTTP channel (a module) starts: the first states, which are the
    first presences, do not wait for the module's libraries.  (With a user
    to become, the HTTP channel starts first: test_privilege.)"""
    d = start()
    log = d.logtext()
    first = re.search(r"node \w+: \w+ -> \w+", log)
    listening = log.find("http web: listening on")
    assert first and listening >= 0, log[-3000:]
    assert first.start() < listening, log[-3000:]
    assert get_json(d, "/health")["nodes"] == 4


def test_http_api_nodes_json():
    d = start()
    assert get_json(d, "/health") == {"ok": True, "version": "0.1.0", "nodes": 4}
    wait_all_ok(d)
    body = get_json(d, "/api/nodes")
    assert [n["name"] for n in body["nodes"]] == list(NODES)
    assert abs(body["time"] - time.time()) < 60
    mail = get_json(d, "/api/nodes/mail")
    assert mail["name"] == "mail" and mail["state"] == "ok", mail
    assert mail["reason"] == "all 6 sensors normal", mail
    assert mail["groups"] == ["rack2", "backend"], mail
    assert abs(mail["since"] - time.time()) < 120, mail
    assert mail["power"] == "on", mail
    cpu = [s for s in mail["sensors"] if s["name"] == "cpu_temp"][0]
    assert cpu == {"name": "cpu_temp", "kind": "temperature", "unit": "C", "value": 48.0,
                   "state": "ok", "low_critical": None, "low_warning": None,
                   "high_warning": 85.0, "high_critical": 90.0}, cpu
    # The model moves and the API follows.
    d.ok("sim set mail cpu_temp 95")
    wait_for(lambda: get_json(d, "/api/nodes/mail")["state"] == "critical",
             what="mail critical over the API")
    assert "cpu_temp 95 C (critical >= 90)" in get_json(d, "/api/nodes/mail")["reason"]
    # Errors are JSON with the right status.
    st, h, b = request(d, "GET", "/api/nodes/nosuch")
    assert st == 404 and json.loads(b) == {"ok": False, "error": "no node 'nosuch'"}, (st, b)
    st, h, b = request(d, "GET", "/no/such/thing")
    assert st == 404 and json.loads(b)["ok"] is False, (st, b)
    st, h, b = request(d, "DELETE", "/api/nodes")
    assert st == 405 and h["allow"] == "GET, HEAD", (st, h)
    st, h, b = request(d, "GET", "/api/command")
    assert st == 405 and h["allow"] == "POST", (st, h)
    st, h, b = request(d, "HEAD", "/api/nodes")
    assert st == 200 and b == b"", (st, b)


@evidence
def test_http_api_command_and_confirmation():
    d = start()
    wait_all_ok(d)
    st, b = command(d, "status")
    assert st == 200 and b == {"ok": True, "output": "4 nodes: 4 ok"}, (st, b)
    st, b = command(d, "whoami")
    assert st == 200 and b["output"].startswith("http:ci, role operator, channel web"), b
    # The implied node, in the body or in the URL.
    st, b = command(d, "sensors", node="db")
    assert st == 200 and b["output"].startswith("db (power on):"), (st, b)
    st, b = command(d, "sensors fan1", path="/api/nodes/web/command")
    assert st == 200 and "fan1" in b["output"] and "cpu_temp" not in b["output"], (st, b)
    # A destructive command answers 202 with a code; confirming runs it.
    st, b = command(d, "power off", path="/api/nodes/web/command")
    assert st == 202 and b["ok"] is True and re.fullmatch(r"[A-Z0-9]{4,12}", b["confirm"]), (st, b)
    assert "needs confirmation" in b["output"] and b["confirm"] in b["output"], b
    assert d.node_state("web") == "ok"       # nothing done yet
    st2, b2 = command(d, "confirm " + b["confirm"])
    assert st2 == 200 and b2["output"] == "web: power off issued", (st2, b2)
    d.wait_state("web", "off")
    # A code is used once, and only by the one it was issued to.
    st3, b3 = command(d, "confirm " + b["confirm"])
    assert st3 == 422 and "unknown or already used" in b3["error"], (st3, b3)
    st, b = command(d, "power on", node="web")
    assert st == 202, (st, b)
    st4, b4 = command(d, "confirm " + b["confirm"], token=ADMIN_TOKEN)
    assert st4 == 422 and "another conversation" in b4["error"], (st4, b4)
    # Failures: unknown command 422, unknown node 404, bad JSON 400.
    st, b = command(d, "frobnicate")
    assert st == 422 and b["error"] == "unknown command 'frobnicate'; try 'help'", (st, b)
    st, b = command(d, "status", node="nosuch")
    assert st == 404 and b["error"] == "no node 'nosuch'", (st, b)
    st, h, raw = request(d, "POST", "/api/command", body=b'{"command": "status",,}',
                         token=CI_TOKEN)
    err = json.loads(raw)["error"]
    assert st == 400 and err.startswith("invalid JSON at line 1, column 22: "), (st, err)
    st, h, raw = request(d, "POST", "/api/command", body={"cmd": "status"}, token=CI_TOKEN)
    assert st == 400 and "expected {\"command\"" in json.loads(raw)["error"], (st, raw)
    st, h, raw = request(d, "POST", "/api/command", body=[1, 2], token=CI_TOKEN)
    assert st == 400, (st, raw)
    st, h, raw = request(d, "POST", "/api/command", body={"command": "status", "node": 7},
                         token=CI_TOKEN)
    assert st == 400 and json.loads(raw)["error"] == "'node' must be a string", (st, raw)


@evidence
def test_http_auth_tokens_and_roles():
    d = start()
    for token, why in ((None, "no token"), ("not-a-token-of-ours-at-all", "unknown token")):
        st, h, b = request(d, "POST", "/api/command", body={"command": "status"}, token=token)
        assert st == 401, (st, b)
        assert h["www-authenticate"] == 'Bearer realm="switchboard"', h
        assert json.loads(b)["ok"] is False
        wait_for(lambda: "POST /api/command refused: %s" % why in d.logtext(),
                 what="the refusal (%s) in the log" % why)
    # A scheme other than Bearer is no token.
    st, h, b = request(d, "POST", "/api/command", body={"command": "status"},
                       headers={"Authorization": "Basic Y2k6" + CI_TOKEN})
    assert st == 401, st
    # A known token whose identity the acl does not map: 403.
    st, h, b = request(d, "POST", "/api/command", body={"command": "status"}, token=NOBODY_TOKEN)
    assert st == 403 and json.loads(b)["error"] == "http:nobody is not authorized", (st, b)
    # The role decides, as in chat: a viewer may look but not act.
    st, b = command(d, "status", token=VIEW_TOKEN)
    assert st == 200, (st, b)
    st, b = command(d, "power cycle", node="web", token=VIEW_TOKEN)
    assert st == 403 and b["error"].startswith("permission denied: 'power cycle' needs role operator"), (st, b)
    st, b = command(d, "core reload", token=CI_TOKEN)
    assert st == 403 and "needs role admin" in b["error"], (st, b)
    # Reads are public by default.
    assert get_json(d, "/api/nodes")["nodes"]
    st, h, b = request(d, "GET", "/metrics")
    assert st == 200, st


@evidence
def test_http_auth_private_reads():
    d = start("    public_read = false;\n")
    for path in ("/api/nodes", "/api/nodes/web", "/metrics", "/api/events"):
        st, h, b = request(d, "GET", path)
        assert st == 401, (path, st)
        st, h, b = request(d, "GET", path, token=NOBODY_TOKEN)
        assert st == 403, (path, st)
    assert len(get_json(d, "/api/nodes", token=VIEW_TOKEN)["nodes"]) == 4
    # Health and the page itself carry no data: always open.
    assert get_json(d, "/health")["ok"] is True
    st, h, b = request(d, "GET", "/")
    assert st == 200 and b"<title>switchboard</title>" in b, st


@evidence
def test_http_api_static_files():
    d = start()
    st, h, b = request(d, "GET", "/")
    assert st == 200 and h["content-type"] == "text/html; charset=utf-8", (st, h)
    assert "default-src 'self'" in h["content-security-policy"], h
    st, h, b = request(d, "GET", "/app.js")
    assert st == 200 and h["content-type"].startswith("text/javascript"), (st, h)
    st, h, b = request(d, "GET", "/style.css")
    assert st == 200 and h["content-type"].startswith("text/css"), (st, h)
    for path in ("/../GNUmakefile", "/%2e%2e/GNUmakefile", "/.hidden", "/web/index.html",
                 "/no-such-file.js"):
        st, h, b = request(d, "GET", path)
        assert st == 404, (path, st)


# ---------------------------------------------------------------- body limits

@evidence
def test_http_body_cap_413():
    d = start()
    big = b"{" + b" " * (2 << 20) + b"}"
    # http.client sends the body whole, without Expect: the channel reads
    # and drops it, then answers.
    st, h, b = request(d, "POST", "/api/command", body=big, token=CI_TOKEN,
                       headers={"Content-Type": "application/json"})
    assert st == 413, st
    assert json.loads(b)["error"] == "the body is %d bytes; the limit is 1048576" % len(big), b
    # curl asks first (Expect: 100-continue) and is answered at once.
    path = os.path.join(sbtest.tmpdir(), "big.json")
    with open(path, "wb") as f:
        f.write(big)
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "-H", "Authorization: Bearer " + CI_TOKEN, "-H", "Expect: 100-continue",
                        "-H", "Content-Type: application/json",
                        "--data-binary", "@" + path, "http://127.0.0.1:%d/api/command" % d.port],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout == "413", (p.stdout, p.stderr)
    # A hook is capped the same way, before its token is even looked at.
    st, h, b = request(d, "POST", "/hooks/alertmanager", body=big, token=AM_TOKEN)
    assert st == 413, st
    # Just under the cap: read whole; the dispatcher then refuses the
    # 4096-byte command line itself.
    under = json.dumps({"command": "x" * 5000, "pad": " " * (1048576 - 5100)}).encode()
    assert len(under) <= 1048576
    st, h, b = request(d, "POST", "/api/command", body=under, token=CI_TOKEN)
    assert st == 422 and "message too long" in json.loads(b)["error"], (st, b[:200])
    # The daemon is fine.
    assert get_json(d, "/health")["ok"] is True


# ---------------------------------------------------------------- webhooks in

def post_hook(d, name, payload, token=None, headers=None, raw=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    st, h, b = request(d, "POST", "/hooks/" + name, body=body, token=token,
                       headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    return st, json.loads(b)


def signed(payload, secret=GRAFANA_SECRET):
    body = json.dumps(payload).encode()
    return body, "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@evidence
def test_http_hook_alertmanager_firing_then_resolved():
    d = start()
    tap = ConsoleTap(d)
    wait_all_ok(d)
    st, b = post_hook(d, "alertmanager", AM_FIRING, token=AM_TOKEN)
    # The 200 comes once the event is committed to the store; it names it.
    assert st == 200 and b["ok"] is True and b["events"] == 1, (st, b)
    assert len(b["ids"]) == 1 and re.fullmatch(r"E\d+", b["ids"][0]), b
    fired = b["ids"][0]
    # One event (one line) for the burst, both alerts in it.
    tap.wait(r"^\[%s\] alertmanager: \[FIRING:2\] HighCPUTemp: web: CPU at 95 C \[critical\]; "
             r"mail: CPU at 86 C \[warning\]$" % fired)
    # Alertmanager repeats the group: nothing new, nothing sent.
    st, b = post_hook(d, "alertmanager", AM_FIRING, token=AM_TOKEN)
    assert st == 200 and b["events"] == 0 and b["ids"] == [], (st, b)
    resolved = json.loads(json.dumps(AM_FIRING).replace('"firing"', '"resolved"'))
    st, b = post_hook(d, "alertmanager", resolved, token=AM_TOKEN)
    assert st == 200 and b["events"] == 1, (st, b)
    # Same fingerprints, same key: the resolution closes the firing event.
    tap.wait(r"^\[E\d+\] alertmanager: \[RESOLVED:2\] HighCPUTemp: web: CPU at 95 C; "
             r"mail: CPU at 86 C \(resolves %s\)$" % fired)
    tap.settle()
    assert tap.text().count("[FIRING:2]") == 1, tap.text()
    # Auth and shape errors.
    st, b = post_hook(d, "alertmanager", AM_FIRING)
    assert st == 401 and b["error"] == "a bearer token is needed", (st, b)
    st, b = post_hook(d, "alertmanager", AM_FIRING, token=GRAFANA_SECRET)
    assert st == 401 and b["error"] == "wrong token", (st, b)
    wait_for(lambda: "hook alertmanager: 127.0.0.1: refused: wrong token" in d.logtext(),
             what="the refusal in the log")
    st, b = post_hook(d, "alertmanager", None, token=AM_TOKEN, raw=b'{"alerts": [}')
    assert st == 400 and b["error"].startswith("invalid JSON at line 1, column 13"), (st, b)
    st, b = post_hook(d, "alertmanager", {"status": "firing"}, token=AM_TOKEN)
    assert st == 400 and b["error"] == "'alerts' must be a list", (st, b)
    st, b = post_hook(d, "nosuch", {}, token=AM_TOKEN)
    assert st == 404 and b["error"] == "no hook 'nosuch'", (st, b)
    st, h, raw = request(d, "GET", "/hooks/alertmanager")
    assert st == 405, st


@evidence
def test_http_hook_grafana_hmac():
    d = start()
    tap = ConsoleTap(d)
    body, sig = signed(GRAFANA_FIRING)
    st, b = post_hook(d, "grafana", None, raw=body, headers={"X-Signature-256": sig})
    assert st == 200 and b["events"] == 1, (st, b)
    tap.wait(r"^\[E\d+\] grafana: \[FIRING:1\] InletHot: ftp: inlet at 41 C \[critical\]$")
    # A signature over another body, a bare hex one, none at all.
    other, _ = signed(dict(GRAFANA_FIRING, orgId=2))
    st, b = post_hook(d, "grafana", None, raw=other, headers={"X-Signature-256": sig})
    assert st == 401 and b["error"] == "signature mismatch", (st, b)
    wait_for(lambda: "hook grafana: 127.0.0.1: refused: signature mismatch" in d.logtext(),
             what="the refusal in the log")
    st, b = post_hook(d, "grafana", None, raw=other,
                      headers={"X-Signature-256": signed(dict(GRAFANA_FIRING, orgId=2))[1][7:]})
    assert st == 200 and b["events"] == 0, (st, b)     # valid; the alert was already told
    st, b = post_hook(d, "grafana", None, raw=body)
    assert st == 401 and b["error"] == "no signature", (st, b)
    # A token is not a signature.
    st, b = post_hook(d, "grafana", None, raw=body, token=GRAFANA_SECRET)
    assert st == 401, (st, b)


@evidence
def test_http_hook_generic_json():
    d = start()
    tap = ConsoleTap(d)
    st, b = post_hook(d, "ci", {"node": "db", "severity": "warning", "text": "backup slow"},
                      token=CI_HOOK_TOKEN)
    assert st == 200 and b["events"] == 1, (st, b)
    tap.wait(r"^\[E\d+\] ci: db: backup slow$")
    st, b = post_hook(d, "ci", [{"text": "deploy 41 done"}, {"text": "deploy 42 done"}],
                      token=CI_HOOK_TOKEN)
    assert st == 200 and b["events"] == 2, (st, b)
    tap.wait(r"^\[E\d+\] ci: deploy 42 done$")
    st, b = post_hook(d, "ci", {"text": "x", "severity": "purple"}, token=CI_HOOK_TOKEN)
    assert st == 400 and b["error"] == "the payload: 'severity' must be info, warning or critical", b
    st, b = post_hook(d, "ci", {"severity": "info"}, token=CI_HOOK_TOKEN)
    assert st == 400 and "'text'" in b["error"], b
    # A key of its own, and its resolution.
    st, b = post_hook(d, "ci", {"text": "disk full", "severity": "critical", "key": "disk"},
                      token=CI_HOOK_TOKEN)
    assert st == 200 and b["events"] == 1, (st, b)
    opened = b["ids"][0]
    tap.wait(r"^\[%s\] ci: disk full$" % opened)
    st, b = post_hook(d, "ci", {"text": "disk ok", "key": "disk", "resolved": True},
                      token=CI_HOOK_TOKEN)
    assert st == 200 and b["events"] == 1, (st, b)
    tap.wait(r"^\[E\d+\] ci: disk ok \(resolves %s\)$" % opened)
    st, b = post_hook(d, "ci", {"text": "x", "resolved": "yes"}, token=CI_HOOK_TOKEN)
    assert st == 400 and b["error"] == "the payload: 'resolved' must be true or false", b


# Lua handlers: the scripts' webhook "name" (function(payload, req) ...).
LUA_HOOKS = r"""
route { to = { "console" } }

webhook "custom" (function(payload, req)
  local out = {}
  for _, c in ipairs(payload.checks) do
    out[#out + 1] = {
      node = c.host,
      severity = c.ok and "info" or "critical",
      text = string.format("custom: %s %s (from %s, %d checks, auth %s, via %s)", c.host,
        c.ok and "recovered" or "failed", req.headers["x-source"] or "?", #payload.checks,
        tostring(req.headers.authorization), req.hook),
      key = "check-" .. c.host,
      resolved = c.ok,
    }
  end
  return out
end)

webhook "broken" (function(payload) error("boom " .. tostring(payload.x)) end)
webhook "notable" (function() return "nope" end)
webhook "badevent" (function() return { { severity = "loud", text = "x" } } end)
webhook "forever" (function() while true do end end)
"""
LUA_TOKEN = "lua-hook-token-0123456789"


@evidence
def test_http_hook_lua_handler():
    hooks = ['{ name = "%s"; handler = "lua:%s"; token = "%s"; }' % (n, n, LUA_TOKEN)
             for n in ("custom", "broken", "notable", "badevent", "forever", "missing")]
    d = start(routes=LUA_HOOKS, hooks_extra=hooks)
    tap = ConsoleTap(d)
    payload = {"checks": [{"host": "db", "ok": False}], "meta": {"n": None, "deep": [1, [2.5]]}}
    st, b = post_hook(d, "custom", payload, token=LUA_TOKEN, headers={"X-Source": "ci-42"})
    assert st == 200 and b["events"] == 1, (st, b)
    opened = b["ids"][0]
    # The payload as plain tables, the headers in lower case, the token hidden.
    tap.wait(r"^\[%s\] custom: db failed \(from ci-42, 1 checks, auth nil, via custom\)$" % opened)
    payload["checks"][0]["ok"] = True
    st, b = post_hook(d, "custom", payload, token=LUA_TOKEN, headers={"X-Source": "ci-43"})
    assert st == 200 and b["events"] == 1, (st, b)
    # The handler's key (scoped to the hook) ties the resolution to it.
    tap.wait(r"^\[E\d+\] custom: db recovered \(from ci-43, .*\) \(resolves %s\)$" % opened)
    # A failing handler is the server's fault: 500, so the sender retries.
    st, b = post_hook(d, "broken", {"x": 7}, token=LUA_TOKEN)
    assert st == 500 and b["error"].startswith("handler broken: "), (st, b)
    assert "boom 7" in b["error"] and "\n" not in b["error"], b
    wait_for(lambda: "hook broken: 127.0.0.1: Lua handler broken failed" in d.logtext(),
             what="the handler's error in the log")
    st, b = post_hook(d, "notable", {}, token=LUA_TOKEN)
    assert st == 500 and "returned string, not a list of events" in b["error"], (st, b)
    st, b = post_hook(d, "badevent", {}, token=LUA_TOKEN)
    assert st == 500 and "severity must be info, warning or critical" in b["error"], (st, b)
    st, b = post_hook(d, "missing", {}, token=LUA_TOKEN)
    assert st == 500 and "no webhook handler 'missing' is loaded" in b["error"], (st, b)
    st, b = post_hook(d, "forever", {}, token=LUA_TOKEN)
    assert st == 500 and "instruction limit" in b["error"], (st, b)
    # Bounded conversion: too deep a payload is refused by the converter.
    deep = 1
    for _ in range(40):
        deep = [deep]
    st, b = post_hook(d, "custom", {"checks": [], "deep": deep}, token=LUA_TOKEN)
    assert st == 500 and "nests deeper than 32 levels" in b["error"], (st, b)
    # Auth and JSON errors come before the handler.
    st, b = post_hook(d, "custom", payload)
    assert st == 401, (st, b)
    st, b = post_hook(d, "custom", None, token=LUA_TOKEN, raw=b"{nope")
    assert st == 400 and b["error"].startswith("invalid JSON"), (st, b)
    # The daemon is unaffected, and the handler still works.
    assert get_json(d, "/health")["ok"] is True
    payload["checks"][0] = {"host": "mail", "ok": False}
    st, b = post_hook(d, "custom", payload, token=LUA_TOKEN)
    assert st == 200 and b["events"] == 1, (st, b)
    m = parse_metrics(request(d, "GET", "/metrics")[2].decode())
    web = ("channel", "web")
    assert m["switchboard_webhook_requests_total",
             (web, ("hook", "broken"), ("result", "error"))] == 1, m
    assert m["switchboard_webhook_requests_total",
             (web, ("hook", "custom"), ("result", "accepted"))] == 3, m


@evidence
def test_http_hook_lua_handler_config_errors():
    for hook, msg in (('{ name = "h"; handler = "lua:"; token = "%s"; }' % LUA_TOKEN,
                       "the Lua handler's name"),
                      ('{ name = "h"; handler = "lua:x"; format = "json"; token = "%s"; }'
                       % LUA_TOKEN, "a Lua handler takes no format"),
                      ('{ name = "h"; handler = "nagios"; token = "%s"; }' % LUA_TOKEN,
                       "handler must be alertmanager, grafana, json or lua:<name>"),
                      ('{ name = "h"; format = "json"; token = "%s"; '
                       'hmac_timestamp_header = "X-T"; }' % LUA_TOKEN,
                       "hmac_timestamp_header needs hmac_secret")):
        d = Daemon(conf_text=conf_text(hooks_extra=[hook]))
        p = subprocess.run([sbtest.BIN, "-c", d.conf, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and msg in p.stderr, (hook, p.returncode, p.stderr)


GRAFANA_TS_HOOK = ('{ name = "grafana-ts"; format = "grafana"; hmac_secret = "%s"; '
                   'hmac_header = "X-Grafana-Alerting-Signature"; '
                   'hmac_timestamp_header = "X-Grafana-Alerting-Timestamp"; hmac_max_skew = 60; }'
                   % GRAFANA_SECRET)


def grafana_ts_sign(body, ts, secret=GRAFANA_SECRET):
    """What Grafana's webhook contact point sends with a timestamp header:
    the bare hex HMAC-SHA256 of "<unix time>:<body>"."""
    return hmac.new(secret.encode(), ts.encode() + b":" + body, hashlib.sha256).hexdigest()


@evidence
def test_http_hook_grafana_signed_timestamp():
    d = start(hooks_extra=[GRAFANA_TS_HOOK])
    tap = ConsoleTap(d)
    body = json.dumps(GRAFANA_FIRING).encode()
    now = str(int(time.time()))

    def post(sig, ts):
        h = {"X-Grafana-Alerting-Signature": sig}
        if ts is not None:
            h["X-Grafana-Alerting-Timestamp"] = ts
        return post_hook(d, "grafana-ts", None, raw=body, headers=h)

    st, b = post(grafana_ts_sign(body, now), now)
    assert st == 200 and b["events"] == 1, (st, b)
    tap.wait(r"^\[E\d+\] grafana-ts: \[FIRING:1\] InletHot: ftp: inlet at 41 C \[critical\]$")
    # No timestamp, a signature of the body alone, a timestamp changed
    # after signing, a replay from an hour ago (correctly signed).
    st, b = post(grafana_ts_sign(body, now), None)
    assert st == 401 and b["error"] == "no signed timestamp", (st, b)
    plain = hmac.new(GRAFANA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    st, b = post(plain, now)
    assert st == 401 and b["error"] == "signature mismatch", (st, b)
    st, b = post(grafana_ts_sign(body, now), str(int(now) + 1))
    assert st == 401 and b["error"] == "signature mismatch", (st, b)
    old = str(int(time.time()) - 3600)
    st, b = post(grafana_ts_sign(body, old), old)
    assert st == 401 and b["error"] == "stale or bad timestamp", (st, b)
    future = str(int(time.time()) + 3600)
    st, b = post(grafana_ts_sign(body, future), future)
    assert st == 401 and b["error"] == "stale or bad timestamp", (st, b)
    wait_for(lambda: "hook grafana-ts: 127.0.0.1: refused: stale or bad timestamp"
             in d.logtext(), what="the refusal in the log")


# ---------------------------------------------------------------- timeouts

@evidence
def test_http_command_timeout_504():
    """A command that outlives command_timeout answers 504 and goes on;
    its late answer is dropped.  The slow command: sensors on an IPMI node
    whose "BMC" is a UDP socket that never answers (FreeIPMI's session
    timeout, 5 s, ends it)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    sbtest.add_cleanup(silent.close)
    node = """  { name = "slow"; poll_interval = 30.0;
    hal = { backend = "ipmi"; host = "127.0.0.1"; port = %d; username = "u";
            password = "p"; timeout = 5.0; request_timeout = 10.0; }; },
""" % silent.getsockname()[1]
    text = conf_text(section=http_section(command_timeout=1))
    assert "nodes = (\n" in text
    text = text.replace("nodes = (\n", "nodes = (\n" + node, 1)
    d = Daemon(conf_text=text)
    os.chmod(d.conf, 0o600)     # it holds a BMC password
    d.start()
    _current["daemon"] = d
    m = wait_for(lambda: re.search(r"http web: listening on (https?)://127\.0\.0\.1:(\d+)/",
                                   d.logtext()), what="the http channel to listen")
    d.scheme, d.port = m.group(1), int(m.group(2))
    t0 = time.monotonic()
    st, b = command(d, "sensors", node="slow", path="/api/nodes/slow/command")
    took = time.monotonic() - t0
    assert st == 504 and b["ok"] is False, (st, b)
    assert b["error"].startswith("the command did not finish in time"), b
    assert 0.9 <= took < 4, took
    wait_for(lambda: "command \"/api/nodes/slow/command\" still running after 1000 ms; "
             "answered 504" in d.logtext(), what="the timeout in the log")
    # Meanwhile and afterwards the daemon serves others; the late end of
    # the command is dropped without harm.
    st, b = command(d, "status", node="web")
    assert st == 200, (st, b)
    time.sleep(6)
    assert get_json(d, "/health")["ok"] is True
    m = parse_metrics(request(d, "GET", "/metrics")[2].decode())
    assert m["switchboard_http_commands_total", (("channel", "web"), ("result", "timeout"))] == 1
    assert m["switchboard_http_commands_total", (("channel", "web"), ("result", "ok"))] == 1


# ---------------------------------------------------------------- webhooks out

class Receiver:
    """A local HTTP server that answers POSTs with the next status of a
    script (the last one repeats) and records every body."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.got = []           # (status answered, body, headers)
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    st = outer.statuses[min(len(outer.got), len(outer.statuses) - 1)]
                    outer.got.append((st, body, dict(self.headers)))
                self.send_response(st)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        sbtest.add_cleanup(self.stop)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()

    def bodies(self):
        with self.lock:
            return list(self.got)


@evidence
def test_http_out_retries_then_delivers_once():
    recv = Receiver([500, 500, 200])
    extra = """    webhooks = (
      { name = "chat"; url = "http://127.0.0.1:%d/hook"; format = "slack";
        token = "outgoing-token"; retry_delay = 0.2; timeout = 5; }
    );
""" % recv.port
    routes = 'route { source = "ci", to = { "web:chat", "console" } }\nroute { to = { "console" } }\n'
    d = start(extra, routes=routes)
    st, b = post_hook(d, "ci", {"node": "web", "severity": "critical", "text": "deploy 42 failed"},
                      token=CI_HOOK_TOKEN)
    assert st == 200, (st, b)
    # The spool retries with its own backoff (1 s, then 2 s).
    wait_for(lambda: len(recv.bodies()) >= 3 and recv.bodies(), what="three attempts",
             timeout=60)
    got = recv.bodies()
    assert [g[0] for g in got] == [500, 500, 200], got
    for status, body, headers in got:
        assert json.loads(body) == {"text": "[%s] ci: web: deploy 42 failed" % b["ids"][0]}, body
        assert headers["Content-Type"] == "application/json", headers
        assert headers["Authorization"] == "Bearer outgoing-token", headers
    wait_for(lambda: "webhook chat: delivered (HTTP 200) after retries" in d.logtext(),
             what="the delivery in the log")
    assert d.logtext().count("webhook chat: attempt") == 2, d.logtext()
    # Exactly once: the queue is empty and nothing more arrives.
    metrics = parse_metrics(request(d, "GET", "/metrics")[2].decode())
    key = ('switchboard_webhook_deliveries_total', (("channel", "web"), ("result", "delivered"),
                                                  ("webhook", "chat")))
    assert metrics[key] == 1, metrics
    assert metrics[key[0], (("channel", "web"), ("result", "retried"), ("webhook", "chat"))] == 2
    assert metrics["switchboard_webhook_queue", (("channel", "web"), ("webhook", "chat"))] == 0
    # The spool's view: delivered, two retries, nothing waiting.
    def spool_empty():
        m = parse_metrics(request(d, "GET", "/metrics")[2].decode())
        return m if m["switchboard_spool_depth", ()] == 0 else None
    m = wait_for(spool_empty, what="the spool to empty")
    assert m["switchboard_notifications_retries_total", ()] >= 2, m
    assert m["switchboard_notifications_delivered_total", ()] >= 1, m
    time.sleep(1.5)
    assert len(recv.bodies()) == 3


@evidence
def test_http_out_gives_up_on_client_error():
    recv = Receiver([400])
    extra = """    webhooks = (
      { name = "chat"; url = "http://127.0.0.1:%d/"; format = "json"; retry_delay = 0.2; }
    );
""" % recv.port
    d = start(extra, routes='route { source = "ci", to = { "web:chat" } }\n')
    st, b = post_hook(d, "ci", {"text": "one"}, token=CI_HOOK_TOKEN)
    assert st == 200, (st, b)
    wait_for(lambda: "webhook chat: dropped after 1 attempt: HTTP 400" in d.logtext(),
             what="the drop in the log")
    got = recv.bodies()
    assert len(got) == 1, got
    body = json.loads(got[0][1])
    # The generic format: the spooled notice's JSON, with the channel and
    # the time of the POST added.
    eid = b["ids"][0]
    assert body["text"] == "[%s] ci: one" % eid and body["channel"] == "web", body
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["time"]), body
    assert isinstance(body["id"], int) and body["id"] > 0, body
    ev, = body["events"]
    assert ev["id"] == eid and ev["source"] == "ci" and ev["severity"] == "info", ev
    assert ev["text"] == "ci: one" and ev["node"] is None, ev
    # Dropped for good: not retried.
    time.sleep(2.5)
    assert len(recv.bodies()) == 1


# ---------------------------------------------------------------- metrics

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? ([-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|NaN|\+Inf|-Inf))$"
                    % (METRIC_NAME, LABEL, LABEL))


def parse_metrics(text):
    """A strict parser of Prometheus' text format 0.0.4: every line is a
    HELP, a TYPE or a sample; a family's HELP and TYPE come once, before
    its samples; a counter's name ends in _total; no series repeats.
    Returns {(name, sorted label pairs): value}."""
    assert text.endswith("\n"), "the text must end with a newline"
    types, helps, out = {}, set(), {}
    current = None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(METRIC_NAME, name) and name not in helps, where
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary",
                                                     "untyped"), where
            assert parts[2] not in types, "TYPE twice: " + where
            types[parts[2]] = parts[3]
            current = parts[2]
            continue
        assert not line.startswith("#") and line.strip() == line and line, where
        m = SAMPLE.match(line)
        assert m, "not a sample: " + where
        name = m.group(1)
        assert name == current, "sample outside its family: " + where
        labels = tuple(sorted(re.findall(LABEL, m.group(2) or "")))
        assert len({k for k, _ in labels}) == len(labels), "label twice: " + where
        assert (name, labels) not in out, "series twice: " + where
        if types[name] == "counter":
            assert name.endswith("_total"), "counter without _total: " + where
        out[name, labels] = float(m.group(m.lastindex))
    return out


@evidence
def test_http_metrics_parse():
    d = start()
    wait_all_ok(d)
    command(d, "status")
    command(d, "power cycle", node="web", token=VIEW_TOKEN)     # refused
    post_hook(d, "ci", {"text": "x"}, token=CI_HOOK_TOKEN)
    post_hook(d, "ci", {"text": "x"})                           # unauthorized
    st, h, b = request(d, "GET", "/metrics")
    assert st == 200 and h["content-type"] == "text/plain; version=0.0.4; charset=utf-8", (st, h)
    m = parse_metrics(b.decode())
    assert m["switchboard_nodes", (("state", "ok"),)] == 4, m
    assert m["switchboard_nodes", (("state", "critical"),)] == 0, m
    for n in NODES:
        assert m["switchboard_node_state", (("node", n), ("state", "ok"))] == 1
        assert m["switchboard_node_state", (("node", n), ("state", "down"))] == 0
        assert abs(m["switchboard_node_since_seconds", (("node", n),)] - time.time()) < 300
    web = ("channel", "web")
    assert m["switchboard_http_commands_total", (web, ("result", "ok"))] == 1, m
    assert m["switchboard_http_commands_total", (web, ("result", "refused"))] == 1, m
    assert m["switchboard_webhook_requests_total", (web, ("hook", "ci"), ("result", "accepted"))] == 1
    assert m["switchboard_webhook_requests_total",
             (web, ("hook", "ci"), ("result", "unauthorized"))] == 1
    assert m["switchboard_webhook_events_total", (web, ("hook", "ci"))] == 1
    assert m["switchboard_http_requests_total", (("channel", "web"), ("code", "401"))] >= 1, m
    # 200s: wait_all_ok's GETs (one at least), status, the accepted hook
    assert m["switchboard_http_requests_total", (("channel", "web"), ("code", "200"))] >= 3, m
    # What the core counts, for every channel.
    for ch, drv in (("web", "http"), ("console", "console")):
        assert m["switchboard_channel_up", (("channel", ch), ("driver", drv))] == 1, m
        assert ("switchboard_channel_reconnects_total", (("channel", ch), ("driver", drv))) in m
    webin = ("switchboard_channel_messages_total",
             (("channel", "web"), ("direction", "in"), ("driver", "http")))
    assert m[webin] == 2, m
    assert m["switchboard_commands_total", (("result", "ok"),)] >= 1, m
    assert m["switchboard_commands_total", (("result", "refused"),)] >= 1, m
    assert ("switchboard_commands_rate_limited_total", ()) in m
    assert m["switchboard_events_total", ()] >= 1, m
    assert m["switchboard_store_commits_total", ()] >= 1, m
    assert m["switchboard_store_commit_failures_total", ()] == 0, m
    for name in ("switchboard_spool_depth", "switchboard_events_open",
                 "switchboard_notifications_delivered_total",
                 "switchboard_notifications_dropped_total",
                 "switchboard_notifications_failed_total",
                 "switchboard_notifications_escalations_total",
                 "switchboard_events_deduplicated_total", "switchboard_events_muted_total"):
        assert (name, ()) in m, name
    # The parser is strict: it refuses what Prometheus would.
    for bad in ("x 1\n", "# TYPE x counter\nx 1\n", "# TYPE x_total gauge\nx_total{a=\"1\",a=\"2\"} 1\n",
                "# TYPE y gauge\ny 1\ny 2\n", "# TYPE y gauge\ny one\n"):
        try:
            parse_metrics(bad)
        except AssertionError:
            continue
        raise AssertionError("the metrics parser took %r" % bad)


# ---------------------------------------------------------------- live events

class EventStream:
    """A client of /api/events: http.client on a raw response, parsed into
    (event, data) pairs."""

    def __init__(self, d, token=None):
        self.c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=sbtest.WAIT)
        h = {"Accept": "text/event-stream"}
        if token:
            h["Authorization"] = "Bearer " + token
        self.c.request("GET", "/api/events", headers=h)
        self.sock = self.c.sock     # the connection lets go of it for a streamed answer
        self.r = self.c.getresponse()
        self.buf = ""
        self.events = []
        sbtest.add_cleanup(self.c.close)

    def wait(self, pred, what, timeout=sbtest.WAIT):
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events:
                if pred(*ev):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError("no event %s; got %r" % (what, [e[0] for e in self.events]))
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = self.r.read1(65536).decode()
            except socket.timeout:
                continue
            if not data:
                raise AssertionError("the event stream ended")
            self.buf += data
            while "\n\n" in self.buf:
                block, self.buf = self.buf.split("\n\n", 1)
                event, payload = "message", []
                for line in block.split("\n"):
                    if line.startswith(":"):
                        continue
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "event":
                        event = v
                    elif k == "data":
                        payload.append(v)
                if payload:
                    self.events.append((event, json.loads("\n".join(payload))))


@evidence
def test_http_sse_snapshot_and_live_change():
    d = start(routes='route { to = { "console", "web" } }\n')
    wait_all_ok(d)
    es = EventStream(d)
    assert es.r.status == 200 and es.r.getheader("Content-Type") == "text/event-stream"
    ev = es.wait(lambda e, o: e == "snapshot", "snapshot")
    assert [n["name"] for n in ev[1]["nodes"]] == list(NODES), ev
    assert all(n["state"] == "ok" for n in ev[1]["nodes"]), ev
    d.ok("sim set mail cpu_temp 95")
    ev = es.wait(lambda e, o: e == "node" and o["name"] == "mail" and o["state"] == "critical",
                 "mail critical")
    assert ev[1]["reason"] == "cpu_temp 95 C (critical >= 90)", ev
    assert {s["name"]: s["value"] for s in ev[1]["sensors"]}["cpu_temp"] == 95.0, ev
    # The routed event reaches the channel's default audience: a notice.
    ev = es.wait(lambda e, o: e == "notice" and "mail: ok -> critical" in o["text"], "the notice")
    # Two streams at once; both see the next change.
    es2 = EventStream(d)
    es2.wait(lambda e, o: e == "snapshot", "second snapshot")
    d.ok("sim set mail cpu_temp 40")
    for s in (es, es2):
        s.wait(lambda e, o: e == "node" and o["name"] == "mail" and o["state"] == "ok",
               "mail ok again")
    st, h, b = request(d, "POST", "/api/events")
    assert st == 405, st


@evidence
def test_http_sse_keepalive_and_stream_limit():
    d = start("    keepalive = 0.3;\n    max_event_streams = 1;\n")
    es = EventStream(d)
    es.wait(lambda e, o: e == "snapshot", "snapshot")
    # The keep-alive comments keep coming while nothing changes.
    deadline = time.monotonic() + sbtest.WAIT
    seen = ""
    while seen.count(": keepalive") < 2:
        assert time.monotonic() < deadline, "no keep-alive comments: %r" % seen
        es.sock.settimeout(1)
        try:
            seen += es.r.read1(4096).decode()
        except socket.timeout:
            pass
    st, h, b = request(d, "GET", "/api/events")
    assert st == 503 and json.loads(b)["error"] == "too many event streams", (st, b)
    es.r.close()
    es.sock.close()
    # The first stream's slot frees once its close is noticed.
    wait_for(lambda: request(d, "GET", "/health")[0] == 200 and
             "0 event streams" in d.ok("core show channels"), what="the stream to be gone")


# ---------------------------------------------------------------- limits

@evidence
def test_http_limits_connection_cap():
    d = start("    max_connections = 3;\n    idle_timeout = 30;\n")
    idle = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=sbtest.WAIT)
        sbtest.add_cleanup(s.close)
        idle.append(s)
    wait_for(lambda: "3 connections" in d.ok("core show channels"), what="three connections")
    s = socket.create_connection(("127.0.0.1", d.port), timeout=sbtest.WAIT)
    sbtest.add_cleanup(s.close)
    answer = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
    assert b'"too many connections"' in answer, answer
    for c in idle:
        c.close()
    wait_for(lambda: "0 connections" in d.ok("core show channels"), what="the connections to close")
    assert get_json(d, "/health")["ok"] is True
    m = parse_metrics(request(d, "GET", "/metrics")[2].decode())
    assert m["switchboard_http_connections_refused_total", (("channel", "web"), ("reason", "limit"))] == 1


def cpu_seconds(pid):
    """User and system CPU the process has used, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@evidence
def test_http_out_of_descriptors_pauses_accepting():
    """With no descriptor left for a connection (the daemon's limit is
    lowered under it), the connection waits in the backlog and the
    listening socket stays readable: the channel stops accepting for a
    while instead of waking on it again and again, says so once, counts
    the pauses in /metrics, and serves again once descriptors are free."""
    d = start("    max_connections = 100;\n    idle_timeout = 60;\n")
    pid = d.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    held = []
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE,
                         (len(os.listdir("/proc/%d/fd" % pid)) + 2, hard))
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=sbtest.WAIT)
            sbtest.add_cleanup(s.close)
            held.append(s)
        wait_for(lambda: "http web: cannot accept a connection: Too many open files" in
                 d.logtext(), what="the channel to pause")
        # A window, not a wait: what the daemon spends in it.  Waking on the
        # readable socket again and again is a whole core and a log line a
        # turn; pausing is a few wake-ups a second.
        cpu = cpu_seconds(pid)
        time.sleep(1.0)
        assert cpu_seconds(pid) - cpu < 0.5, cpu_seconds(pid) - cpu
        assert d.logtext().count("cannot accept a connection") == 1, d.logtext()[-2000:]
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    for s in held:
        s.close()
    wait_for(lambda: get_json(d, "/health")["ok"] is True, what="the channel to serve again")
    m = parse_metrics(request(d, "GET", "/metrics")[2].decode())
    assert m["switchboard_http_accept_pauses_total", (("channel", "web"),)] >= 1


# ---------------------------------------------------------------- TLS

@evidence
def test_http_tls_self_signed():
    if shutil.which("openssl") is None:
        print("    skipped: no openssl to make a certificate")
        return
    dirp = sbtest.tmpdir()
    cert, key = os.path.join(dirp, "cert.pem"), os.path.join(dirp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True,
                   timeout=60)
    d = start('    tls_cert = "%s";\n    tls_key = "%s";\n' % (cert, key))
    assert d.scheme == "https"
    ctx = ssl.create_default_context(cafile=cert)
    st, h, b = request(d, "GET", "/health", ctx=ctx)
    assert st == 200 and json.loads(b)["ok"] is True, (st, b)
    st, h, b = request(d, "POST", "/api/command", body={"command": "status"}, token=CI_TOKEN,
                       ctx=ctx)
    assert st == 200, (st, b)
    # A client that does not trust the certificate is refused by itself.
    try:
        request(d, "GET", "/health", ctx=ssl.create_default_context())
        raise AssertionError("an untrusted certificate was accepted")
    except ssl.SSLError:
        pass
    # Plain HTTP gets no answer.
    d.scheme = "http"
    try:
        st, h, b = request(d, "GET", "/health", timeout=10)
        raise AssertionError("plain HTTP was answered on the TLS port: %s" % st)
    except (http.client.HTTPException, ConnectionError, socket.timeout):
        pass


# ---------------------------------------------------------------- reload

@evidence
def test_http_reload_through_api_restarts_channel():
    d = start()
    wait_all_ok(d)
    # Unchanged section: the channel keeps running and answers the command.
    st, b = command(d, "core reload", token=ADMIN_TOKEN)
    assert st == 200 and "reloaded" in b["output"], (st, b)
    # Changed section: the channel that carries the command restarts under
    # it; the answer is a 503 saying so, and the new channel takes over.
    # An event stream open on the old channel (its connection parked) is
    # ended cleanly.
    es = EventStream(d)
    es.wait(lambda e, o: e == "snapshot", "snapshot")
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("command_timeout = 20;", "command_timeout = 21;"))
    st, b = command(d, "core reload", token=ADMIN_TOKEN)
    assert st == 503 and "restarting" in b["error"], (st, b)
    wait_for(lambda: d.logtext().count("http web: listening on") == 2, what="the channel to restart")
    try:
        es.wait(lambda e, o: False, "none: the stream must end")
        raise AssertionError("the old event stream went on")
    except AssertionError as e:
        assert "the event stream ended" in str(e), e
    port = int(re.findall(r"http web: listening on http://127\.0\.0\.1:(\d+)/", d.logtext())[-1])
    d.port = port
    assert get_json(d, "/health")["ok"] is True
    st, b = command(d, "status")
    assert st == 200, (st, b)
    d.ok("core show nodes")


# ---------------------------------------------------------------- the browser

class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: commands on fd 3, answers on fd 4, each a
    JSON text ended by a NUL byte)."""

    FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1100,700"]

    def __init__(self, binary):
        self.profile = sbtest.tmpdir()
        cmd_r, self.cmd_w = os.pipe()
        self.ans_r, ans_w = os.pipe()

        def child():
            import fcntl
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(ans_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen([binary] + self.FLAGS + ["--user-data-dir=" + self.profile,
                                                              "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     preexec_fn=child, close_fds=False)
        os.close(cmd_r)
        os.close(ans_w)
        self.buf = b""
        self.next_id = 0
        sbtest.add_cleanup(self.close)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method, params=None, session=None, timeout=sbtest.WAIT):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                ans = json.loads(raw)
                if ans.get("id") == self.next_id:
                    if "error" in ans:
                        raise AssertionError("%s: %s" % (method, ans["error"]))
                    return ans["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("Chromium did not answer %s" % method)
            r, _, _ = select.select([self.ans_r], [], [], left)
            if r:
                data = os.read(self.ans_r, 1 << 20)
                if not data:
                    raise AssertionError("Chromium exited")
                self.buf += data

    def page(self, method, params=None):
        return self.call(method, params, session=self.session)

    def eval(self, expr):
        res = self.page("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in res:
            raise AssertionError("page script failed: %s" % res["exceptionDetails"])
        return res["result"].get("value")

    def screenshot(self, path):
        data = self.page("Page.captureScreenshot", {"format": "png"})["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            os.write(self.cmd_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for fd in (self.cmd_w, self.ans_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()


# What the page shows: the live link, the lost-link banner and each row's
# state, state word, reason and dot colour ("{}" while it is still loading).
ROWS = """(() => {
  const lost = document.getElementById('lost');
  if (!document.body || !lost) return '{}';
  return JSON.stringify({
    link: document.body.dataset.link || '',
    lost: !lost.hidden,
    rows: Object.fromEntries([...document.querySelectorAll('li.node')].map(li => [
      li.dataset.node,
      [li.dataset.state, li.querySelector('.state').textContent,
       li.querySelector('.reason').textContent,
       getComputedStyle(li.querySelector('.dot')).backgroundColor]])),
  });
})()"""


@evidence
def test_http_browser_status_page():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        print("    skipped: Chromium is not installed (Debian package chromium; tools/deps installs it)")
        return
    d = start()
    wait_all_ok(d)
    b = Chromium(binary)
    b.page("Page.enable")
    b.page("Page.navigate", {"url": "http://127.0.0.1:%d/" % d.port})

    def view():
        return json.loads(b.eval(ROWS) or "{}")

    v = wait_for(lambda: (lambda v: v if v.get("link") == "live" and len(v.get("rows", {})) == 4 and
                          all(r[0] == "ok" for r in v["rows"].values()) else None)(view()),
                 what="the page to show four nodes ok, live")
    assert sorted(v["rows"]) == sorted(NODES), v
    for name, (state, word, reason, colour) in v["rows"].items():
        assert word == "ok" and reason == "all 6 sensors normal", (name, v)
        assert colour == "rgb(46, 157, 72)", (name, colour)        # green
    assert b.eval("document.getElementById('summary').textContent") == "4 nodes: 4 ok"
    shots = os.path.join(LOGS, "test_http_browser_status_page")
    b.screenshot(os.path.join(shots, "1-all-ok.png"))
    # A change shows without a reload: mail turns red, with its reason.
    b.eval("window.__marker = 42")
    d.ok("sim set mail cpu_temp 95")
    v = wait_for(lambda: (lambda v: v if v["rows"].get("mail", [""])[0] == "critical" else None)(view()),
                 timeout=2 * 10, what="mail critical on the page")
    state, word, reason, colour = v["rows"]["mail"]
    assert word == "critical" and reason == "cpu_temp 95 C (critical >= 90)", v
    assert colour == "rgb(208, 48, 47)", colour                      # red
    assert b.eval("window.__marker") == 42, "the page was reloaded"
    # A row opens to show its sensors and their thresholds.
    b.eval("document.querySelector('li[data-node=mail] button.row').click()")
    rows = wait_for(lambda: b.eval("[...document.querySelectorAll('li[data-node=mail] table.sensors tbody tr')]"
                                   ".map(r => r.textContent)"), what="the sensor table")
    assert any("cpu_temp" in r and "95 C" in r and "crit \u2265 90" in r for r in rows), rows
    b.screenshot(os.path.join(shots, "2-mail-critical.png"))
    # With a token, an open row runs commands through the API.
    b.eval("document.getElementById('token').value = %s;"
           "document.getElementById('token-form').requestSubmit()" % json.dumps(CI_TOKEN))
    wait_for(lambda: b.eval("document.querySelector('li[data-node=mail] form.command input')"
                            " !== null"), what="the command form")
    b.eval("const f = document.querySelector('li[data-node=mail] form.command');"
           "f.querySelector('input').value = 'sensors cpu_temp'; f.requestSubmit()")
    out = wait_for(lambda: (lambda t: t if t and not t.startswith("running") else None)(
        b.eval("(document.querySelector('li[data-node=mail] pre.output') || {}).textContent")),
        what="the command's output on the page")
    assert out.startswith("mail (power on):") and "95 C" in out and "fan1" not in out, out
    # The daemon goes away: the page says the live link is lost.
    d.stop()
    wait_for(lambda: (lambda v: v if v["link"] == "lost" and v["lost"] else None)(view()),
             what="the page to show the link lost")
    b.screenshot(os.path.join(shots, "3-link-lost.png"))
    assert os.path.getsize(os.path.join(shots, "2-mail-critical.png")) > 10000
