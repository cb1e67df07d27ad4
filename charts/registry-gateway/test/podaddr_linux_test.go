package charttest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// podAddrLock serialises the tests on one machine that add pod addresses:
// the addresses belong to the machine, and several checkouts' chart tests
// may run at once.
var podAddrLock = filepath.Join(os.TempDir(), "registry-gateway-charttest-podaddrs.lock")

// addPodAddrs adds each address as a /32 to the loopback interface until
// the test ends, holding podAddrLock meanwhile (2 minutes' wait at most).
// An address already there is a leftover of a run that was killed (its
// cleanup never ran; the lock says no run holds it now): it is used and
// removed. Without root the test is skipped; without the ip command too,
// unless CI=true or REQUIRE_HELM=1.
func addPodAddrs(t *testing.T, addrs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test adds pod-network addresses (10.250.0.0/24) to the loopback interface with `ip addr add`")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		msg := "needs the ip command (Debian: iproute2) to add pod-network addresses to the loopback interface"
		if os.Getenv("CI") == "true" || os.Getenv("REQUIRE_HELM") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	lock, err := os.OpenFile(podAddrLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // releases the lock, after the deletions below
	for deadline := time.Now().Add(2 * time.Minute); ; {
		err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			t.Fatalf("lock %s: %v", podAddrLock, err)
		}
		time.Sleep(100 * time.Millisecond) // another run holds it
	}
	for _, a := range addrs {
		out, err := exec.Command(ip, "addr", "add", a+"/32", "dev", "lo").CombinedOutput()
		if err != nil {
			if !strings.Contains(string(out), "exists") && !strings.Contains(string(out), "already assigned") {
				t.Fatalf("ip addr add %s/32 dev lo: %v\n%s", a, err, out)
			}
			t.Logf("%s/32 was left on lo by an earlier run; removing it at the end", a)
		}
		t.Cleanup(func() {
			if out, err := exec.Command(ip, "addr", "del", a+"/32", "dev", "lo").CombinedOutput(); err != nil {
				t.Errorf("ip addr del %s/32 dev lo: %v\n%s", a, err, out)
			}
		})
	}
}
