-- core.lua: the commands every operator starts with: help, whoami, nodes,
-- status.  Edit a copy in /etc/switchboard/scripts/ to change them; a file
-- there overrides the shipped file of the same name.

local function ago(t)
	local s = os.time() - t
	if s < 0 then s = 0 end
	if s >= 86400 then return string.format("%dd%dh", s // 86400, s % 86400 // 3600) end
	if s >= 3600 then return string.format("%dh%dm", s // 3600, s % 3600 // 60) end
	if s >= 60 then return string.format("%dm%ds", s // 60, s % 60) end
	return string.format("%ds", s)
end

command "help [<topic...>]" {
	help = "list the commands you may run, or the ones starting with a word",
	run = function(ctx, a)
		local lines = {}
		local function add(pattern, help)
			if a.topic == nil or pattern:sub(1, #a.topic) == a.topic then
				lines[#lines + 1] = string.format("  %-42s %s", pattern, help)
			end
		end
		add("confirm <code>", "run a command that asked for confirmation")
		-- Only what this caller may run here: its role and the rules.
		for _, c in ipairs(commands(ctx)) do
			add(c.pattern, c.help)
		end
		for _, b in ipairs(builtins(ctx)) do
			add(b.pattern, b.help)
		end
		if #lines == 1 and a.topic == nil then
			return "you may run no commands here"
		elseif #lines == 0 then
			return nil, string.format("no command starts with '%s'; try 'help'", a.topic)
		end
		table.sort(lines)
		return string.format("Commands for %s (role %s):\n%s", ctx.identity, ctx.role,
			table.concat(lines, "\n"))
	end,
}

command "whoami" {
	help = "your identity, role and context",
	run = function(ctx)
		return string.format("%s, role %s, channel %s, context %s%s", ctx.identity,
			ctx.role, ctx.channel, ctx.context,
			ctx.node and (", talking to node " .. ctx.node) or "")
	end,
}

command "nodes" {
	help = "every node: state, since when, why",
	run = function(ctx)
		local out = {}
		for _, n in ipairs(nodes()) do
			out[#out + 1] = string.format("%-12s %-9s %-7s %s", n.name, n.state,
				ago(n.since), n.reason)
		end
		if #out == 0 then return "no nodes configured" end
		return string.format("%-12s %-9s %-7s %s\n", "NODE", "STATE", "SINCE", "REASON")
			.. table.concat(out, "\n")
	end,
}

command "status [<node>]" {
	help = "one node's state and reason, or a summary of the farm",
	run = function(ctx, a)
		if a.node then
			local n = node(a.node)
			return string.format("%s: %s since %s ago - %s", n.name, n.state,
				ago(n.since), n.reason)
		end
		local count, trouble, all = {}, {}, nodes()
		for _, n in ipairs(all) do
			count[n.state] = (count[n.state] or 0) + 1
			if n.state ~= "ok" then
				trouble[#trouble + 1] = string.format("  %s: %s - %s", n.name, n.state, n.reason)
			end
		end
		local parts = {}
		for _, st in ipairs { "ok", "warning", "critical", "off", "maint", "down", "unknown" } do
			if count[st] then parts[#parts + 1] = count[st] .. " " .. st end
		end
		local head = string.format("%d nodes: %s", #all, table.concat(parts, ", "))
		if #trouble == 0 then return head end
		return head .. "\n" .. table.concat(trouble, "\n")
	end,
}
