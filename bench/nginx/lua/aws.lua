-- The article's aws.lua, unchanged: the ECR token is re-read when the
-- file's mtime changes, which it asks `stat` for on every call.
local _M = {}
local ecr_token = ""
local last_mtime = 0
function _M.read_ecr_token(path)
    local f = io.open(path)
    local token = f:read("*all")
    f:close()
    return token
end
function _M.get_ecr_token(path)
    local f = io.popen("stat -c %Y " .. path)
    local mtime = tonumber(f:read())
    f:close()
    if mtime > last_mtime then
        ecr_token = _M.read_ecr_token(path)
        last_mtime = mtime
    end
    return ecr_token
end
return _M
