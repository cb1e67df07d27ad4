package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// NginxPath is where Debian's nginx package puts the binary.
const NginxPath = "/usr/sbin/nginx"

// nginxConf is a plain reverse proxy with upstream keep-alive, the fair
// baseline: nginx's default proxy_pass opens a connection per request. It
// sets the upstream credential the way the gateway does, logs no requests
// (nor does the gateway under test), and runs one worker per core.
const nginxConf = `# written by the benchmark harness (internal/bench)
worker_processes %d;
user root;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
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

// nginxVersion returns `nginx -v`, or "" when nginx is absent.
func nginxVersion() string {
	if _, err := os.Stat(NginxPath); err != nil {
		return ""
	}
	out, err := exec.Command(NginxPath, "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
}

// startNginx writes the configuration into dir and starts nginx in the
// foreground, proxying listen to upstream.
func startNginx(ctx context.Context, dir, listen, upstream, basic string, workers int) (*Proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, workers, dir, upstream, listen, basic), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("nginx", NginxPath, []string{"-p", dir, "-c", conf, "-g", "daemon off;"}, filepath.Join(dir, "stderr.log"), nil, nil)
	if err != nil {
		return nil, err
	}
	return p, nil
}
