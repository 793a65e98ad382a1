-- prelude.lua: the dialplan engine's Lua half, compiled into the daemon and
-- loaded first into every fresh sandbox (core/dialplan.c).
--
-- It owns what scripts register (commands, contexts, routes, the policy),
-- matches command lines against command patterns, checks roles, runs the
-- confirmation flow and fans a command out over several nodes.  Everything
-- it keeps is local: scripts see only the API it exports as globals.  The C
-- side gives it primitives in the table __sb, which it takes and removes.

local sb = __sb
__sb = nil

local type, pairs, ipairs, tostring, tonumber, error, pcall, select =
	type, pairs, ipairs, tostring, tonumber, error, pcall, select
local setmetatable, rawget, next = setmetatable, rawget, next
-- Scripts share these library tables and may reassign their fields: take
-- what the engine needs now, so that a script's "string.upper = ..." cannot
-- change how confirmation codes are read or sensors described.
local sfmt, sfind, ssub, slower, supper, sgmatch, smatch, sgsub =
	string.format, string.find, string.sub, string.lower, string.upper,
	string.gmatch, string.match, string.gsub
local tconcat, tsort = table.concat, table.sort
local ostime, osdate = os.time, os.date
local floor, abs = math.floor, math.abs

local STATES = { ok = true, warning = true, critical = true, off = true,
	maint = true, down = true, unknown = true }
local SEVERITY = { info = 1, warning = 2, critical = 3 }

local commands = {}	-- in registration order
-- Commands by their first word, most specific (most words) first: built
-- on the first command after a registration (verb_index).
local by_verb
local includes = {}	-- context name -> { included context names }
local routes = {}
local policy_fn = nil
local pending = {}	-- confirmation code -> request waiting for "confirm"
local file_name = "?"
local file_context = "default"
local seq = 0

-- ---------------------------------------------------------------- helpers

local function first_line(s)
	s = tostring(s)
	return (smatch(s, "^[^\n]*"))
end

local function where(level)
	-- The caller's "file:line" for registration errors, without debug.
	local ok, msg = pcall(error, "", level + 1)
	return first_line(msg):gsub(":%s*$", "")
end

local level = sb.level	-- a role's level (0: no such role)

local function level_of(role)
	return level(role)
end

local function role_name(level)
	if level >= 30 then return "admin" end
	if level >= 20 then return "operator" end
	if level >= 10 then return "viewer" end
	return "nobody"
end

-- ---------------------------------------------------------------- patterns

local TYPES = { word = true, number = true, node = true, rest = true }
local sb_resolve = sb.resolve

local function parse_pattern(pat)
	local elems, nlit = {}, 0
	for tok in sgmatch(pat, "%S+") do
		local optional, inner = false, tok
		if smatch(tok, "^%[.*%]$") then
			optional, inner = true, ssub(tok, 2, -2)
		end
		local name, spec = smatch(inner, "^<([%a_][%w_]*)%.%.%.>$")
		if name then
			spec = "rest"
		else
			name, spec = smatch(inner, "^<([%a_][%w_]*):?([^>]*)>$")
		end
		if name then
			local e = { name = name, optional = optional }
			if spec == "" then
				spec = (name == "node") and "node" or "word"
			end
			if TYPES[spec] then
				e.type = spec
			elseif smatch(spec, "^[%w_%-|]+$") then
				e.type, e.choices, e.list = "choice", {}, {}
				for c in sgmatch(spec, "[^|]+") do
					e.choices[slower(c)] = true
					e.list[#e.list + 1] = slower(c)
				end
			else
				error(sfmt("bad argument type '%s' in pattern '%s'", spec, pat), 0)
			end
			elems[#elems + 1] = e
		else
			if optional or sfind(inner, "[<>%[%]]") then
				error(sfmt("bad word '%s' in pattern '%s' (only <arguments> may be optional)",
					tok, pat), 0)
			end
			elems[#elems + 1] = { literal = slower(inner) }
			nlit = nlit + 1
		end
	end
	if #elems == 0 or not elems[1].literal then
		error(sfmt("a command pattern starts with a word: '%s'", pat), 0)
	end
	for i, e in ipairs(elems) do
		if e.type == "rest" and i ~= #elems then
			error(sfmt("<%s...> must come last in '%s'", e.name, pat), 0)
		end
	end
	return elems, nlit
end

-- Match argv against a pattern.  A <node> argument that is left out takes
-- the implied node (the node the message was addressed to).  Returns the
-- arguments, or nil.
local function match_from(elems, argv, n, implied, misses, args, ei, ti)
	local e = elems[ei]
	if not e then return ti > n end
	if e.literal then
		return argv[ti] ~= nil and slower(argv[ti]) == e.literal and
			match_from(elems, argv, n, implied, misses, args, ei + 1, ti + 1)
	end
	local tok, et = argv[ti], e.type
	if tok ~= nil then
		local v
		if et == "node" then	-- the most common first
			v = sb_resolve(tok)
			if v == nil and misses then misses[#misses + 1] = tok end
		elseif et == "rest" then
			args[e.name] = tconcat(argv, " ", ti, n)
			return true
		elseif et == "number" then
			v = tonumber(tok)
		elseif et == "word" then
			v = tok
		elseif et == "choice" then
			v = e.choices[slower(tok)] and slower(tok) or nil
		end
		if v ~= nil then
			args[e.name] = v
			-- (The pattern's last element ends it here: no call to say so.)
			if elems[ei + 1] == nil then
				if ti + 1 > n then return true end
			elseif match_from(elems, argv, n, implied, misses, args, ei + 1, ti + 1) then
				return true
			end
			args[e.name] = nil
		end
	end
	if et == "node" and implied then
		args[e.name] = { implied }
		if match_from(elems, argv, n, implied, misses, args, ei + 1, ti) then return true end
		args[e.name] = nil
	elseif e.optional then
		if match_from(elems, argv, n, implied, misses, args, ei + 1, ti) then return true end
	end
	return false
end

-- from: 2 when argv[1] is known to be the pattern's first word (as for the
-- commands by_verb lists under it), else 1.
local function match(elems, argv, implied, misses, from)
	local args = {}
	if match_from(elems, argv, #argv, implied, misses, args, from, from) then return args end
	return nil
end

local function usage(c)
	return c.pattern
end

-- ---------------------------------------------------------------- the API

local api = {}

-- context(name [, { include = { ... } }]): later commands in this file go
-- to context name.
function api.context(name, opts)
	if type(name) ~= "string" then
		error("context: expected a name", 2)
	end
	file_context = name
	includes[name] = includes[name] or {}
	if opts and opts.include then
		for _, inc in ipairs(opts.include) do
			includes[name][#includes[name] + 1] = inc
		end
	end
end

local function register(pat, spec, lvl)
	if type(pat) ~= "string" or type(spec) ~= "table" then
		error("command: expected command \"pattern\" { ... }", lvl)
	end
	if type(spec.run) ~= "function" then
		error(sfmt("command '%s': run must be a function", pat), lvl)
	end
	local ok, elems, nlit = pcall(parse_pattern, pat)
	if not ok then error(elems, lvl) end
	local role = spec.role or "viewer"
	if type(role) == "string" and level_of(role) == 0 then
		error(sfmt("command '%s': unknown role '%s'", pat, role), lvl)
	elseif type(role) ~= "string" and type(role) ~= "function" then
		error(sfmt("command '%s': role must be a name or a function", pat), lvl)
	end
	local ctx = spec.context or file_context
	local ctxs = type(ctx) == "table" and ctx or { ctx }
	local c = {
		pattern = pat, elems = elems, nlit = nlit, help = spec.help or "",
		role = role, confirm = spec.confirm, run = spec.run, multi = spec.multi,
		-- for dispatch, which asks at every command
		role_fn = type(role) == "function", confirm_fn = type(spec.confirm) == "function",
		contexts = {}, file = file_name, where = where(lvl + 1),
		describe = spec.describe, order = #commands + 1,
	}
	for _, x in ipairs(ctxs) do c.contexts[x] = true end
	local words = {}
	for i, e in ipairs(elems) do
		if e.type == "node" and not c.node_arg then c.node_arg = e.name end
		if e.literal and #words == i - 1 then words[#words + 1] = e.literal end
	end
	c.name = tconcat(words, " ")	-- what rules' command globs see: "power" 
	c.per_node = c.node_arg ~= nil and not c.multi	-- runs once for each node
	commands[#commands + 1] = c
	by_verb = nil
	return c
end

-- command "pattern" { help=, role=, confirm=, run= }  or
-- command("pattern", { ... })
function api.command(pat, spec)
	if spec ~= nil then
		register(pat, spec, 3)
		return
	end
	return function(s) register(pat, s, 3) end
end

function api.policy(fn)
	if type(fn) ~= "function" then error("policy: expected a function", 2) end
	policy_fn = fn
end

-- presence(fn): fn(node) gives the presence a node shows on chat
-- networks: show ("" for available, "away", "dnd", "xa", "unavailable")
-- and a status text; nil keeps the built-in mapping.
local presence_fn = nil
local SHOWS = { [""] = true, away = true, dnd = true, xa = true, chat = true, unavailable = true }

function api.presence(fn)
	if type(fn) ~= "function" then error("presence: expected a function", 2) end
	presence_fn = fn
end

local function presence(node)
	if not presence_fn then return nil end
	local show, status = presence_fn(node)
	if show == nil then return nil end
	if not SHOWS[show] then
		error(sfmt("presence returned show '%s' (expected \"\", away, dnd, xa or unavailable)",
			tostring(show)), 0)
	end
	return show, status ~= nil and tostring(status) or node.reason
end

local DAYS = { sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7 }

-- "08:00-18:00" -> minutes from, to (to < from: past midnight).
local function parse_hours(s)
	local h1, m1, h2, m2 = smatch(s, "^(%d%d?):(%d%d)%-(%d%d?):(%d%d)$")
	if not h1 then return nil end
	return tonumber(h1) * 60 + tonumber(m1), tonumber(h2) * 60 + tonumber(m2)
end

-- "mon-fri", "sat,sun", "mon" -> set of wday numbers.
local function parse_days(s)
	local set = {}
	for part in sgmatch(s, "[^,]+") do
		local a, b = smatch(part, "^(%a+)%-(%a+)$")
		if a then
			local i, j = DAYS[a], DAYS[b]
			if not i or not j then return nil end
			while true do
				set[i] = true
				if i == j then break end
				i = i % 7 + 1
			end
		elseif DAYS[part] then
			set[DAYS[part]] = true
		else
			return nil
		end
	end
	return set
end

local function check_dests(to, what, lvl)
	if type(to) ~= "table" or #to == 0 then
		error(sfmt("route: %s must be a list of \"channel:address\"", what), lvl)
	end
	for _, d in ipairs(to) do
		if type(d) ~= "string" or d == "" then
			error(sfmt("route: %s must be a list of \"channel:address\"", what), lvl)
		end
	end
end

-- route { to = {...}, severity=, source=, node=, group=, hours=, days=,
--         when=, escalate = { { after = s, to = {...} }, ... }, every = s, stop= }
function api.route(spec)
	if type(spec) ~= "table" or type(spec.to) ~= "table" then
		error("route: expected route { to = { \"channel:address\", ... }, ... }", 2)
	end
	check_dests(spec.to, "to", 3)
	if spec.severity and not SEVERITY[spec.severity] then
		error("route: severity must be info, warning or critical", 2)
	end
	local r = {}
	for k, v in pairs(spec) do r[k] = v end
	if spec.hours then
		local from, to = parse_hours(tostring(spec.hours))
		if not from then error("route: hours must look like \"08:00-18:00\"", 2) end
		r.hours_from, r.hours_to = from, to
	end
	if spec.days then
		r.day_set = parse_days(slower(tostring(spec.days)))
		if not r.day_set then error("route: days must look like \"mon-fri\" or \"sat,sun\"", 2) end
	end
	local esc = spec.escalate
	if esc ~= nil then
		if type(esc) ~= "table" then error("route: escalate must be a table", 2) end
		if esc.to then esc = { esc } end
		for i, tier in ipairs(esc) do
			if type(tier) ~= "table" or type(tier.after) ~= "number" or tier.after < 0 then
				error(sfmt("route: escalate[%d] needs after = seconds and to = {...}", i), 2)
			end
			check_dests(tier.to, sfmt("escalate[%d].to", i), 3)
		end
		r.escalate = esc
	end
	if spec.every ~= nil and (type(spec.every) ~= "number" or spec.every < 1) then
		error("route: every must be a number of seconds (at least 1)", 2)
	end
	routes[#routes + 1] = r
end

local function route_matches(r, ev, now)
	local sev = ev.severity
	-- A resolution reaches whoever heard of what it resolves.
	if ev.resolves_severity and SEVERITY[ev.resolves_severity] > SEVERITY[sev] then
		sev = ev.resolves_severity
	end
	if r.severity and SEVERITY[sev] < SEVERITY[r.severity] then return false end
	if r.source and r.source ~= ev.source then return false end
	if r.node and not (ev.node and sb.glob(r.node, ev.node)) then return false end
	if r.group and not (ev.node and sb.in_group(ev.node, r.group)) then return false end
	if r.hours_from then
		local m = now.hour * 60 + now.min
		local inside
		if r.hours_from <= r.hours_to then
			inside = m >= r.hours_from and m < r.hours_to
		else
			inside = m >= r.hours_from or m < r.hours_to
		end
		if not inside then return false end
	end
	if r.day_set and not r.day_set[now.wday] then return false end
	if r.when then
		local ok, res = pcall(r.when, ev)
		if not ok then
			sb.log("warning", "route when(): " .. first_line(res))
			return false
		end
		return res and true or false
	end
	return true
end

-- The plan for one event: { {dest, tier, after}, ..., every = s }.
local function plan_event(ev)
	local plan, seen = {}, {}
	local now = osdate("*t")
	local function add(dest, tier, after)
		if not seen[dest] then
			seen[dest] = true
			plan[#plan + 1] = { dest, tier, after }
		end
	end
	for _, r in ipairs(routes) do
		if route_matches(r, ev, now) then
			for _, dest in ipairs(r.to) do add(dest, 0, 0) end
			for i, tier in ipairs(r.escalate or {}) do
				for _, dest in ipairs(tier.to) do add(dest, i, tier.after) end
			end
			if r.every and (plan.every == nil or r.every < plan.every) then
				plan.every = r.every
			end
			if r.stop then break end
		end
	end
	return plan
end

-- notify { severity=, node=, text=, source=, key=, resolved= }: an event
-- for the routes.  Returns its id ("E12"), or nil when it repeated an
-- open event.
function api.notify(ev)
	if type(ev) == "string" then ev = { text = ev } end
	if type(ev) ~= "table" or type(ev.text) ~= "string" then
		error("notify: expected { text = \"...\", severity = ..., node = ... }", 2)
	end
	local e = { text = ev.text, severity = ev.severity or "info",
		source = ev.source or "script", node = ev.node, key = ev.key,
		resolved = ev.resolved and true or false }
	if not SEVERITY[e.severity] then
		error("notify: severity must be info, warning or critical", 2)
	end
	if e.node ~= nil and type(e.node) ~= "string" then
		error("notify: node must be a node name", 2)
	end
	return sb.notify(e)
end

function api.every(seconds, fn)
	return sb.timer(seconds, fn, true)
end

function api.after(seconds, fn)
	return sb.timer(seconds, fn, false)
end

function api.cancel(id)
	return sb.cancel(id)
end

api.reply = sb.reply

function api.log(...)
	local parts = {}
	for i = 1, select("#", ...) do parts[#parts + 1] = tostring(select(i, ...)) end
	sb.log("info", tconcat(parts, " "))
end

function api.warn(...)
	local parts = {}
	for i = 1, select("#", ...) do parts[#parts + 1] = tostring(select(i, ...)) end
	sb.log("warning", tconcat(parts, " "))
end

-- Sensors and readings get methods.
local Sensor = {}
Sensor.__index = Sensor

local function fmtnum(v)
	if v == floor(v) and v > -1e15 and v < 1e15 then return sfmt("%d", v) end
	return (sgsub(sfmt("%.3f", v), "%.?0+$", ""))
end
api.fmtnum = fmtnum

-- The limit of a severity nearer to the value: the high or the low one.
local function nearer(v, hi, lo)
	if hi and lo then
		if abs(v - hi) <= abs(v - lo) then return hi, ">=" end
		return lo, "<="
	end
	if hi then return hi, ">=" end
	if lo then return lo, "<=" end
end

-- "cpu_temp 95 C (critical >= 90)"; state overrides the sensor's own (a
-- policy with hysteresis may hold a state the raw value no longer shows).
function Sensor:describe(state)
	state = state or self.state
	local unit = (self.unit ~= "" and (" " .. self.unit)) or ""
	if self.value == nil then return self.name .. " no reading" end
	local s = self.name .. " " .. fmtnum(self.value) .. unit
	local lim, op
	if state == "critical" then
		lim, op = nearer(self.value, self.high_critical, self.low_critical)
	elseif state == "warning" then
		lim, op = nearer(self.value, self.high_warning, self.low_warning)
	end
	if lim then return sfmt("%s (%s %s %s)", s, state, op, fmtnum(lim)) end
	if state == "warning" or state == "critical" then return sfmt("%s (%s)", s, state) end
	return s
end

local Readings = {}
Readings.__index = Readings

local RANK = { unknown = 0, ok = 1, warning = 2, critical = 3 }

-- The most severe sensor (first one on ties), or nil.
function Readings:worst()
	local best
	for _, s in ipairs(self.sensors) do
		if s.value ~= nil and (best == nil or RANK[s.state] > RANK[best.state]) then
			best = s
		end
	end
	return best
end

function Readings:sensor(name)
	for _, s in ipairs(self.sensors) do
		if s.name == name then return s end
	end
end

local function wrap_readings(r)
	if r == nil then return nil end
	for _, s in ipairs(r.sensors or {}) do setmetatable(s, Sensor) end
	r.sensors = r.sensors or {}
	return setmetatable(r, Readings)
end

api.hal = {
	-- A fresh reading: readings (with :worst(), :sensor(name)) or nil, err.
	read = function(node)
		local r, err = sb.hal(node, "read")
		return wrap_readings(r), err
	end,
	sensors = function(node)
		local r, err = sb.hal(node, "read")
		if not r then return nil, err end
		return wrap_readings(r).sensors
	end,
	power = function(node, action)
		return sb.hal(node, "power", action or "status")
	end,
	events = function(node, n)
		return sb.hal(node, "events", nil, n or 10)
	end,
	inventory = function(node)
		return sb.hal(node, "inventory")
	end,
}

-- nodes([pattern]): snapshots { name, state, reason, since, groups, ... }
function api.nodes(pattern)
	local all = sb.nodes()
	if pattern == nil then return all end
	local names = sb.resolve(pattern)
	if not names then return {} end
	local want, out = {}, {}
	for _, n in ipairs(names) do want[n] = true end
	for _, n in ipairs(all) do
		if want[n.name] then out[#out + 1] = n end
	end
	return out
end

api.node = sb.node

-- commands(ctx): what help lists: { pattern, help, role, level, confirm }
local function visible(c, context, seen)
	if c.contexts[context] then return true end
	seen = seen or {}
	seen[context] = true
	for _, inc in ipairs(includes[context] or {}) do
		if not seen[inc] and visible(c, inc, seen) then return true end
	end
	return false
end

local function static_level(c)
	if type(c.role) == "string" then return level_of(c.role) end
	return nil
end

-- commands(caller): only what caller (a command's ctx, or a table with
-- identity, level, channel, kind, room, context) may run there, by role
-- and by the rules of the configuration.
function api.commands(context, level)
	local caller
	if type(context) == "table" then
		caller = context
		context, level = caller.context, caller.level
	end
	local out = {}
	for _, c in ipairs(commands) do
		if (context == nil or visible(c, context)) then
			local l = static_level(c)
			local ok
			if caller then
				ok = sb.acl_check(caller, c.name, c.node_arg ~= nil,
					type(c.role) == "string" and c.role or nil)
			else
				ok = level == nil or l == nil or l <= level
			end
			if ok then
				out[#out + 1] = { pattern = c.pattern, help = c.help,
					role = type(c.role) == "string" and c.role or "depends",
					file = c.where }
			end
		end
	end
	return out
end

api.builtins = sb.builtins
api.states = STATES
api.VERSION = sb.version

-- ---------------------------------------------------------------- running

local function fail(msg) return false, msg end

-- (dispatch has a copy of this inline, for one node.)
local function run_one(c, ctx, args)
	local res, err = c.run(ctx, args)
	if res == nil and err ~= nil then return false, tostring(err) end
	if res == false then return false, err and tostring(err) or "failed" end
	if res == true or res == nil then return true, nil end
	return true, tostring(res)
end

-- Run a matched command with its ctx; fans out over several nodes unless
-- it is multi.
local function execute(c, ctx, args, nodes)
	if c.node_arg and nodes and not c.multi then
		if #nodes == 1 then
			args[c.node_arg] = nodes[1]
			return run_one(c, ctx, args)
		end
		local okall, out = true, {}
		for _, name in ipairs(nodes) do
			args[c.node_arg] = name
			local ok, r1, r2 = pcall(run_one, c, ctx, args)
			if not ok then
				okall = false
				sb.reply(name .. ": error: " .. first_line(r1))
			elseif not r1 then
				okall = false
				sb.reply(name .. ": " .. (r2 or "failed"))
			elseif r2 then
				sb.reply(r2)
			end
		end
		return okall, nil
	end
	if c.node_arg and nodes then args[c.node_arg] = nodes end
	return run_one(c, ctx, args)
end

local resolve	-- below: the matching half of dispatch

local function confirm(ctx, session, code)
	local p = pending[code and supper(code) or ""]
	if not p then return fail("unknown or already used confirmation code") end
	if p.identity ~= ctx.identity or p.channel ~= ctx.channel or p.session ~= session then
		return fail("that code was issued to another conversation")
	end
	pending[supper(code)] = nil
	if ostime() > p.expires then return fail("confirmation code expired; run the command again") end
	if p.argv then
		-- Issued before a dialplan reload: match the line again against
		-- today's commands (which may have changed or gone).
		local c, args, nodes, role = resolve(p.argv, p.context, p.node)
		if not c then return fail(sfmt("'%s' no longer runs as it did: %s", p.text, args)) end
		p = { cmd = c, args = args, nodes = nodes, role = role }
	end
	-- The rules again: a reload may have changed them since the code was
	-- given; and the audit log learns the nodes.
	local ok, why = sb.acl_check(ctx, p.cmd.name, p.nodes, p.role, true)
	if not ok then return fail(why) end
	return execute(p.cmd, ctx, p.args, p.nodes)
end

-- A reload hands the codes still pending to the new dialplan as plain
-- records; the line is matched again when the code is confirmed.
local function export_pending()
	local out = {}
	for code, p in pairs(pending) do
		if p.expires >= ostime() then
			local argv = {}
			for i, w in ipairs(p.argv) do argv[i] = w end
			out[#out + 1] = { code = code, identity = p.identity, channel = p.channel,
				session = p.session, expires = p.expires, text = p.text,
				node = p.node, context = p.context, argv = argv }
		end
	end
	return out
end

local function import_pending(list)
	for _, r in ipairs(list) do
		if type(r.code) == "string" and type(r.argv) == "table" then
			pending[r.code] = r
		end
	end
end

-- Expired codes are dropped now and then so they cannot pile up.
local function sweep()
	local now = ostime()
	for code, p in pairs(pending) do
		if now > p.expires then pending[code] = nil end
	end
end

-- The command a line (argv) names in context, node the implied node: c,
-- args, nodes, role; or nil and why.  verb: argv[1] in lower case, if the
-- caller has it.
local function verb_index()
	if by_verb then return by_verb end
	by_verb = {}
	for _, c in ipairs(commands) do
		local v = c.elems[1].literal
		by_verb[v] = by_verb[v] or {}
		by_verb[v][#by_verb[v] + 1] = c
	end
	for _, list in pairs(by_verb) do
		tsort(list, function(a, b)
			if a.nlit ~= b.nlit then return a.nlit > b.nlit end
			return a.order < b.order
		end)
	end
	return by_verb
end

-- Why no command in list (resolve's candidates) matched argv: nil and
-- the answer.
local function no_match(list, argv, context, node)
	local cands = {}
	for _, cand in ipairs(list) do
		if visible(cand, context) then cands[#cands + 1] = cand end
	end
	if #cands == 0 then
		return nil, (sfmt("unknown command '%s'; try 'help'", argv[1]))
	end
	-- The words that named no node: the same matching again, keeping
	-- them (a line that matched needs none).
	local misses = {}
	for i = 1, #list do
		local cand = list[i]
		if cand.contexts[context] or visible(cand, context) then
			match(cand.elems, argv, node, misses, 2)
		end
	end
	if #misses > 0 then
		-- Had a word that named no node been a node, would the line fit?
		-- Then the operator mistyped a node: say that, not the usage.
		local any = sb.nodes()[1]
		for _, miss in ipairs(any and misses or {}) do
			local argv2 = {}
			for i, w in ipairs(argv) do argv2[i] = (w == miss) and any.name or w end
			for _, cand in ipairs(cands) do
				if match(cand.elems, argv2, node, nil, 1) then
					return nil, (sfmt("no node matches '%s'; try 'nodes'", miss))
				end
			end
		end
	end
	local u = {}
	for _, cand in ipairs(cands) do u[#u + 1] = usage(cand) end
	local hint = ""
	if not node then
		for _, cand in ipairs(cands) do
			if cand.node_arg then hint = " (name the node)" break end
		end
	end
	return nil, ("usage: " .. tconcat(u, " | ") .. hint)
end

resolve = function(argv, context, node, verb)
	-- Candidates: visible in this context, most specific first; the
	-- first that matches wins.
	local list = (by_verb or verb_index())[verb or slower(argv[1])] or {}
	local c, args, nargv = nil, nil, #argv
	for i = 1, #list do	-- a list of ours: no holes
		local cand = list[i]
		if cand.contexts[context] or visible(cand, context) then
			args = {}	-- match(), inline: this runs for every command
			if match_from(cand.elems, argv, nargv, node, nil, args, 2, 2) then
				c = cand
				break
			end
			args = nil
		end
	end
	if not c then return no_match(list, argv, context, node) end
	-- The role it needs (for these arguments, if a function says).
	local role = c.role
	if c.role_fn then role = role(args) or "viewer" end
	if level(role) == 0 then	-- every command: not through level_of
		error(sfmt("command '%s': role function gave unknown role '%s'", c.pattern,
			tostring(role)), 0)
	end
	return c, args, c.node_arg and args[c.node_arg] or nil, role
end

-- A command line: ctx is what its run will see (core/dialplan.c makes it),
-- argv its words, text the line, session the conversation it came from,
-- verb argv[1] in lower case (nil: lower it here).
local function dispatch(ctx, argv, text, session, verb)
	verb = verb or slower(argv[1])
	if verb == "confirm" then
		if #argv ~= 2 then return fail("usage: confirm <code>") end
		return confirm(ctx, session, argv[2])
	end
	local c, args, nodes, role = resolve(argv, ctx.context, ctx.node, verb)
	if not c then return fail(args) end
	-- The role, and the rules for this command, its nodes and where it was
	-- sent (the C side logs a refusal and keeps it for the audit log).
	local ok, why = sb.acl_check(ctx, c.name, nodes, role, true)
	if not ok then return fail(why) end
	-- Does it want confirming (confirm: a flag, or a function of the args)?
	local want = c.confirm
	if c.confirm_fn then want = want(args) end
	if want then
		sweep()
		local code
		repeat code = sb.random_code() until pending[code] == nil
		pending[code] = {
			cmd = c, args = args, nodes = nodes, role = role, identity = ctx.identity,
			channel = ctx.channel, session = session,
			expires = ostime() + sb.confirm_timeout,
			-- for a reload: the line itself, to be matched again
			argv = argv, text = text, node = ctx.node, context = ctx.context,
		}
		local scope = ""
		if nodes and #nodes > 1 then
			scope = sfmt(" It will touch %d nodes: %s.", #nodes, tconcat(nodes, ", "))
		elseif nodes then
			scope = sfmt(" Node: %s.", nodes[1])
		end
		return true, sfmt("'%s' needs confirmation.%s Send 'confirm %s' within %d s.",
			text, scope, code, sb.confirm_timeout), code
	end
	if not (nodes and c.per_node and #nodes == 1) then
		return execute(c, ctx, args, nodes)
	end
	-- Most commands name one node: execute's first case and run_one
	-- inline, two calls fewer.
	args[c.node_arg] = nodes[1]
	local res, err = c.run(ctx, args)
	if res == nil and err ~= nil then return false, tostring(err) end
	if res == false then return false, err and tostring(err) or "failed" end
	if res == true or res == nil then return true, nil end
	return true, tostring(res)
end

local function policy(node, r)
	if not policy_fn then return nil end
	local state, reason = policy_fn(node, wrap_readings(r))
	if not STATES[state] then
		error(sfmt("policy returned state '%s' (expected ok, warning, critical, off, maint, down or unknown)",
			tostring(state)), 0)
	end
	return state, reason and tostring(reason) or ""
end

local function route(ev)
	return plan_event(ev)
end

local function begin_file(name)
	file_name = name
	file_context = "default"
end

-- ---------------------------------------------------------------- webhooks
-- webhook "name" (function(payload, req) ... end) handles POST /hooks/<hook>
-- for a hook of the HTTP channel configured with handler = "lua:name".  It
-- returns a list of events { text=, severity=, node=, key=, resolved= }
-- (or one such table); the channel submits them to the notifier.

local webhooks = {}
local MAX_WEBHOOK_EVENTS = 100

function api.webhook(name, fn)
	if type(name) ~= "string" or not smatch(name, "^[%w_%.%-]+$") then
		error("webhook: expected webhook \"name\" (function(payload, req) ... end)", 2)
	end
	if fn ~= nil then
		if type(fn) ~= "function" then error(sfmt("webhook '%s': expected a function", name), 2) end
		webhooks[name] = fn
		return
	end
	return function(f)
		if type(f) ~= "function" then error(sfmt("webhook '%s': expected a function", name), 2) end
		webhooks[name] = f
	end
end

local function run_webhook(name, payload, req)
	local fn = webhooks[name]
	if not fn then
		error(sfmt("no webhook handler '%s' is loaded", name), 0)
	end
	local res = fn(payload, req)
	if type(res) ~= "table" then
		error(sfmt("webhook '%s' returned %s, not a list of events", name, type(res)), 0)
	end
	if res.text ~= nil then res = { res } end
	if #res > MAX_WEBHOOK_EVENTS then
		error(sfmt("webhook '%s' returned %d events (at most %d)", name, #res,
			MAX_WEBHOOK_EVENTS), 0)
	end
	local out = {}
	for i = 1, #res do
		local e = res[i]
		local function bad(what)
			error(sfmt("webhook '%s': event %d: %s", name, i, what), 0)
		end
		if type(e) ~= "table" then bad("not a table") end
		if type(e.text) ~= "string" or e.text == "" then bad("text must be a non-empty string") end
		local sev = e.severity or "info"
		if not SEVERITY[sev] then bad("severity must be info, warning or critical") end
		if e.node ~= nil and type(e.node) ~= "string" then bad("node must be a string") end
		if e.key ~= nil and (type(e.key) ~= "string" or e.key == "") then
			bad("key must be a non-empty string")
		end
		if e.resolved ~= nil and type(e.resolved) ~= "boolean" then
			bad("resolved must be true or false")
		end
		out[i] = { text = e.text, severity = sev, node = e.node, key = e.key,
			resolved = e.resolved or false }
	end
	return out
end

sb.webhooks(run_webhook)

sb.hooks { dispatch = dispatch, policy = policy, route = route, begin_file = begin_file,
	commands = api.commands, presence = presence,
	export_pending = export_pending, import_pending = import_pending }

for k, v in pairs(api) do _ENV[k] = v end
