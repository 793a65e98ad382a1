-- hardware.lua: commands that talk to a node's hardware through the HAL:
-- sensors, power, events, inventory.  Each hal.* call waits for the
-- backend without blocking the daemon.

local function fmt_limits(s)
	local p = {}
	if s.low_critical then p[#p + 1] = "crit <= " .. fmtnum(s.low_critical) end
	if s.low_warning then p[#p + 1] = "warn <= " .. fmtnum(s.low_warning) end
	if s.high_warning then p[#p + 1] = "warn >= " .. fmtnum(s.high_warning) end
	if s.high_critical then p[#p + 1] = "crit >= " .. fmtnum(s.high_critical) end
	return #p > 0 and ("(" .. table.concat(p, ", ") .. ")") or ""
end

command "sensors <node> [<sensor>]" {
	help = "a fresh reading of a node's sensors, or of one",
	run = function(ctx, a)
		local r, err = hal.read(a.node)
		if not r then return nil, a.node .. ": " .. err end
		local out = {}
		for _, s in ipairs(r.sensors) do
			if a.sensor == nil or s.name == a.sensor then
				local v = s.value and (fmtnum(s.value) .. " " .. s.unit) or "-"
				out[#out + 1] = string.format("  %-12s %10s  %-8s %s", s.name, v, s.state,
					fmt_limits(s))
			end
		end
		if a.sensor and #out == 0 then
			return nil, string.format("%s has no sensor '%s'", a.node, a.sensor)
		end
		return string.format("%s (power %s):\n%s", a.node, r.power, table.concat(out, "\n"))
	end,
}

command "power <node> <action:status|on|off|cycle|reset|soft>" {
	help = "chassis power: status, or on/off/cycle/reset/soft (asks to confirm)",
	role = function(a) return a.action == "status" and "viewer" or "operator" end,
	confirm = function(a) return a.action ~= "status" end,
	run = function(ctx, a)
		local msg, err = hal.power(a.node, a.action)
		if not msg then return nil, a.node .. ": " .. err end
		return a.node .. ": " .. msg
	end,
}

command "events <node> [<count:number>]" {
	help = "the newest entries of a node's event log (default 10)",
	run = function(ctx, a)
		local n = math.tointeger(a.count) or 10
		if n < 1 or n > 1000 then return nil, "count must be 1 to 1000" end
		local evs, err = hal.events(a.node, n)
		if not evs then return nil, a.node .. ": " .. err end
		if #evs == 0 then return a.node .. ": the event log is empty" end
		local out = {}
		for _, e in ipairs(evs) do
			out[#out + 1] = string.format("  %s %-8s %s", os.date("!%Y-%m-%d %H:%M:%S", e.time),
				e.severity, e.text)
		end
		return a.node .. ":\n" .. table.concat(out, "\n")
	end,
}

command "inventory <node>" {
	help = "vendor, model, serial number and firmware",
	run = function(ctx, a)
		local inv, err = hal.inventory(a.node)
		if not inv then return nil, a.node .. ": " .. err end
		local function v(x) return (x ~= nil and x ~= "") and x or "?" end
		return string.format("%s: %s %s, serial %s, firmware %s", a.node, v(inv.vendor),
			v(inv.model), v(inv.serial), v(inv.firmware))
	end,
}
