"""The documentation against the code: the man pages render without a
warning, switchboard.conf(5) documents exactly the keys the daemon knows,
switchboard(8) every option and -x exit status, doc/scripting.md every
global the dialplan prelude exports, and the examples in doc/scripting.md
and doc/configuration.md work as printed."""
import os
import re
import subprocess

import sbtest
from sbtest import Daemon

DOC = os.path.join(sbtest.ROOT, "doc")
MAN_PAGES = ("switchboard.8", "switchboard.conf.5", "switchboard-lua.7")
TYPES = ("string", "integer", "number", "boolean", "group", "list", "strings")

# A configuration key's entry in switchboard.conf(5):  .TP  then
# "\fBname\fR (type, ...)" on the next line.
KEY_ENTRY = re.compile(r"^\.TP\n\\fB([A-Za-z_][A-Za-z0-9_]*)\\fR \((%s)\b" % "|".join(TYPES),
                       re.M)


def read(*parts):
    with open(os.path.join(sbtest.ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def run(argv, **kw):
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8", MANWIDTH="80")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, **kw)


def section(page, title):
    """The text of a man page section, from .SH title to the next .SH."""
    m = re.search(r'^\.SH "?%s"?\n(.*?)(?=^\.SH |\Z)' % re.escape(title), page, re.M | re.S)
    assert m, "no section %s" % title
    return m.group(1)


def test_man_pages_render_without_warnings():
    for name in MAN_PAGES:
        path = os.path.join(DOC, name)
        with open(path, "rb") as f:
            raw = f.read()
        # ASCII only: roff has escapes for everything else, and a stray
        # UTF-8 character renders differently under each locale.
        bad = [i for i, b in enumerate(raw) if b > 127]
        assert not bad, "%s: non-ASCII byte at offset %d" % (name, bad[0])
        p = run(["groff", "-man", "-ww", "-z", path])
        assert p.returncode == 0 and p.stderr == "", "groff on %s: %d\n%s" % (name, p.returncode, p.stderr)
        p = run(["man", "--warnings", "-l", path])
        assert p.returncode == 0 and p.stderr == "", "man on %s: %d\n%s" % (name, p.returncode, p.stderr)
        # It rendered to something: the title and a NAME section.
        assert "NAME" in p.stdout and len(p.stdout.splitlines()) > 20, p.stdout[:500]


def dumped_keys():
    """(path, last component, type) for every key --dump-keys prints."""
    p = run([sbtest.BIN, "--dump-keys"])
    assert p.returncode == 0, p.stderr
    keys = []
    for line in p.stdout.splitlines():
        fields = line.split("\t")
        assert len(fields) == 4, "malformed --dump-keys line: %r" % line
        path, typ = fields[0], fields[1]
        last = re.sub(r"\[[^\]]*\]", "", path.split(".")[-1])
        assert typ in TYPES, "unknown type %r in %r" % (typ, line)
        keys.append((path, last, typ))
    # A reference check that checks nothing would pass; there are dozens.
    assert len(keys) >= 30, keys
    return keys


def test_conf_page_documents_every_key():
    page = read("doc", "switchboard.conf.5")
    documented = set(KEY_ENTRY.findall(page))
    keys = dumped_keys()
    missing = ["%s (%s)" % (path, typ) for path, last, typ in keys if (last, typ) not in documented]
    assert not missing, "switchboard.conf(5) lacks an entry '.TP / \\fBkey\\fR (type' for: " + ", ".join(missing)
    # And nothing stale: every entry names a key the daemon knows.
    known = {last for _, last, _ in keys}
    stale = sorted({name for name, _ in documented} - known)
    assert not stale, "switchboard.conf(5) documents keys the daemon does not know: %s" % stale
    # Every top-level key has its section.
    for path, last, _ in keys:
        if "." not in path and "[" not in path:
            assert re.search(r"^\.SH \"?%s\"?$" % re.escape(last.upper()), page, re.M), \
                "switchboard.conf(5) has no section %s" % last.upper()


def test_daemon_page_documents_every_option_and_exit_status():
    page = read("doc", "switchboard.8")
    options = section(page, "OPTIONS")
    p = run([sbtest.BIN, "--help"])
    assert p.returncode == 0, p.stderr
    longs = sorted(set(re.findall(r"--([a-z][a-z-]+)", p.stdout)))
    shorts = sorted(set(re.findall(r"^\s+-([a-z]),", p.stdout, re.M)))
    assert len(longs) >= 10 and len(shorts) >= 8, (longs, shorts)
    for opt in longs:
        assert "\\-\\-" + opt.replace("-", "\\-") in options, "switchboard(8) OPTIONS lacks --%s" % opt
    for opt in shorts:
        assert re.search(r"\\-%s\b" % opt, options), "switchboard(8) OPTIONS lacks -%s" % opt
    # The -x exit statuses, as core/client.h defines them.
    statuses = re.findall(r"#define SB_EXIT_\w+\s+(\d+)", read("core", "client.h"))
    assert len(statuses) >= 3, statuses
    exits = section(page, "EXIT STATUS")
    for st in statuses:
        assert re.search(r"^\.TP\n\.B %s$" % st, exits, re.M), "switchboard(8) EXIT STATUS lacks %s" % st
    for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
        assert sig in section(page, "SIGNALS"), sig
    # The built-in admin commands, as core/builtins.c's table names them.
    table = re.search(r"builtins\[\] = \{(.*?)^\};", read("core", "builtins.c"), re.M | re.S)
    assert table, "the builtins table not found in core/builtins.c"
    words = re.findall(r'^\t\{ "([^"]+)",', table.group(1), re.M)
    assert len(words) >= 8, words
    commands = section(page, "CONSOLE COMMANDS").replace('"', "")
    for w in words:
        assert re.search(r"^\.BI? %s\b" % re.escape(w), commands, re.M), \
            "switchboard(8) CONSOLE COMMANDS lacks %r" % w


def exported_api():
    """The globals the prelude exports, and the members of hal."""
    src = read("core", "prelude.lua")
    names = set(re.findall(r"^function api\.(\w+)", src, re.M))
    names |= set(re.findall(r"^api\.(\w+)\s*=", src, re.M))
    m = re.search(r"^api\.hal = \{\n(.*?)^\}", src, re.M | re.S)
    assert m, "api.hal table not found in core/prelude.lua"
    hal = set(re.findall(r"^\t(\w+) = function", m.group(1), re.M))
    assert len(names) >= 15 and "hal" in names and len(hal) >= 5, (names, hal)
    return sorted(names), sorted(hal)


def test_scripting_guide_documents_every_api_function():
    guide = read("doc", "scripting.md")
    page = read("doc", "switchboard-lua.7")
    names, hal = exported_api()
    missing = [n for n in names if not re.search(r"^#{3,4} `%s[(`]" % re.escape(n), guide, re.M)]
    missing += ["hal." + n for n in hal if not re.search(r"^#{3,4} `hal\.%s\(" % re.escape(n), guide, re.M)]
    assert not missing, "doc/scripting.md has no '### `name(...)`' heading for: " + ", ".join(missing)
    # The one-page summary names them all too.
    absent = [n for n in names if not re.search(r"\b%s\b" % re.escape(n), page)]
    absent += ["hal." + n for n in hal if ("hal.%s(" % n) not in page]
    assert not absent, "switchboard-lua(7) does not mention: " + ", ".join(absent)


def examples(text, marker, lang=""):
    """Code blocks that follow an HTML comment '<!-- MARKER -->'."""
    return re.findall(r"<!-- %s -->\n```%s\n(.*?)```" % (marker, lang), text, re.S)


def test_configuration_examples_pass_check_config():
    blocks = examples(read("doc", "configuration.md"), "check-config")
    man = re.findall(r'^\.\\" check-config[^\n]*\n(?:\.[A-Z]+\n)*?\.nf\n(.*?)^\.fi$',
                     read("doc", "switchboard.conf.5"), re.M | re.S)
    assert len(blocks) >= 3 and len(man) >= 1, (len(blocks), len(man))
    t = sbtest.tmpdir()
    for i, text in enumerate(blocks + man):
        path = os.path.join(t, "example%d.conf" % i)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)   # inline secrets need a private config
        p = run([sbtest.BIN, "-c", path, "--check-config"])
        assert p.returncode == 0, "example %d fails --check-config: %s\n%s" % (i, p.stderr, text)
    # The man page's example (console only: nothing reaches for the network)
    # is started for real, on private paths.
    d = Daemon(conf=path).start()
    d.wait_state("web01", "ok")
    d.wait_state("db01", "off")


def test_scripting_examples_work_as_shown():
    guide = read("doc", "scripting.md")
    site = sbtest.tmpdir()
    for name in ("temps.lua", "policy.lua"):
        blocks = examples(guide, "example: " + re.escape(name), "lua")
        assert len(blocks) == 1, "doc/scripting.md: expected one example %s, found %d" % (name, len(blocks))
        with open(os.path.join(site, name), "w") as f:
            f.write(blocks[0])
    conf = read("config", "demo.conf").replace(
        '"../scripts"', '"%s", "%s"' % (site, os.path.join(sbtest.ROOT, "scripts")))
    # The policy example's spare node, as the guide tells the reader to set up.
    i = conf.index('name = "db"')
    conf = conf[:i] + conf[i:].replace('groups = [ "rack2", "backend" ]',
                                       'groups = [ "rack2", "backend", "spare" ]', 1)
    d = Daemon(conf_text=conf).start()
    for n in ("ftp", "web", "mail", "db"):
        d.wait_state(n, "ok")

    # (a) temps: every node without an argument, hottest first, fan-out
    # over a group, a node that does not answer.
    out = d.ok("temps")
    lines = out.splitlines()
    assert [l.split()[0] for l in lines] == ["ftp", "web", "mail", "db"], out
    assert re.match(r"mail\s+cpu_temp 48 C, inlet_temp 24 C$", lines[2]), out
    d.ok("sim set mail cpu_temp 95")
    d.ok("sim fail db on")
    out = d.ok("temps group:rack2")
    assert re.search(r"^mail\s+cpu_temp 95 C \(critical >= 90\), inlet_temp 24 C$", out, re.M), out
    assert re.search(r"^db\s+simulated failure: node does not answer$", out, re.M), out
    assert "ftp" not in out, out
    out = d.ok("help temps")
    assert "temps [<node>]" in out, out
    rc, out = d.x("as xmpp:somebody@example.org temps web")
    assert rc == 0 and out.startswith("web "), (rc, out)

    # (b) the house policy replaced the shipped one.
    d.ok("sim set mail cpu_temp 48")
    d.ok("sim fail db off")
    d.wait_state("mail", "ok")
    d.ok("sim power db off")
    d.ok("sim power web off")
    line = d.wait_state("web", "off")
    assert "powered off" in line, line
    line = wait_reason(d, "db", "spare, powered off")
    assert d.node_state("db") == "ok", line
    d.ok("sim set ftp inlet_temp 31")
    line = d.wait_state("ftp", "warning")
    assert "inlet_temp 31 C (house limit 30 C)" in line, line
    d.ok("sim set ftp cpu_temp 95")
    line = d.wait_state("ftp", "critical")
    assert "cpu_temp 95 C (critical >= 90)" in line, line
    d.ok("sim set ftp cpu_temp 40")
    d.ok("sim set ftp inlet_temp 24")
    d.wait_state("ftp", "ok")
    log = d.logtext()
    assert "script error" not in log and "policy failed" not in log, log


def wait_reason(d, name, reason):
    return sbtest.wait_for(lambda: reason in d.node_line(name) and d.node_line(name),
                           what="node %s to say %r" % (name, reason))
