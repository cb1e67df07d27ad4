package bench

import (
	"strings"
	"testing"
)

// The drain check reads the recorder's gauges and counters from the
// gateway's /metrics page, summed over their labels.
func TestParseMetrics(t *testing.T) {
	page := `# HELP gateway_usage_dropped_total Usage events not sent.
# TYPE gateway_usage_dropped_total counter
gateway_usage_dropped_total{reason="queue_full"} 3
gateway_usage_dropped_total{reason="rejected"} 2
gateway_usage_queue_depth 0
gateway_usage_events_sent_total 1.2345e+06
gateway_pulls_total{channel="stable",kind="pull",repository="stable/app"} 7
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"gateway_usage_dropped_total": 5, "gateway_usage_queue_depth": 0,
		"gateway_usage_events_sent_total": 1_234_500, "gateway_pulls_total": 7} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, err := parseMetrics(strings.NewReader("gateway_usage_queue_depth lots\n")); err == nil {
		t.Error("a sample that is no number was read")
	}
}
