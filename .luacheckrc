-- luacheck configuration: Lua 5.4, busted globals in spec/, the sandbox's
-- globals in scripts/.
std = "lua54"
max_line_length = 120
codes = true
exclude_files = { "scripts/_meta/**", "build*/**" }
files["spec/**"] = { std = "+busted" }
files["scripts/**"] = { read_globals = { "k8s" } }
files["runtime/lua/**"] = { read_globals = { "k8s" } }
