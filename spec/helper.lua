-- busted --helper: runs once before the specs.
--
-- Makes require("luaraft.sim") load the C module from the build directory
-- ($LUARAFT_BUILD_DIR, set by ctest; default: build/ in the project root)
-- and require("luaraft.x") load lua/luaraft/x.lua from the project root,
-- both ahead of anything installed on the system. The project root is found
-- from this file's own path, so busted may be started from anywhere:
--
--   lua5.4 /usr/bin/busted --helper=spec/helper.lua spec/raft

local source = debug.getinfo(1, "S").source
assert(source:sub(1, 1) == "@", "spec/helper.lua must be loaded from a file")
local spec_dir = source:sub(2):match("^(.*)/[^/]*$") or "."
local root = spec_dir:match("^(.*)/[^/]*$") or (spec_dir == "." and ".." or ".")

local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
    build = root .. "/build"
end

package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath
