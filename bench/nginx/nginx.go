// Package nginx is the nginx contender of the benchmark: its configuration
// (a plain reverse proxy with upstream keep-alive) and starting Debian's
// nginx with it in the foreground.
package nginx

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/acme/registry-gateway/bench/proc"
)

// Path is where Debian's nginx package puts the binary.
const Path = "/usr/sbin/nginx"

// confTemplate is a plain reverse proxy with upstream keep-alive, the fair
// baseline: nginx's default proxy_pass opens a connection per request. It
// sets the upstream credential the way the gateway does, logs no requests
// (nor does the gateway under test), and runs one worker per core.
const confTemplate = `# written by the benchmark harness (bench)
` + mainTemplate + `
    upstream registry {
        server %[3]s;
        keepalive 256;
    }
    server {
        listen %[4]s;
        location /v2/ {
            proxy_pass http://registry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Basic %[5]s";
        }
    }
}
`

// mainTemplate is what both contenders' configurations start with: %[1]d
// worker processes, their files in %[2]s, no access log; it leaves the http
// block open.
const mainTemplate = `worker_processes %[1]d;
user root;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;`

// Version returns `nginx -v`, or "" when nginx is absent.
func Version() string {
	if _, err := os.Stat(Path); err != nil {
		return ""
	}
	out, err := exec.Command(Path, "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
}

// Config renders the configuration: workers processes with their files in
// dir, listening on listen and proxying /v2/ to upstream (host:port) with
// `Authorization: Basic basic`.
func Config(dir, listen, upstream, basic string, workers int) []byte {
	return fmt.Appendf(nil, confTemplate, workers, dir, upstream, listen, basic)
}

// Start writes the configuration into dir and starts nginx in the
// foreground, proxying listen to upstream.
func Start(dir, listen, upstream, basic string, workers int) (*proc.Proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, Config(dir, listen, upstream, basic, workers), 0o644); err != nil {
		return nil, err
	}
	return proc.Start("nginx", Path, []string{"-p", dir, "-c", conf, "-g", "daemon off;"}, filepath.Join(dir, "stderr.log"), nil)
}
