package testutil

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// metricsListening is the JSON log line of httpx.ServeOps, with the
// address it bound.
var metricsListening = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

// OpsMetric finds the operators' listener in a service's JSON log (waiting
// up to 10 s for its "metrics listening" line), scrapes /metrics there and
// returns the first sample line of the metric name (without labels: the
// name up to "{" or " "). The test fails if there is none.
func OpsMetric(t testing.TB, log interface{ String() string }, name string) string {
	t.Helper()
	var addr string
	WaitFor(t, "the metrics listener's log line", 10*time.Second, func() bool {
		m := metricsListening.FindStringSubmatch(log.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			return line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}
