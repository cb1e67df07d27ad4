package nginx

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"

	"github.com/acme/registry-gateway/bench/proc"
)

// LuaModule is where Debian's libnginx-mod-http-lua puts the module, and
// ndkModule the development kit it needs loaded first.
const (
	LuaModule = "/usr/lib/nginx/modules/ngx_http_lua_module.so"
	ndkModule = "/usr/lib/nginx/modules/ndk_http_module.so"
)

// HasLua reports whether nginx and its Lua module are installed.
func HasLua() bool {
	if Version() == "" {
		return false
	}
	_, err := os.Stat(LuaModule)
	return err == nil
}

//go:embed lua/*.lua
var luaFiles embed.FS

// luaTemplate is the configuration of the article ("Custom Authentication
// to A Private Docker Registry With NGINX, Lua, and AWS ECR"), with its
// licence check (the "Custom Authentication" snippet) where its TODO says,
// changed only where it cannot run as printed or must point at the bench:
//   - the method blacklist is written as a Lua table ({"POST": 1} is not
//     Lua), `split` (called, never defined) is defined, and `json` is the
//     global that has_access reads (init_by_lua made it local);
//   - ECR and the licence API are the fixtures, over HTTP, through upstream
//     blocks with keep-alive, as every other contender gets (the article's
//     variable proxy_pass would open a connection per licence check); no
//     resolver is needed;
//   - one worker per core, logs off, as for the plain nginx contender.
//
// Everything else is the article's: every request is checked with a
// licence API sub-request (nothing is cached), and aws.lua runs `stat` on
// the token file for every request.
const luaTemplate = `# written by the benchmark harness (bench/nginx), after the article
load_module %[7]s;
load_module %[6]s;
` + mainTemplate + `
    lua_package_path "%[2]s/lua/?.lua;;";
    upstream ecr {
        server %[3]s;
        keepalive 256;
    }
    upstream licences {
        server %[5]s;
        keepalive 256;
    }
    map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
        '' 'registry/2.0';
    }
    init_by_lua '
        -- External library for JSON parsing.
        json = require("JSON")
        -- External lib for loading the token.
        local aws = require("aws")
        aws.get_ecr_token("%[2]s/ecr_token")
    ';
    server {
        listen %[4]s;
        server_name _;
        client_max_body_size 0;
        location /health {
            return 200;
        }
        location /v1/meta/licenses/ {
            internal;
            proxy_pass http://licences;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location ~* ^/v2/(?<channel>[a-z0-9_-]*)?(/.*)?$ {
            if ($http_user_agent ~ "^(docker\/1\.(3|4|5(?!\.[0-9]-dev))|Go ).*$") {
                return 404;
            }
            access_by_lua '
                local method_blacklist = {POST = 1, DELETE = 1}
                if method_blacklist[ngx.var.request_method] then
                    ngx.exit(403)
                end
                if ngx.var.http_authorization == nil then
                    ngx.header["WWW-Authenticate"] = "Basic realm=kloudless"
                    ngx.exit(401)
                end
                local function split(s, sep)
                    local i = string.find(s, sep, 1, true)
                    if i == nil then
                        return {s}
                    end
                    return {string.sub(s, 1, i - 1), string.sub(s, i + 1)}
                end
                local function has_access(lks_string, channel)
                    local lks = json:decode(lks_string)
                    if lks["objects"] == nil then
                        return false
                    end
                    for _, obj in pairs(lks["objects"]) do
                        if obj["release"] == channel then
                            return true
                        end
                    end
                    return false
                end
                local encoded_creds = string.sub(ngx.var.http_authorization, 7)
                local decoded_creds = ngx.decode_base64(encoded_creds)
                if decoded_creds == nil then
                    ngx.exit(400)
                end
                local split_creds = split(decoded_creds, ":")
                local token = split_creds[2]
                if token == nil then
                    ngx.exit(400)
                end
                local org_accept = ngx.req.get_headers()["Accept"]
                ngx.req.set_header("Accept", "application/json")
                ngx.req.set_header("Authorization", string.format("Bearer %%s", token))
                local res = ngx.location.capture("/v1/meta/licenses/")
                if not (res.status == 200) then
                    ngx.status = res.status
                    ngx.say(res.body)
                    ngx.exit(res.status)
                end
                ngx.req.set_header("Accept", org_accept)
                if string.len(ngx.var["channel"]) > 0 and not has_access(res.body, ngx.var["channel"]) then
                    ngx.exit(403)
                end
                local aws = require("aws")
                local ecr_token = aws.get_ecr_token("%[2]s/ecr_token")
                ngx.req.set_header("Authorization", string.format("Basic %%s", ecr_token))
            ';
            add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version;
            proxy_pass http://ecr;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host "%[3]s";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-User $http_authorization;
            proxy_set_header X-Forwarded-Proto "https";
            proxy_pass_header Server;
            proxy_read_timeout 900;
        }
    }
}
`

// LuaConfig renders the article's configuration: workers processes with
// their files in dir, listening on listen, proxying /v2/ to upstream
// (host:port) after asking the licence API at licences (host:port).
func LuaConfig(dir, listen, upstream, licences string, workers int) []byte {
	return fmt.Appendf(nil, luaTemplate, workers, dir, upstream, listen, licences, LuaModule, ndkModule)
}

// StartLua writes the article's set-up into dir — the configuration, its
// Lua modules and the ECR token file holding basic (the upstream
// credential, as the article's cron job writes it) — and starts nginx in
// the foreground.
func StartLua(dir, listen, upstream, licences, basic string, workers int) (*proc.Proc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "lua"), 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"aws.lua", "JSON.lua"} {
		data, err := luaFiles.ReadFile("lua/" + name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "lua", name), data, 0o644); err != nil {
			return nil, err
		}
	}
	// The article's cron job writes the token with echo: a trailing newline
	// that ends up in the header nginx sends, which nginx rejects; it is
	// written here without one.
	if err := os.WriteFile(filepath.Join(dir, "ecr_token"), []byte(basic), 0o600); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, LuaConfig(dir, listen, upstream, licences, workers), 0o644); err != nil {
		return nil, err
	}
	return proc.Start("nginx-lua", Path, []string{"-p", dir, "-c", conf, "-g", "daemon off;"}, filepath.Join(dir, "stderr.log"), nil)
}
