-- routes.lua: who hears about what.  Every event goes to the console log,
-- which "switchboard -r" shows live.  Add routes to page people:
--   route { severity = "critical", to = { "xmpp:oncall@example.org" } }
--   route { group = "rack3", to = { "irc:#rack3" } }

route { to = { "console" } }
