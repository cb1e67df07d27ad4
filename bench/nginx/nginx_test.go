package nginx

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	conf := string(Config(dir, "127.0.0.1:8080", "127.0.0.1:5000", "QVdTOnB3", 2))
	for _, want := range []string{
		"worker_processes 2;", "pid " + dir + "/nginx.pid;", "server 127.0.0.1:5000;", "keepalive 256;",
		"listen 127.0.0.1:8080;", `proxy_set_header Authorization "Basic QVdTOnB3";`, `proxy_set_header Connection "";`,
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "%!") {
		t.Errorf("formatting error in:\n%s", conf)
	}
	if Version() == "" {
		t.Logf("%s not installed: the configuration is not checked by nginx -t", Path)
		return
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(Path, "-t", "-p", dir, "-c", path).CombinedOutput(); err != nil {
		t.Errorf("nginx -t: %v\n%s", err, out)
	}
}
