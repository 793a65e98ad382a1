"""The XMPP test environment: a private prosody on loopback, operators that
are independent XMPP clients (Debian's python3-slixmpp, so a misunderstanding
of the protocol shared with chan_xmpp.c cannot make a test pass), and a
switchboard config for the XMPP channel.

    p = Prosody(operators=["admin", "viewer"], nodes=["web", "mail"]).start()
    p.register("admin", "pw")
    op = Operator(p, "admin", "pw").connect()
    op.wait_presence("mail@nodes.sb.test", lambda t, s, st: t == "available")
    op.send("mail@nodes.sb.test", "status")
    m = op.wait_message(lambda m: m["from_bare"] == "mail@nodes.sb.test")

Everything started here is registered with sbtest's cleanup, so no prosody
and no client thread outlives its test, even when the test fails.

Facts this relies on (see issue 5): prosody is started in the foreground
with "prosody -F --config FILE" and never with "--version" (not an option:
it starts a server on the system config); accounts come from
"prosodyctl --config FILE register"; slixmpp's process(timeout=) is broken,
so each client runs its own asyncio loop in its own thread.
"""
import asyncio
import os
import signal
import socket
import ssl
import sys
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import sbtest
from sbtest import free_port, port_open, wait_for  # noqa: F401 - re-exported

DOMAIN = "sb.test"
NODES_DOMAIN = "nodes." + DOMAIN
MUC_DOMAIN = "conference." + DOMAIN
GROUP = "Systems Management"
COMMANDS_NODE = "http://jabber.org/protocol/commands"


def lua_str(s):
    """A Lua string literal."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ---------------------------------------------------------------- prosody

class Prosody:
    """A private prosody: its own folder, config, certificate, data and log,
    on free loopback ports.  The host is sb.test, with the components
    nodes.sb.test (external, XEP-0114, secret self.secret) and
    conference.sb.test (MUC).

    operators and nodes fill mod_groups' "Systems Management" group: every
    operator gets every operator and every <node>@nodes.sb.test in its
    roster, subscription both.  Change them with set_group() before start()
    (or restart() after).
    """

    def __init__(self, operators=("admin",), nodes=(), domain=DOMAIN, secret="component-secret",
                 public_jids=True, debug=True, extra_modules=(), extra_global="", extra_host=""):
        self.dir = sbtest.tmpdir()
        self.domain = domain
        self.component = "nodes." + domain
        self.muc = "conference." + domain
        self.secret = secret
        self.c2s_port = free_port()
        self.component_port = free_port()
        self.conf = os.path.join(self.dir, "prosody.cfg.lua")
        self.log = os.path.join(self.dir, "prosody.log")
        self.out = os.path.join(self.dir, "prosody.out")      # its stdout and stderr
        self.pidfile = os.path.join(self.dir, "prosody.pid")
        self.data = os.path.join(self.dir, "data")
        self.groups_file = os.path.join(self.dir, "groups.txt")
        self.cert = os.path.join(self.dir, domain + ".crt")
        self.key = os.path.join(self.dir, domain + ".key")
        self.public_jids = public_jids
        self.debug = debug
        self.modules = ["roster", "saslauth", "tls", "disco", "ping", "groups", "smacks", "posix"]
        self.modules += list(extra_modules)
        self.extra_global = extra_global
        self.extra_host = extra_host
        self.proc = None
        self.paused = False
        self.starts = 0
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        self._make_cert()
        self.set_group(operators, nodes)
        self._write_conf()
        sbtest.add_cleanup(self._cleanup)

    # -- set-up

    def _make_cert(self):
        """A self-signed certificate, made offline, for the host and *.host
        (so nodes.<host> and conference.<host> are covered too)."""
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "30", "-keyout", self.key, "-out", self.cert,
             "-subj", "/CN=" + self.domain,
             "-addext", "subjectAltName=DNS:%s,DNS:*.%s" % (self.domain, self.domain)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise AssertionError("openssl failed: %s" % p.stderr)
        os.chmod(self.key, 0o600)

    def node_jid(self, node):
        return "%s@%s" % (node, self.component)

    def jid(self, user):
        return "%s@%s" % (user, self.domain)

    def set_group(self, operators=(), nodes=(), extra_jids=()):
        """Write mod_groups' file: one "Systems Management" group holding
        the operators (user names or bare JIDs), the node JIDs
        <node>@nodes.<host> (named after the node) and extra_jids."""
        self.group_operators = list(operators)
        self.group_nodes = list(nodes)
        lines = ["[%s]" % GROUP]
        for u in operators:
            lines.append(u if "@" in u else self.jid(u))
        for n in nodes:
            lines.append("%s=%s" % (self.node_jid(n), n))
        lines.extend(extra_jids)
        with open(self.groups_file, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _write_conf(self):
        root = os.getuid() == 0
        level = "debug" if self.debug else "info"
        text = """-- prosody config written by tests/e2e/xmpp_env.py: private, loopback only
{run_as_root}
pidfile = {pidfile}
data_path = {data}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{ }}
component_ports = {{ {comp} }}
component_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
modules_disabled = {{ "s2s" }}
network_settings = {{ nagle = false }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
allow_registration = false
log = {{ {level} = {log} }}
certificates = {dir}
ssl = {{ certificate = {cert}; key = {key}; }}
modules_enabled = {{ {modules} }}
groups_file = {groups}
{extra_global}

VirtualHost {domain}
    ssl = {{ certificate = {cert}; key = {key}; }}
{extra_host}

Component {component}
    component_secret = {secret}

Component {muc} "muc"
    muc_room_locking = false
    muc_room_default_public_jids = {public_jids}
""".format(run_as_root="run_as_root = true" if root else "",
           pidfile=lua_str(self.pidfile), data=lua_str(self.data), c2s=self.c2s_port,
           comp=self.component_port, level=level, log=lua_str(self.log), dir=lua_str(self.dir),
           modules="; ".join(lua_str(m) for m in self.modules), cert=lua_str(self.cert), key=lua_str(self.key), groups=lua_str(self.groups_file),
           extra_global=self.extra_global, extra_host=self.extra_host,
           domain=lua_str(self.domain), component=lua_str(self.component), secret=lua_str(self.secret),
           muc=lua_str(self.muc), public_jids="true" if self.public_jids else "false")
        with open(self.conf, "w") as f:
            f.write(text)

    # -- life cycle

    def start(self, timeout=sbtest.WAIT):
        """prosody -F --config FILE in the background; returns when the c2s
        and component ports accept connections."""
        if self.running():
            return self
        logf = open(self.out, "ab")
        self.proc = subprocess.Popen(["prosody", "-F", "--config", self.conf],
                                     stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     cwd=self.dir)
        logf.close()
        self.starts += 1

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("prosody exited with %s:\n%s" % (self.proc.returncode, self.tail()))
            return port_open(self.component_port) and self._stream_answers()
        wait_for(up, timeout, "prosody to answer on %d and %d" % (self.c2s_port, self.component_port))
        return self

    def _stream_answers(self):
        """True when prosody answers a stream header on the c2s port.  The
        ports open while prosody is still starting; only its running event
        loop answers, and by then its SIGTERM handler is in place (mod_posix
        sets it from a timer), so a stop() right after start() is clean."""
        try:
            with socket.create_connection(("127.0.0.1", self.c2s_port), timeout=2) as s:
                s.sendall(("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                           "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                           % self.domain).encode())
                got = b""
                while b"features" not in got:
                    chunk = s.recv(4096)
                    if not chunk:
                        return False
                    got += chunk
                # Close the stream and wait for prosody to close its side:
                # its session is then gone.  A probe dropped without that
                # may still be closing when a SIGTERM comes, and prosody
                # 0.12.3's shutdown then fails on the half-closed session
                # ("mod_c2s.lua:469: attempt to call a nil value (method
                # 'close')") and never exits.
                s.sendall(b"</stream:stream>")
                while s.recv(4096):
                    pass
                return True
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=sbtest.WAIT):
        """SIGTERM prosody (our child, by PID) and wait for it; returns its
        exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("prosody ignored SIGTERM for %s s" % timeout)
        wait_for(lambda: not port_open(self.c2s_port), 10, "prosody's c2s port to close")
        return self.proc.returncode

    def restart(self):
        self.stop()
        self.start()
        return self

    def pause(self):
        """SIGSTOP prosody: a hung server (connections open, nothing
        answered).  resume() or stop() continue it."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def _cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(sbtest.WAIT)
            except subprocess.TimeoutExpired:
                # prosody's own graceful shutdown stalled (seen once under
                # the sanitizer build's load): the fixture is not what is
                # under test, so it is killed and said, not failed.
                self.proc.kill()
                self.proc.wait()
                sys.stderr.write("    note: prosody ignored SIGTERM for %s s; killed\n"
                                 % sbtest.WAIT)
        return None

    def register(self, user, password):
        """Create an account with prosodyctl (works with prosody running or
        not: it writes the data folder)."""
        p = subprocess.run(["prosodyctl", "--config", self.conf, "register", user, self.domain, password],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                           cwd=self.dir)
        if p.returncode != 0:
            raise AssertionError("prosodyctl register %s failed (%d): %s%s"
                                 % (user, p.returncode, p.stdout, p.stderr))

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def tail(self, n=60):
        lines = self.logtext().splitlines()
        try:
            with open(self.out, errors="replace") as f:
                lines += f.read().splitlines()
        except OSError:
            pass
        return "\n".join(lines[-n:])


# ---------------------------------------------------------------- operator

def _slixmpp():
    """Import slixmpp lazily: a test file importing this module must load
    even where slixmpp is missing (the test then fails with a clear text)."""
    import slixmpp  # noqa: F401
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import StanzaPath
    from slixmpp.exceptions import IqError, IqTimeout
    return slixmpp, Callback, StanzaPath, IqError, IqTimeout


def _text(el, tag):
    """Text of the first direct child of el named tag (any namespace)."""
    if el is None:
        return None
    for c in el:
        if c.tag == tag or c.tag.endswith("}" + tag):
            return c.text or ""
    return None


def _child(el, tag):
    if el is None:
        return None
    for c in el:
        if c.tag == tag or c.tag.endswith("}" + tag):
            return c
    return None


def _error_condition(el):
    """The defined condition of a stanza's <error/>, e.g. service-unavailable."""
    err = _child(el, "error")
    if err is None:
        return None
    for c in err:
        if c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}") and not c.tag.endswith("}text"):
            return c.tag.split("}", 1)[1]
    return None


def _parse_form(x):
    """A XEP-0004 <x xmlns='jabber:x:data'/> as a plain dict."""
    if x is None:
        return None
    form = {"type": x.get("type"), "title": _text(x, "title"),
            "instructions": [c.text or "" for c in x if c.tag.endswith("}instructions")],
            "fields": {}, "order": []}
    for f in x:
        if not f.tag.endswith("}field"):
            continue
        var = f.get("var")
        values = [v.text or "" for v in f if v.tag.endswith("}value")]
        options = []
        for o in f:
            if o.tag.endswith("}option"):
                options.append((o.get("label"), _text(o, "value")))
        form["fields"][var] = {"type": f.get("type"), "label": f.get("label"),
                               "values": values, "value": values[0] if values else None,
                               "options": options, "required": _child(f, "required") is not None,
                               "desc": _text(f, "desc")}
        form["order"].append(var)
    return form


def parse_command(iq_el):
    """An ad-hoc command response (<iq> with <command/>, or an error) as a
    dict: type, condition, status, sessionid, node, actions, execute,
    form, notes [(type, text)], xml."""
    out = {"type": iq_el.get("type"), "condition": _error_condition(iq_el),
           "xml": ET.tostring(iq_el, encoding="unicode"), "status": None, "sessionid": None,
           "node": None, "actions": [], "execute": None, "form": None, "notes": []}
    cmd = _child(iq_el, "command")
    if cmd is not None:
        out["status"] = cmd.get("status")
        out["sessionid"] = cmd.get("sessionid")
        out["node"] = cmd.get("node")
        acts = _child(cmd, "actions")
        if acts is not None:
            out["execute"] = acts.get("execute")
            out["actions"] = [a.tag.split("}", 1)[-1] for a in acts]
        out["form"] = _parse_form(_child(cmd, "x"))
        out["notes"] = [(n.get("type") or "info", n.text or "") for n in cmd if n.tag.endswith("}note")]
    return out


def _run_until(loop, done):
    """Run a client's loop until done, then cancel what is left and close
    the loop quietly."""
    try:
        loop.run_until_complete(done)
    finally:
        try:
            for _ in range(3):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                if not pending:
                    break
                for t in pending:
                    t.cancel()
                loop.run_until_complete(asyncio.wait(pending, timeout=2))
        except Exception:  # noqa: B902 - closing anyway
            pass
        loop.close()


class Operator:
    """An operator's XMPP client: a slixmpp ClientXMPP in its own thread,
    running its own asyncio loop until close() (slixmpp's
    process(timeout=) is broken).  It connects to prosody's c2s port on
    127.0.0.1 with STARTTLS, trusting the lab's self-signed certificate
    (verify=True checks the certificate against that very certificate as
    CA, host name included; verify=False trusts anything).

    Every method is thread-safe: the test thread calls them, the client's
    thread records what arrives under a lock.

    prosody may be any object with domain, c2s_port and cert (the PEM file
    to trust), plus register(user, password) when register=True: a
    Prosody, or a description of someone else's server (the demo's).

    What is recorded, per XMPP session (cleared when a new session starts:
    presence is per session):
      presence_of(jid)   last presence from that bare JID (any resource) or
                         that full JID: (type, show, status), with type
                         "available" (no type attribute), "unavailable",
                         "error", "subscribe", ...; show "" when absent
    and for the whole life of the object:
      self.presence_log  every presence: dict(seq, t, from, from_bare, type,
                         show, status, xml)
      self.messages      every message, errors and groupchat included:
                         dict(seq, t, from, from_bare, to, type, body,
                         thread, subject, id, condition, xml)

    If auto_reconnect (the default), a lost connection is retried every
    half second until close(): the session is new (no stream management),
    initial presence is sent again and joined rooms are joined again.
    """

    def __init__(self, prosody, user, password="secret", resource="test", register=True,
                 verify=True, auto_reconnect=True, host="127.0.0.1", port=None):
        self.prosody = prosody
        self.user = user
        self.password = password
        self.resource = resource
        self.bare = "%s@%s" % (user, prosody.domain)
        self.jid = "%s/%s" % (self.bare, resource)
        self.verify = verify
        self.auto_reconnect = auto_reconnect
        self.host = host
        self.port = port or prosody.c2s_port
        self.loop = None
        self.xmpp = None
        self.rooms = {}             # room bare JID -> nick, rejoined after reconnect
        self.presence_log = []
        self.messages = []
        self.sessions = 0           # XMPP sessions started so far
        self.failures = []          # failed_auth, ssl errors, stream errors ...
        self._cv = threading.Condition()
        self._seq = 0
        self._pres_bare = {}
        self._pres_full = {}
        self._online = False
        self._closing = False
        self._thread = None
        self._ready = threading.Event()
        self._done = None
        if register:
            prosody.register(user, password)
        sbtest.add_cleanup(self._cleanup)

    # -- life cycle

    def connect(self, timeout=sbtest.WAIT):
        """Start the client thread and wait until the session is up."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="operator-" + self.user, daemon=True)
            self._thread.start()
            if not self._ready.wait(timeout) or self.xmpp is None:
                raise AssertionError("operator %s: client thread did not start: %r"
                                     % (self.user, self.failures))
        self.wait_online(timeout)
        return self

    def wait_online(self, timeout=sbtest.WAIT, after_sessions=0):
        """Wait until a session is up (and, with after_sessions, until more
        than that many sessions were started: a reconnect happened)."""
        def ok():
            with self._cv:
                return self._online and self.sessions > after_sessions
        try:
            wait_for(ok, timeout, "operator %s online" % self.jid)
        except AssertionError:
            raise AssertionError("operator %s not online after %s s; failures: %r"
                                 % (self.jid, timeout, self.failures))
        return self

    def online(self):
        with self._cv:
            return self._online

    def close(self, timeout=10):
        """Disconnect and end the thread."""
        if self._thread is None or self.loop is None:
            return
        self._closing = True

        async def bye():
            try:
                if self.xmpp.transport is not None:
                    await asyncio.wait_for(self.xmpp.disconnect(wait=1.0), 3)
            except Exception:  # noqa: B902 - closing anyway
                pass
            self.xmpp.cancel_connection_attempt()
            if not self._done.done():
                self._done.set_result(True)
        try:
            asyncio.run_coroutine_threadsafe(bye(), self.loop).result(timeout)
        except Exception:  # noqa: B902
            self.loop.call_soon_threadsafe(lambda: self._done.done() or self._done.set_result(True))
        self._thread.join(timeout)
        self._thread = None

    def _cleanup(self):
        try:
            self.close()
        except Exception as e:  # noqa: B902
            return "operator %s did not close: %r" % (self.jid, e)
        return None

    def _run(self):
        try:
            self._run_client()
        except BaseException as e:  # noqa: B902 - the test thread reports it
            self._fail("client thread: %r" % e)
            self._ready.set()
            raise

    def _run_client(self):
        slixmpp, Callback, StanzaPath, _, _ = _slixmpp()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        self._done = loop.create_future()
        op = self

        class Client(slixmpp.ClientXMPP):
            async def get_dns_records(self, domain, port=None):
                # The address is given: never ask DNS about sb.test.
                return [(domain, op.host, op.port)]

        x = Client(self.jid, self.password)
        self.xmpp = x
        x.loop = loop
        # STARTTLS, the lab's certificate.
        if self.verify:
            ctx = ssl.create_default_context(cafile=self.prosody.cert)
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
            x.ca_certs = self.prosody.cert
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        x.ssl_context = ctx
        for p in ("xep_0030", "xep_0004", "xep_0045", "xep_0050", "xep_0199"):
            x.register_plugin(p)
        x.auto_authorize = True         # accept subscription requests (the daemon's, in agent mode)
        x.auto_subscribe = True
        x.register_handler(Callback("sbtest presence", StanzaPath("presence"), self._on_presence))
        x.register_handler(Callback("sbtest message", StanzaPath("message"), self._on_message))
        x.add_event_handler("session_start", self._on_session_start)
        x.add_event_handler("disconnected", self._on_disconnected)
        x.add_event_handler("connection_failed", self._on_connection_failed)
        x.add_event_handler("failed_auth", lambda *a: self._fail("failed_auth"))
        x.add_event_handler("ssl_invalid_chain", lambda e: self._fail("ssl_invalid_chain %r" % (e,)))
        x.add_event_handler("stream_error", lambda e: self._fail("stream_error %s" % e))
        x.connect(address=(self.host, self.port), force_starttls=True)
        self._ready.set()
        _run_until(loop, self._done)

    def _fail(self, what):
        with self._cv:
            self.failures.append(what)
            self._cv.notify_all()

    async def _on_session_start(self, event):
        try:
            await self.xmpp.get_roster(timeout=20)
        except Exception as e:  # noqa: B902
            self._fail("roster: %r" % e)
        with self._cv:
            self._pres_bare.clear()
            self._pres_full.clear()
        self.xmpp.send_presence()
        for room, nick in list(self.rooms.items()):
            self.xmpp.plugin["xep_0045"].join_muc(room, nick)
        with self._cv:
            self.sessions += 1
            self._online = True
            self._cv.notify_all()

    def _on_disconnected(self, reason):
        with self._cv:
            self._online = False
            self._cv.notify_all()
        if not self._closing and self.auto_reconnect:
            self.loop.call_later(0.5, self._reconnect)

    def _on_connection_failed(self, err):
        # slixmpp would retry with its own backoff (1, 3, 7, 15 s ...):
        # retry every half second instead, so tests stay quick.
        if not self._closing and self.auto_reconnect:
            self.xmpp.cancel_connection_attempt()
            self.loop.call_later(0.5, self._reconnect)

    def _reconnect(self):
        if self._closing or self.xmpp.transport is not None or self.xmpp.is_connecting():
            return
        self.xmpp.connect(address=(self.host, self.port), force_starttls=True)

    # -- what arrives

    def _on_presence(self, pres):
        el = pres.xml
        frm = el.get("from") or ""
        rec = {"t": time.monotonic(), "from": frm, "from_bare": frm.split("/", 1)[0],
               "type": el.get("type") or "available", "show": _text(el, "show") or "",
               "status": _text(el, "status") or "", "xml": ET.tostring(el, encoding="unicode")}
        key = (rec["type"], rec["show"], rec["status"])
        with self._cv:
            self._seq += 1
            rec["seq"] = self._seq
            self.presence_log.append(rec)
            self._pres_full[frm] = key
            self._pres_bare[rec["from_bare"]] = key
            self._cv.notify_all()

    def _on_message(self, msg):
        el = msg.xml
        frm = el.get("from") or ""
        rec = {"t": time.monotonic(), "from": frm, "from_bare": frm.split("/", 1)[0],
               "to": el.get("to") or "", "type": el.get("type") or "normal",
               "body": _text(el, "body"), "thread": _text(el, "thread"),
               "subject": _text(el, "subject"), "id": el.get("id"),
               "condition": _error_condition(el), "xml": ET.tostring(el, encoding="unicode")}
        with self._cv:
            self._seq += 1
            rec["seq"] = self._seq
            self.messages.append(rec)
            self._cv.notify_all()

    def mark(self):
        """A position in the record: pass it as since= to see only what
        arrives later."""
        with self._cv:
            return self._seq

    def presence_of(self, jid):
        """(type, show, status) last seen from jid in this session (bare:
        any resource), or None."""
        with self._cv:
            if "/" in jid:
                return self._pres_full.get(jid)
            return self._pres_bare.get(jid)

    def presences_since(self, since=0, jid=None):
        with self._cv:
            return [r for r in self.presence_log if r["seq"] > since
                    and (jid is None or r["from"] == jid or r["from_bare"] == jid)]

    def wait_presence(self, jid, pred, timeout=sbtest.WAIT):
        """Wait until presence_of(jid) satisfies pred(type, show, status);
        pred may also be a tuple compared with ==, or a presence type
        string ("available", "unavailable").  Returns the tuple."""
        if isinstance(pred, tuple):
            want = pred
            pred = lambda t, s, st: (t, s, st) == want  # noqa: E731
        elif isinstance(pred, str):
            want_t = pred
            pred = lambda t, s, st: t == want_t  # noqa: E731

        def ok():
            p = self.presence_of(jid)
            return p if p is not None and pred(*p) else None
        try:
            return self._wait(ok, timeout)
        except AssertionError:
            raise AssertionError("operator %s: presence of %s not as wanted after %s s; last: %r; "
                                 "recent presence stanzas:\n%s"
                                 % (self.bare, jid, timeout, self.presence_of(jid),
                                    "\n".join(r["xml"] for r in self.presences_since(0, jid)[-5:])))

    def messages_since(self, since=0):
        with self._cv:
            return [m for m in self.messages if m["seq"] > since]

    def wait_message(self, pred, timeout=sbtest.WAIT, since=0):
        """Wait for a message (recorded after since) with pred(m) true;
        returns it.  m: dict(from, from_bare, to, type, body, thread,
        subject, id, condition, xml)."""
        def ok():
            for m in self.messages_since(since):
                if pred(m):
                    return m
            return None
        try:
            return self._wait(ok, timeout)
        except AssertionError:
            raise AssertionError("operator %s: no wanted message after %s s; got since mark:\n%s"
                                 % (self.bare, timeout,
                                    "\n".join(m["xml"][:600] for m in self.messages_since(since)[-8:])
                                    or "(nothing)"))

    def _wait(self, ok, timeout):
        """Call ok() (under the lock, which is re-entrant) whenever
        something arrives, at least every half second, until it gives a
        true value or timeout passes."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                r = ok()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out")
                self._cv.wait(min(left, 0.5))

    # -- doing things (each runs on the client's loop)

    def _call(self, fn, *args, timeout=sbtest.WAIT):
        """Run fn(*args) on the client's loop; a coroutine is awaited."""
        async def run():
            r = fn(*args)
            if asyncio.iscoroutine(r) or isinstance(r, asyncio.Future):
                r = await r
            return r
        fut = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return fut.result(timeout + 5)

    def send(self, jid, body, thread=None, mtype="chat"):
        """Send a message; returns its id."""
        def do():
            m = self.xmpp.make_message(mto=jid, mbody=body, mtype=mtype)
            if thread is not None:
                m["thread"] = thread
            m["id"] = self.xmpp.new_id()
            m.send()
            return m["id"]
        return self._call(do)

    def send_raw(self, xml):
        """Write raw XML on the stream."""
        return self._call(lambda: self.xmpp.send_raw(xml))

    def send_presence(self, **kw):
        """slixmpp's send_presence(pto=, ptype=, pshow=, pstatus=...)."""
        return self._call(lambda: self.xmpp.send_presence(**kw))

    def send_iq_raw(self, xml, timeout=20):
        """Send <iq> given as XML text (an id is added when missing) and
        wait for its answer: dict(type, condition, xml), or None when no
        answer came within timeout (a stanza left unanswered)."""
        _, _, _, IqError, IqTimeout = _slixmpp()

        async def do():
            el = ET.fromstring(xml)
            iq = self.xmpp.Iq(xml=el)
            if not iq["id"]:
                iq["id"] = self.xmpp.new_id()
            try:
                res = await iq.send(timeout=timeout)
            except IqError as e:
                res = e.iq
            except IqTimeout:
                return None
            return {"type": res.xml.get("type"), "condition": _error_condition(res.xml),
                    "xml": ET.tostring(res.xml, encoding="unicode")}
        return self._call(do, timeout=timeout)

    def ping(self, jid, timeout=20):
        """XEP-0199 ping: True on a result, else the error condition."""
        r = self.send_iq_raw("<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % jid,
                             timeout=timeout)
        if r is None:
            return "timeout"
        return True if r["type"] == "result" else r["condition"]

    def disco_info(self, jid, node=None, timeout=20):
        """disco#info: dict(type, condition, identities [(category, type,
        name)], features set, xml)."""
        q = "<query xmlns='http://jabber.org/protocol/disco#info'%s/>" % (
            " node='%s'" % node if node else "")
        r = self.send_iq_raw("<iq type='get' to='%s'>%s</iq>" % (jid, q), timeout)
        if r is None:
            return None
        el = ET.fromstring(r["xml"])
        query = _child(el, "query")
        r["identities"] = []
        r["features"] = set()
        if query is not None:
            for c in query:
                if c.tag.endswith("}identity"):
                    r["identities"].append((c.get("category"), c.get("type"), c.get("name")))
                elif c.tag.endswith("}feature"):
                    r["features"].add(c.get("var"))
        return r

    def disco_items(self, jid, node=None, timeout=20):
        """disco#items: dict(type, condition, items [(jid, node, name)], xml)."""
        q = "<query xmlns='http://jabber.org/protocol/disco#items'%s/>" % (
            " node='%s'" % node if node else "")
        r = self.send_iq_raw("<iq type='get' to='%s'>%s</iq>" % (jid, q), timeout)
        if r is None:
            return None
        el = ET.fromstring(r["xml"])
        query = _child(el, "query")
        r["items"] = []
        if query is not None:
            for c in query:
                if c.tag.endswith("}item"):
                    r["items"].append((c.get("jid"), c.get("node"), c.get("name")))
        return r

    def subscribe(self, jid):
        """Ask for a subscription to jid's presence."""
        return self.send_presence(pto=jid, ptype="subscribe")

    def roster(self, timeout=20):
        """The server's roster: {jid: dict(name, subscription, groups)}."""
        async def do():
            await self.xmpp.get_roster(timeout=timeout)
            out = {}
            r = self.xmpp.client_roster
            for j in r:
                item = r[j]
                out[str(j)] = {"name": item["name"], "subscription": item["subscription"],
                               "groups": list(item["groups"])}
            return out
        return self._call(do, timeout=timeout)

    # -- group chat (XEP-0045)

    def join_room(self, room, nick, timeout=20):
        """Join a room and wait for our own presence in it; remembered, so
        the room is joined again after a reconnect."""
        self.rooms[room] = nick

        async def do():
            return await self.xmpp.plugin["xep_0045"].join_muc_wait(room, nick, maxstanzas=0,
                                                                    timeout=timeout)
        self._call(do, timeout=timeout)
        return self

    def leave_room(self, room):
        nick = self.rooms.pop(room, None)
        if nick is not None:
            self._call(lambda: self.xmpp.plugin["xep_0045"].leave_muc(room, nick))

    def room_occupants(self, room):
        """{nick: real bare JID or None} as this client sees the room."""
        def do():
            muc = self.xmpp.plugin["xep_0045"]
            out = {}
            for nick in muc.get_roster(room) or []:
                j = muc.get_jid_property(room, nick, "jid")
                out[nick] = str(j).split("/", 1)[0] if j else None
            return out
        return self._call(do)

    def kick(self, room, nick, reason="test"):
        """Kick nick out of room (we must be a moderator there): role none."""
        async def do():
            await self.xmpp.plugin["xep_0045"].set_role(room, nick, "none", reason=reason)
        return self._call(do)

    def say(self, room, body):
        """A groupchat message to room."""
        return self.send(room, body, mtype="groupchat")

    # -- ad-hoc commands (XEP-0050)

    def adhoc_list(self, jid, timeout=20):
        """The commands jid lists for us: [(node, name)] (disco#items on the
        commands node); None when the query got an error (see the xml with
        disco_items(jid, COMMANDS_NODE))."""
        r = self.disco_items(jid, COMMANDS_NODE, timeout)
        if r is None or r["type"] != "result":
            return None
        return [(n, name) for _, n, name in r["items"]]

    def adhoc_run(self, jid, node, *steps, timeout=20):
        """Execute ad-hoc command node at jid, then submit one form per step
        (each a dict var -> value or list of values; a value None leaves the
        field out; or a function of the last response giving that dict,
        for fields only known then).  Stops at the first error or completed/canceled stage.
        Returns the list of parsed responses (see parse_command): one for
        the execute, one per submitted step.

        A step's action is what the responder offered as the default
        (<actions execute='...'/>), else "complete"; a step given as
        ("next", {...}) names its action."""
        _, _, _, IqError, IqTimeout = _slixmpp()

        async def send(action, form=None, sessionid=None):
            try:
                res = await self.xmpp.plugin["xep_0050"].send_command(
                    jid, node, action=action, payload=form, sessionid=sessionid, timeout=timeout)
            except IqError as e:
                res = e.iq
            except IqTimeout:
                return {"type": None, "condition": "timeout", "status": None, "xml": "",
                        "sessionid": None, "actions": [], "execute": None, "form": None,
                        "notes": [], "node": node}
            return parse_command(res.xml)

        async def do():
            out = [await send("execute")]
            for step in steps:
                last = out[-1]
                if last["type"] != "result" or last["status"] != "executing":
                    break
                if isinstance(step, tuple):
                    action, values = step
                else:
                    action, values = (last["execute"] or "complete"), step
                if callable(values):
                    values = values(last)
                form = self.xmpp.plugin["xep_0004"].make_form(ftype="submit")
                for var, val in values.items():
                    if val is None:
                        continue
                    f = form.add_field(var=var)
                    f["value"] = val
                out.append(await send(action, form, last["sessionid"]))
            return out
        return self._call(do, timeout=timeout * (len(steps) + 1))


# ---------------------------------------------------------------- component

class Component:
    """A bare slixmpp ComponentXMPP (XEP-0114) on prosody's component port:
    proves the server side of gateway mode without switchboard.
    connect() returns True on a completed handshake, else the failure
    ("not-authorized", "conflict", "host-unknown", "timeout" ...)."""

    def __init__(self, prosody, domain=None, secret=None):
        self.prosody = prosody
        self.domain = domain or prosody.component
        self.secret = secret if secret is not None else prosody.secret
        self.loop = None
        self.xmpp = None
        self.messages = []
        self.presence_log = []
        self._cv = threading.Condition()
        self._thread = None
        self._result = None
        self._done = None
        self._ready = threading.Event()
        sbtest.add_cleanup(self._cleanup)

    def connect(self, timeout=sbtest.WAIT):
        self._thread = threading.Thread(target=self._run, name="component", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        wait_for(lambda: self._result is not None, timeout, "component handshake")
        return self._result

    def _run(self):
        slixmpp, Callback, StanzaPath, _, _ = _slixmpp()
        from slixmpp.componentxmpp import ComponentXMPP
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        self._done = loop.create_future()
        x = ComponentXMPP(self.domain, self.secret, "127.0.0.1", self.prosody.component_port)
        self.xmpp = x
        x.loop = loop

        def rec(kind):
            def f(st):
                with self._cv:
                    getattr(self, kind).append(ET.tostring(st.xml, encoding="unicode"))
                    self._cv.notify_all()
            return f
        x.register_handler(Callback("c msg", StanzaPath("message"), rec("messages")))
        x.register_handler(Callback("c pres", StanzaPath("presence"), rec("presence_log")))

        def set_result(v):
            if self._result is None:
                self._result = v
        x.add_event_handler("session_start", lambda e: set_result(True))
        x.add_event_handler("stream_error",
                            lambda e: set_result(e["condition"] if hasattr(e, "__getitem__") else str(e)))
        x.add_event_handler("disconnected", lambda e: set_result("disconnected"))
        x.connect()
        self._ready.set()
        _run_until(loop, self._done)

    def send_presence(self, pfrom, pto, pshow=None, pstatus=None, ptype=None):
        def do():
            self.xmpp.send_presence(pfrom=pfrom, pto=pto, pshow=pshow, pstatus=pstatus, ptype=ptype)
        self.loop.call_soon_threadsafe(do)

    def send_message(self, mfrom, mto, body):
        self.loop.call_soon_threadsafe(
            lambda: self.xmpp.send_message(mto=mto, mbody=body, mfrom=mfrom, mtype="chat"))

    def close(self, timeout=10):
        if self._thread is None or self.loop is None:
            return

        async def bye():
            try:
                if self.xmpp.transport is not None:
                    await asyncio.wait_for(self.xmpp.disconnect(wait=1.0), 3)
            except Exception:  # noqa: B902
                pass
            if not self._done.done():
                self._done.set_result(True)
        try:
            asyncio.run_coroutine_threadsafe(bye(), self.loop).result(timeout)
        except Exception:  # noqa: B902
            pass
        self._thread.join(timeout)
        self._thread = None

    def _cleanup(self):
        self.close()


# ---------------------------------------------------------------- switchboard config

SENSORS = """(
        { name = "cpu_temp"; kind = "temperature"; unit = "C"; value = %(cpu).1f;
          high_warning = 85.0; high_critical = 90.0; },
        { name = "inlet_temp"; kind = "temperature"; unit = "C"; value = 24.0;
          high_warning = 35.0; high_critical = 40.0; },
        { name = "fan1"; kind = "fan"; unit = "RPM"; value = 7200.0;
          low_critical = 500.0; low_warning = 1000.0; },
        { name = "fan2"; kind = "fan"; unit = "RPM"; value = 7080.0;
          low_critical = 500.0; low_warning = 1000.0; },
        { name = "psu1_power"; kind = "power"; unit = "W"; value = 240.0;
          high_warning = 700.0; high_critical = 750.0; },
        { name = "vcore"; kind = "voltage"; unit = "V"; value = 1.2;
          low_critical = 1.0; low_warning = 1.1; high_warning = 1.35; high_critical = 1.45; }
      )"""

DEMO_NODES = ("ftp", "web", "mail", "db")


def cfg_str(s):
    """A libconfig string literal."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_conf(name, i=0, cpu=None, poll=1.0):
    """One simulated node with demo.conf's sensor set."""
    return """  { name = %s;
    poll_interval = %.1f;
    hal = {
      backend = "sim";
      vendor = "Simulated Systems"; model = "SIM-2U"; serial = "SIM-%04d";
      sensors = %s;
    };
  }""" % (cfg_str(name), poll, i + 1, SENSORS % {"cpu": cpu if cpu is not None else 42.0 + 3 * (i % 4)})


def daemon_conf(prosody, nodes=DEMO_NODES, mode="component", extra="", scripts=(),
                acl=None, channel_extra="", rooms=(), nick="switchboard", refuse="reply",
                max_message=4000, jid=None, password=None, resource="switchboard", node=None,
                log_level="debug", poll=1.0):
    """A switchboard config text with an XMPP channel named "xmpp" (so
    notification destinations are "xmpp:<jid>").

    mode "component": gateway mode on prosody's component port, serving
    every node as <node>@nodes.<host>.  mode "client": agent mode, logged in
    as jid (default web@<host>, password) on the c2s port, serving node
    (default the first node), trusting the lab certificate (tls_verify =
    false).

    acl: a list of (match, role); default xmpp:admin@ -> admin,
    xmpp:operator@ -> operator, xmpp:viewer@ -> viewer, and nothing for
    anyone else (so any other JID is unauthorized).  scripts: folders put
    before the shipped scripts in daemon.scripts.  extra: appended at the
    end (top-level settings); channel_extra: added to the channel group.
    """
    d = prosody.domain
    if acl is None:
        acl = [("xmpp:admin@" + d, "admin"), ("xmpp:operator@" + d, "operator"),
               ("xmpp:viewer@" + d, "viewer")]
    script_dirs = list(scripts) + [os.path.join(sbtest.ROOT, "scripts")]
    if mode == "component":
        conn = """mode = "component";
    server = "127.0.0.1"; port = %d;
    component = %s; secret = %s;""" % (prosody.component_port, cfg_str(prosody.component),
                                      cfg_str(prosody.secret))
    elif mode == "client":
        conn = """mode = "client";
    server = "127.0.0.1"; port = %d;
    jid = %s; password = %s; resource = %s; node = %s;
    tls_verify = false;""" % (prosody.c2s_port, cfg_str(jid or ("web@" + d)),
                              cfg_str(password or "secret"), cfg_str(resource),
                              cfg_str(node or nodes[0]))
    else:
        raise ValueError("mode must be component or client")
    room_list = ", ".join(cfg_str(r) for r in rooms)
    nodes_text = ",\n".join(node_conf(n, i, poll=poll) for i, n in enumerate(nodes))
    acl_text = ",\n".join("  { match = %s; role = %s; }" % (cfg_str(m), cfg_str(r)) for m, r in acl)
    return """# written by tests/e2e/xmpp_env.py
daemon = {
  log_level = %(log_level)s;
  syslog = false;
  scripts = [ %(scripts)s ];
  poll_interval = %(poll).1f;
  confirm_timeout = 60;
};

channels = (
  { name = "console"; driver = "console"; context = "default"; },
  { name = "xmpp"; driver = "xmpp";
    %(conn)s
    rooms = [ %(rooms)s ]; nick = %(nick)s;
    refuse = %(refuse)s;
    max_message = %(max_message)d;
    %(channel_extra)s
  }
);

acl = (
%(acl)s
);

nodes = (
%(nodes)s
);
%(extra)s
""" % {"log_level": cfg_str(log_level), "scripts": ", ".join(cfg_str(s) for s in script_dirs),
       "poll": poll, "conn": conn, "rooms": room_list, "nick": cfg_str(nick),
       "refuse": cfg_str(refuse), "max_message": max_message, "channel_extra": channel_extra,
       "acl": acl_text, "nodes": nodes_text, "extra": extra}


def script_dir(files):
    """A temporary scripts folder holding files {name: Lua text}; list it
    first in daemon.scripts (scripts= of daemon_conf)."""
    d = os.path.join(sbtest.tmpdir(), "scripts")
    os.makedirs(d)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d
