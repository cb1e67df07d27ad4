// Package proc starts and stops the server processes of the benchmark:
// each with its log in a file, killed if the harness dies, stopped by its
// PID, and waited for until it answers on its ready URL.
package proc

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/acme/registry-gateway/bench/procstat"
)

// Proc is a server process started by the harness.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Start starts bin with args; its stdout and stderr go to logPath. On Linux
// the process is killed if the harness dies (Pdeathsig); elsewhere it is
// not (the benchmark runs on Linux only: bench.Run refuses other systems).
func Start(name, bin string, args []string, logPath string, env []string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	cmd.Stdout = logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID of the process.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to 10 s before SIGKILL; only this process,
// by its PID.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// LogTail is the end of the process's log, for error messages.
func (p *Proc) LogTail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return strings.TrimSpace(string(data))
}

// Memory returns the process's current and peak resident set.
func (p *Proc) Memory() (procstat.Memory, error) {
	return procstat.ReadMemory(p.PID())
}

// WaitReady polls url until it answers one of want, the process exits, or
// timeout passes.
func WaitReady(ctx context.Context, p *Proc, url string, timeout time.Duration, want ...int) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (%v): %s", p.Name, p.err, p.LogTail())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			for _, w := range want {
				if resp.StatusCode == w {
					return nil
				}
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	name := "server"
	if p != nil {
		name = p.Name
		return fmt.Errorf("%s not ready at %s after %s: %v; log: %s", name, url, timeout, last, p.LogTail())
	}
	return fmt.Errorf("%s not ready at %s after %s: %v", name, url, timeout, last)
}

// FreeAddr returns a free 127.0.0.1 port for a server that wants an
// address in its configuration. The tiny race with another process taking
// it is acceptable on a benchmark machine.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}
