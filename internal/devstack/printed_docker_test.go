package devstack

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
)

// TestPrintedDockerCommands runs the docker commands the banner prints,
// word for word, with the real docker CLI and a private dockerd, over plain
// HTTP and over HTTPS (where the printed lines install the development CA
// into /etc/docker/certs.d/<host:port>/ first; removed at the end).
func TestPrintedDockerCommands(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			d := dockertest.Start(t, dockertest.Options{})
			st, _ := startStack(t, m.mod)
			if st.TLS != nil {
				certsd := dockertest.CertsDir + "/" + st.GatewayHost
				if _, err := os.Stat(certsd); err == nil {
					t.Fatalf("%s exists already", certsd)
				}
				t.Cleanup(func() { os.RemoveAll(certsd) })
			}
			var ran int
			for _, c := range st.Commands() {
				if c.Tool != "docker" {
					continue
				}
				ran++
				out, err := runDockerLine(t, d, c.Line)
				if c.Refused {
					if err == nil || !strings.Contains(out, "denied") {
						t.Errorf("%s: refused command answered %v\n%s", c.Line, err, out)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v\n%s\ndockerd log:\n%s", c.Line, err, out, d.Log())
				}
			}
			if want := map[bool]int{false: 3, true: 5}[st.TLS != nil]; ran != want {
				t.Errorf("%d docker commands printed, want %d", ran, want)
			}
			out, err := d.Docker(t.Context(), "", "image", "inspect", "--format", "{{.Os}}", st.GatewayHost+"/"+LicensedRepo+":1.0")
			if err != nil || strings.TrimSpace(out) != "linux" {
				t.Errorf("pulled image: %v %s", err, out)
			}
		})
	}
}

// runDockerLine runs one printed line: `printf X | docker …` feeds X to
// docker's stdin, `docker …` runs against the test's daemon, anything else
// (mkdir, cp) runs as is.
func runDockerLine(t *testing.T, d *dockertest.Daemon, line string) (string, error) {
	t.Helper()
	stdin := ""
	if before, after, ok := strings.Cut(line, " | "); ok {
		words := strings.Fields(before)
		if len(words) != 2 || words[0] != "printf" {
			t.Fatalf("unexpected pipe in %q", line)
		}
		stdin, line = words[1], after
	}
	words := strings.Fields(line)
	if words[0] == "docker" {
		return d.Docker(t.Context(), stdin, words[1:]...)
	}
	out, err := exec.CommandContext(t.Context(), words[0], words[1:]...).CombinedOutput()
	return string(out), err
}
