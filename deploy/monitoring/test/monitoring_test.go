package monitoringtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/acme/registry-gateway/internal/devstack"
)

const (
	repoRoot   = "../../.."
	monitoring = ".."
	rulesFile  = monitoring + "/alerts.yaml"
	dashFile   = monitoring + "/dashboard.json"
	// chartFiles holds the chart's copies (.Files.Get reads only inside the
	// chart directory).
	chartFiles = repoRoot + "/charts/registry-gateway/files"
)

// promql is Prometheus's PromQL parser with its default options, as
// rulefmt and the server use it.
var promql = parser.NewParser(parser.Options{})

// prometheusMade are series Prometheus itself writes for every target;
// the services cannot export them.
var prometheusMade = map[string]bool{"up": true}

// wantAlerts are the conditions issue 21 asks to be watched, by alert.
var wantAlerts = []string{
	"UpstreamCredentialExpiringSoon", "UpstreamCredentialRefreshFailing",
	"GatewayHighErrorRatio", "TokenServiceUnready", "LicenceBackendUnavailable",
	"FailedLoginRateHigh", "UsageEventsDropped",
}

// ruleMetrics parses the rule file with Prometheus's parser (the same
// checks as `promtool check rules`: YAML fields, durations, templates of
// labels and annotations, each expression) and returns the metrics each
// alert names.
func ruleMetrics(t *testing.T, path string) map[string][]string {
	t.Helper()
	// Its warnings (a deprecated field) go to the test log.
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, promql, logger)
	for _, err := range errs {
		t.Errorf("%s: %v", path, err)
	}
	if groups == nil {
		t.FailNow()
	}
	out := map[string][]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			if r.Alert != "" && (r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "") {
				t.Errorf("%s: alert %s needs labels.severity and annotations summary and description", path, name)
			}
			out[name] = exprMetrics(t, name, r.Expr)
		}
	}
	return out
}

// exprMetrics parses a PromQL expression and returns the metric names
// its selectors name.
func exprMetrics(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v\n%s", where, err, expr)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				name = m.Value
			}
		}
		if name == "" {
			t.Errorf("%s: a selector without a metric name: %s", where, vs)
		}
		names = append(names, name)
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: names no metric: %s", where, expr)
	}
	return names
}

// grafanaVars stand for Grafana's interval variables in queries: the
// PromQL parser does not know them.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// dashboard is the part of Grafana's dashboard model the test reads.
type dashboard struct {
	Title, UID string
	Templating struct {
		List []struct{ Name, Type, Query string }
	}
	Panels []panel
}

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource *struct{ Type, UID string }
	Targets    []struct{ RefID, Expr string }
	Panels     []panel // a collapsed row's
}

// dashboardMetrics parses the dashboard and every query in it, and
// returns the metrics each panel names.
func dashboardMetrics(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: uid %q, title %q: both are needed for provisioning", path, d.UID, d.Title)
	}
	if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" || d.Templating.List[0].Query != "prometheus" {
		t.Errorf("%s: the first variable must be the Prometheus data source, named datasource", path)
	}
	out := map[string][]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", path, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q does not use ${datasource}", path, p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, p.Title)
			}
			for _, q := range p.Targets {
				where := fmt.Sprintf("panel %q query %s", p.Title, q.RefID)
				out[p.Title] = append(out[p.Title], exprMetrics(t, where, grafanaVars.Replace(q.Expr))...)
			}
		}
	}
	walk(d.Panels)
	return out
}

// TestRulesParse: the alert rules load with Prometheus's rule parser, and
// every condition asked for has its alert.
func TestRulesParse(t *testing.T) {
	rules := ruleMetrics(t, rulesFile)
	for _, a := range wantAlerts {
		if _, ok := rules[a]; !ok {
			t.Errorf("%s: no alert %s", rulesFile, a)
		}
	}
}

// TestDashboardParses: the dashboard is Grafana JSON whose every query
// parses as PromQL, with the five subjects asked for.
func TestDashboardParses(t *testing.T) {
	panels := dashboardMetrics(t, dashFile)
	b, err := os.ReadFile(dashFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, p.Title)
		}
	}
	for _, want := range []string{"Pulls", "Tokens", "Latencies", "Refusals", "Credential life"} {
		if !slices.Contains(rows, want) {
			t.Errorf("%s: no row %q (rows %v)", dashFile, want, rows)
		}
	}
	if len(panels) < 10 {
		t.Errorf("%s: only %d panels", dashFile, len(panels))
	}
}

// TestChartCopiesInStep: the chart ships the same rules and dashboard
// (helm reads files only inside the chart directory, so it holds copies).
func TestChartCopiesInStep(t *testing.T) {
	for _, f := range []string{"alerts.yaml", "dashboard.json"} {
		src, err := os.ReadFile(filepath.Join(monitoring, f))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.ReadFile(filepath.Join(chartFiles, f))
		if err != nil || !bytes.Equal(src, dst) {
			t.Errorf("charts/registry-gateway/files/%s differs from deploy/monitoring/%s (%v): cp deploy/monitoring/%s charts/registry-gateway/files/", f, f, err, f)
		}
	}
}

// TestMetricsExist runs the real services (the demo stack: gateway, token
// service, upstream registry, with SQL accounts, usage recording and TLS,
// so that every optional metric is on), drives the events after which
// labelled series appear (a login, a pull, a refused pull, a refused
// token, a failed login), scrapes both /metrics and checks that every
// metric the rules and the dashboard name is there.
func TestMetricsExist(t *testing.T) {
	named := map[string][]string{} // metric → the alerts and panels naming it
	for where, ms := range ruleMetrics(t, rulesFile) {
		for _, m := range ms {
			named[m] = append(named[m], "alert "+where)
		}
	}
	for where, ms := range dashboardMetrics(t, dashFile) {
		for _, m := range ms {
			named[m] = append(named[m], "panel "+where)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	st := startStack(t)
	drive(t, st)

	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The counters of a request move just after its answer is sent:
		// scrape until every name is there, or give up.
		exported := scrape(t, st.GatewayMetricsURL+"/metrics")
		maps.Copy(exported, scrape(t, st.TokenServerMetricsURL+"/metrics"))
		missing = missing[:0]
		for m := range named {
			if !exported[m] && !prometheusMade[m] {
				missing = append(missing, m)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("%s is not exported by the services (named by %s)", m, strings.Join(named[m], ", "))
	}
}

// startStack copies the demo configuration into a temporary directory and
// runs the stack of `make run LICENSES=sql TLS=1` from it, on free ports.
func startStack(t *testing.T) *devstack.Stack {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"deploy/tokenserver-sql.yaml", "deploy/gateway.yaml", "deploy/upstream.htpasswd", "deploy/upstream.password"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == devstack.SQLConfig {
			// The DSN is relative to the working directory: this test's.
			b = bytes.Replace(b, []byte("dsn: data/accounts.db"), []byte("dsn: "+filepath.Join(dir, "accounts.db")), 1)
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	token, err := devstack.SQLDemoAccount(t.Context(), filepath.Join(dir, devstack.SQLConfig), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := devstack.Start(ctx, devstack.Options{
		Dir:               dir,
		TokenServerConfig: devstack.SQLConfig,
		GatewayAddr:       "127.0.0.1:0",
		TokenServerAddr:   "127.0.0.1:0",
		UpstreamAddr:      "127.0.0.1:0",
		TLS:               true,
		DemoToken:         token,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := st.Wait(); err != nil {
			t.Errorf("stack stopped with %v", err)
		}
	})
	return st
}

// drive does what a day of customers does, once each: a login and a
// pull, a pull of a channel not licensed, a token the gateway refuses, a
// login with a wrong API token.
func drive(t *testing.T, st *devstack.Stack) {
	t.Helper()
	pem, err := os.ReadFile(st.TLS.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	opts := []crane.Option{crane.WithTransport(tr), crane.WithContext(t.Context()),
		crane.WithAuth(&authn.Basic{Username: devstack.DemoUser, Password: st.DemoToken})}

	if _, err := crane.Manifest(st.GatewayHost+"/"+devstack.LicensedRepo+":1.0", opts...); err != nil {
		t.Fatalf("pull of the licensed channel: %v", err)
	}
	if _, err := crane.Manifest(st.GatewayHost+"/"+devstack.UnlicensedRepo+":1.0", opts...); err == nil {
		t.Fatal("pull of the unlicensed channel succeeded")
	}
	wrong := append(slices.Clip(opts), crane.WithAuth(&authn.Basic{Username: devstack.DemoUser, Password: "rgw_wrong"}))
	if _, err := crane.Manifest(st.GatewayHost+"/"+devstack.LicensedRepo+":1.0", wrong...); err == nil {
		t.Fatal("pull with a wrong API token succeeded")
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, st.GatewayURL+"/v2/"+devstack.LicensedRepo+"/manifests/1.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer not.a.token")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a forged token: status %d", resp.StatusCode)
	}
}

// scrape returns the metric names a /metrics answer holds: each family's,
// and for histograms and summaries the _bucket, _sum and _count series
// PromQL names.
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names
}
