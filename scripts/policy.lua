-- policy.lua: the status policy, from a node's readings to its state and a
-- one-line reason.
--
-- A sensor's state comes from its thresholds, with hysteresis: once past a
-- limit, a sensor stays in that state until its value is back by
-- HYSTERESIS of the limit (2 % of 90 C is 1.8 C), so a value hovering at a
-- limit does not make the node flap.  The node takes its worst sensor's
-- state and names that sensor: "cpu_temp 95 C (critical >= 90)".

local HYSTERESIS = 0.02
local RANK = { unknown = 0, ok = 1, warning = 2, critical = 3 }
local held = {}		-- node name -> sensor name -> state last judged

local function past(v, hi, lo, margin_on)
	local function m(lim) return margin_on and math.abs(lim) * HYSTERESIS or 0 end
	return (hi ~= nil and v >= hi - m(hi)) or (lo ~= nil and v <= lo + m(lo))
end

local function judge(s, prev)
	if s.value == nil then return "unknown" end
	local st = "ok"
	if past(s.value, s.high_critical, s.low_critical, prev == "critical") then
		st = "critical"
	elseif past(s.value, s.high_warning, s.low_warning, prev == "critical" or prev == "warning") then
		st = "warning"
	end
	-- The backend's own verdict counts too: alarm flags, a BMC's reading
	-- of a discrete sensor, limits it knows and we were not told.
	if RANK[s.state] and RANK[s.state] > RANK[st] then st = s.state end
	return st
end

policy(function(node, r)
	if r.error then
		held[node.name] = nil
		return "down", r.error
	end
	if r.power == "off" then
		held[node.name] = nil
		return "off", "powered off"
	end
	local mem = held[node.name] or {}
	held[node.name] = mem
	local worst, wstate, n = nil, "ok", 0
	for _, s in ipairs(r.sensors) do
		if s.value ~= nil then
			n = n + 1
			local st = judge(s, mem[s.name])
			mem[s.name] = st
			if RANK[st] > RANK[wstate] then worst, wstate = s, st end
		end
	end
	if worst then return wstate, worst:describe(wstate) end
	if n == 0 then return "unknown", "no sensor has a reading" end
	return "ok", string.format("all %d sensors normal", n)
end)
