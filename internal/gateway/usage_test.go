package gateway

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// testUsageSecret is the shared secret of the tests' intake; every test
// checks that no log line carries it.
const testUsageSecret = "usage-secret-0123456789abcdef0123456789"

// fakeIntake stands in for the token service's usage intake where a test
// needs an intake that answers 503, 400 or 401 on cue, or hangs: a small
// handler that enforces the protocol strictly (the secret, the body limit,
// exactly the protocol's fields with valid values), so that what it
// stores is what the real intake would. The real intake, with the real
// gateway and database, is tested end to end in test/e2e
// (TestVendorWalkthrough, step 7).
type fakeIntake struct {
	t      testing.TB
	secret string
	// answer, when not nil, is asked the status of POST number n (from
	// 0) before it is read: 0 stores it (204), anything else is the
	// answer, with problem details for a 4xx.
	answer func(n int) int
	// block, when not nil, holds every POST until it is closed; arrived
	// gets a value as each one comes in.
	block   chan struct{}
	arrived chan struct{}

	mu     sync.Mutex
	posts  int
	sizes  []int
	events []usageWire
	srv    *httptest.Server
}

func newFakeIntake(t testing.TB, configure func(*fakeIntake)) *fakeIntake {
	f := &fakeIntake{t: t, secret: testUsageSecret, arrived: make(chan struct{}, 100)}
	if configure != nil {
		configure(f)
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIntake) URL() string { return f.srv.URL + "/internal/v1/usage" }

func (f *fakeIntake) stored() []usageWire {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]usageWire(nil), f.events...)
}

func (f *fakeIntake) problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}

var (
	usageOutcomes = map[string]bool{"pull": true, "check": true, "denied": true}
	usageAgents   = map[string]bool{"docker": true, "containerd": true, "helm": true, "crane": true, "oras": true, "skopeo": true, "podman": true, "other": true}
	usageFields   = []string{"time", "account", "repository", "reference", "digest", "outcome", "reason", "client", "agent"}
)

func (f *fakeIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.block != nil {
		f.arrived <- struct{}{}
		select {
		case <-f.block:
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	n := f.posts
	f.posts++
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/internal/v1/usage" {
		f.problem(w, http.StatusNotFound, "not the intake")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+f.secret)) != 1 {
		w.Header().Set("WWW-Authenticate", "Bearer")
		f.problem(w, http.StatusUnauthorized, "bad or missing secret")
		return
	}
	if f.answer != nil {
		if status := f.answer(n); status != 0 {
			f.problem(w, status, "event 0: field agent: answered by the test")
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.problem(w, http.StatusBadRequest, "Content-Type "+ct)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUsageBody))
	if err != nil {
		f.problem(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return
	}
	var doc struct {
		Events []map[string]json.RawMessage `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		f.problem(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(doc.Events) == 0 || len(doc.Events) > maxUsageBatch {
		f.problem(w, http.StatusBadRequest, fmt.Sprintf("%d events", len(doc.Events)))
		return
	}
	var got []usageWire
	for i, raw := range doc.Events {
		if field, why := checkUsageEvent(raw); field != "" {
			f.problem(w, http.StatusBadRequest, fmt.Sprintf("event %d: field %s: %s", i, field, why))
			f.t.Errorf("the recorder sent a bad event: event %d: field %s: %s", i, field, why)
			return
		}
		var e usageWire
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &e)
		got = append(got, e)
	}
	f.mu.Lock()
	f.events = append(f.events, got...)
	f.sizes = append(f.sizes, len(body))
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// checkUsageEvent is the field of raw that breaks the protocol, and why.
func checkUsageEvent(raw map[string]json.RawMessage) (field, why string) {
	if len(raw) != len(usageFields) {
		return "(fields)", fmt.Sprintf("%d fields, want exactly %v", len(raw), usageFields)
	}
	v := map[string]string{}
	for _, k := range usageFields {
		m, ok := raw[k]
		if !ok {
			return k, "missing"
		}
		var s string
		if err := json.Unmarshal(m, &s); err != nil {
			return k, "not a string"
		}
		v[k] = s
	}
	if ts, err := time.Parse(time.RFC3339, v["time"]); err != nil || !strings.HasSuffix(v["time"], "Z") || ts.IsZero() {
		return "time", "not RFC 3339 in UTC"
	}
	for _, k := range []string{"account", "repository", "reference"} {
		if v[k] == "" {
			return k, "empty"
		}
	}
	if !usageOutcomes[v["outcome"]] {
		return "outcome", "unknown"
	}
	denied := v["outcome"] == "denied"
	if denied != (v["digest"] == "") || (!denied && !strings.HasPrefix(v["digest"], "sha256:")) {
		return "digest", "a digest for a pull or check, empty for denied"
	}
	if denied == (v["reason"] == "") {
		return "reason", "set for denied only"
	}
	if c := v["client"]; c != "" {
		p, err := netip.ParsePrefix(c)
		if err != nil || p != p.Masked() || (p.Addr().Is4() && p.Bits() != 24) {
			return "client", "not a masked prefix"
		}
	}
	if !usageAgents[v["agent"]] {
		return "agent", "unknown family"
	}
	return "", ""
}

// usageSecretFile writes the shared secret, with a newline the recorder
// trims.
func usageSecretFile(t testing.TB) string {
	path := filepath.Join(t.TempDir(), "usage.secret")
	if err := os.WriteFile(path, []byte(testUsageSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// withUsage points a test gateway's usage recorder at intake.
func withUsage(t testing.TB, intake *fakeIntake, set func(*UsageConfig)) envOption {
	secret := usageSecretFile(t)
	return func(c *Config, _ *Options) {
		c.Usage = UsageConfig{Endpoint: intake.URL(), SecretFile: secret, FlushInterval: 10 * time.Millisecond}
		if set != nil {
			set(&c.Usage)
		}
	}
}

// noSecretLogged fails the test if the log ever holds the secret.
func noSecretLogged(t testing.TB, logs interface{ String() string }) {
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testUsageSecret) {
			t.Errorf("the usage secret appears in the log")
		}
	})
}

// newTestRecorder is a recorder towards intake with cfg's settings (the
// defaults for what is unset) and its own registry and log.
func newTestRecorder(t *testing.T, intake *fakeIntake, cfg UsageConfig) (*usageRecorder, *testutil.SyncBuffer) {
	t.Helper()
	if cfg.Endpoint == "" {
		cfg.Endpoint = intake.URL()
	}
	cfg.SecretFile = "unused"
	c := Config{Usage: cfg}
	c.SetDefaults()
	logs := &testutil.SyncBuffer{}
	noSecretLogged(t, logs)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	u := newUsageRecorder(c.Usage, usageOptions{secret: testUsageSecret, transport: tr,
		log: slog.New(slog.NewJSONHandler(logs, nil)), clock: time.Now, reg: prometheus.NewRegistry()})
	t.Cleanup(u.Close)
	return u, logs
}

func testEvent(ref string) usageEvent {
	return usageEvent{time: time.Now(), account: "alice@example.com", repository: "stable/app", reference: ref,
		digest: dgst, outcome: kindPull, agent: agentDocker, client: netip.MustParsePrefix("203.0.113.0/24")}
}

// Pulls, checks (a docker re-pull's HEAD) and denials through the gateway
// reach the intake with the protocol's fields: the account, the names as
// the client gave them, the digest served, the reason of a denial, the
// client's prefix (from a trusted proxy's X-Forwarded-For) and agent.
func TestUsageEventsThroughGateway(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, nil)
	e := newEnv(t, newFakeRegistry(), withUsage(t, intake, nil), func(c *Config, _ *Options) {
		c.TrustedProxies = []string{"127.0.0.0/8", "::1/128"}
	})
	noSecretLogged(t, e.logs)
	tok := e.token()
	for _, req := range []struct {
		method, path, agent, xff string
		status                   int
	}{
		{http.MethodGet, "/v2/stable/app/manifests/latest",
			"docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/amd64 UpstreamClient(Docker-Client/27.3.1 \\(linux\\))",
			"198.51.100.23", 200},
		{http.MethodHead, "/v2/stable/app/manifests/latest", "containerd/v1.7.22", "2001:db8:abcd:12::1", 200},
		{http.MethodGet, "/v2/stable/app/manifests/" + dgst, "go-containerregistry/v0.20.2", "::ffff:203.0.113.9", 200},
		{http.MethodGet, "/v2/beta/app/manifests/1.0", "Helm/3.16.2", "192.0.2.1", 401},
		{http.MethodGet, "/v2/stable/app/manifests/missing", "docker/27.3.1", "192.0.2.1", 404}, // not counted
		{http.MethodGet, "/v2/stable/app/tags/list", "docker/27.3.1", "192.0.2.1", 200},         // not counted
	} {
		h := bearer(tok)
		h.Set("User-Agent", req.agent)
		h.Set("X-Forwarded-For", req.xff)
		resp := e.do(req.method, req.path, h)
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != req.status {
			t.Fatalf("%s %s: %d, want %d", req.method, req.path, resp.StatusCode, req.status)
		}
	}
	testutil.WaitFor(t, "4 events at the intake", 5*time.Second, func() bool { return len(intake.stored()) >= 4 })
	time.Sleep(50 * time.Millisecond) // nothing more comes
	got := intake.stored()
	want := []usageWire{
		{Account: "alice@example.com", Repository: "stable/app", Reference: "latest", Digest: dgst, Outcome: "pull", Client: "198.51.100.0/24", Agent: "docker"},
		{Account: "alice@example.com", Repository: "stable/app", Reference: "latest", Digest: dgst, Outcome: "check", Client: "2001:db8:abcd::/48", Agent: "containerd"},
		{Account: "alice@example.com", Repository: "stable/app", Reference: dgst, Digest: dgst, Outcome: "pull", Client: "203.0.113.0/24", Agent: "crane"},
		{Account: "alice@example.com", Repository: "beta/app", Reference: "1.0", Outcome: "denied", Reason: deniedChannel, Client: "192.0.2.0/24", Agent: "helm"},
	}
	if len(got) != len(want) {
		t.Fatalf("intake got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		ts, err := time.Parse(time.RFC3339, got[i].Time)
		if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < 0 {
			t.Errorf("event %d: time %q is not now", i, got[i].Time)
		}
		got[i].Time = ""
		if got[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	e.gw.Close()
	metrics := e.scrape()
	for _, line := range []string{
		"gateway_usage_events_sent_total 4",
		`gateway_usage_dropped_total{reason="queue_full"} 0`,
		`gateway_usage_dropped_total{reason="rejected"} 0`,
		"gateway_usage_queue_depth 0",
		"gateway_usage_write_seconds_count",
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// With client_address: off no address is recorded; ipv6_prefix sets the
// IPv6 prefix length.
func TestUsageClientAddressSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  func(*UsageConfig)
		xff  string
		want string
	}{
		{func(u *UsageConfig) { u.ClientAddress = usageClientOff }, "198.51.100.23", ""},
		{func(u *UsageConfig) { u.IPv6Prefix = 64 }, "2001:db8:abcd:12:34::1", "2001:db8:abcd:12::/64"},
	} {
		intake := newFakeIntake(t, nil)
		e := newEnv(t, newFakeRegistry(), withUsage(t, intake, tc.set), func(c *Config, _ *Options) {
			c.TrustedProxies = []string{"127.0.0.0/8"}
		})
		h := bearer(e.token())
		h.Set("X-Forwarded-For", tc.xff)
		io.Copy(io.Discard, e.do(http.MethodGet, "/v2/stable/app/manifests/latest", h).Body)
		testutil.WaitFor(t, "1 event", 5*time.Second, func() bool { return len(intake.stored()) == 1 })
		if got := intake.stored()[0]; got.Client != tc.want || got.Agent != agentOther {
			t.Errorf("X-Forwarded-For %s: client %q, agent %q; want %q, other", tc.xff, got.Client, got.Agent, tc.want)
		}
	}
}

// A full queue drops (the oldest waiting event first, never one being
// sent), counts and logs, and record never waits, however long the intake
// takes.
func TestUsageQueueFullDropsWithoutBlocking(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, func(f *fakeIntake) { f.block = make(chan struct{}) })
	u, logs := newTestRecorder(t, intake, UsageConfig{Queue: 4, Batch: 2, FlushInterval: time.Minute})
	u.record(testEvent("r0"))
	u.record(testEvent("r1")) // a full batch: sent, and held by the intake
	<-intake.arrived
	start := time.Now()
	for i := 2; i < 12; i++ {
		u.record(testEvent(fmt.Sprintf("r%d", i)))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("10 events took %s to record while the intake hangs", d)
	}
	if got := counterValue(u.m.droppedFull); got != 8 {
		t.Errorf("gateway_usage_dropped_total{reason=queue_full} = %v, want 8", got)
	}
	if d := u.depth(); d != 4 {
		t.Errorf("depth %d, want 4 (usage.queue)", d)
	}
	close(intake.block)
	u.Close()
	var refs []string
	for _, e := range intake.stored() {
		refs = append(refs, e.Reference)
	}
	if got, want := strings.Join(refs, " "), "r0 r1 r10 r11"; got != want {
		t.Errorf("stored %s, want %s (the batch in flight, then the newest)", got, want)
	}
	if !strings.Contains(logs.String(), `"msg":"usage events dropped: the queue was full","dropped":8`) {
		t.Errorf("no WARN line with the drops: %s", logs)
	}
}

// While the intake hangs, a pull through the gateway is answered at once:
// the request does not wait for the recorder.
func TestUsageHungIntakeDoesNotSlowPulls(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, func(f *fakeIntake) { f.block = make(chan struct{}) })
	e := newEnv(t, newFakeRegistry(), withUsage(t, intake, func(u *UsageConfig) { u.Queue, u.Batch = 2, 1 }))
	noSecretLogged(t, e.logs)
	released := false
	release := func() {
		if !released {
			released = true
			close(intake.block)
		}
	}
	t.Cleanup(release) // before the gateway's Close, which flushes
	tok := e.token()
	io.Copy(io.Discard, e.do(http.MethodGet, "/v2/stable/app/manifests/latest", bearer(tok)).Body)
	<-intake.arrived // the sender is stuck in its POST
	start := time.Now()
	for range 20 {
		resp := e.do(http.MethodGet, "/v2/stable/app/manifests/latest", bearer(tok))
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("pull answered %d while the intake hangs", resp.StatusCode)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("20 pulls took %s while the intake hangs", d)
	}
	testutil.WaitFor(t, "drops counted", 5*time.Second, func() bool { return counterValue(e.gw.usage.m.droppedFull) >= 19 })
	// However many are dropped, the memory held stays bounded.
	u := e.gw.usage
	for i := range 100_000 {
		u.record(testEvent(itoa(i)))
	}
	u.mu.Lock()
	size := cap(u.queue)
	u.mu.Unlock()
	if size > 16 {
		t.Errorf("the queue's array holds %d events after 100000 drops, usage.queue is 2", size)
	}
	release()
}

// 503 (the token service's database is down) keeps the batch: it is sent
// again with backoff and stored once the intake recovers, nothing dropped.
func TestUsageRetries503(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, func(f *fakeIntake) {
		f.answer = func(n int) int {
			if n < 2 {
				return http.StatusServiceUnavailable
			}
			return 0
		}
	})
	u, logs := newTestRecorder(t, intake, UsageConfig{FlushInterval: 10 * time.Millisecond})
	for i := range 3 {
		u.record(testEvent(fmt.Sprintf("r%d", i)))
	}
	testutil.WaitFor(t, "3 events stored", 10*time.Second, func() bool { return len(intake.stored()) == 3 })
	// Counted once the answer is back, just after the intake stored them.
	testutil.WaitFor(t, "3 events counted as sent", 5*time.Second, func() bool { return counterValue(u.m.sent) == 3 })
	if got := counterValue(u.m.droppedFull) + counterValue(u.m.droppedRej); got != 0 {
		t.Errorf("%v dropped, want none", got)
	}
	if !strings.Contains(logs.String(), `"msg":"usage intake unavailable; retrying"`) || !strings.Contains(logs.String(), `"status":503`) {
		t.Errorf("no WARN line of the retry: %s", logs)
	}
}

// A connection cut before the answer is retried like a 503: the events
// are stored once the intake answers, and the error line holds no secret.
func TestUsageRetriesNetworkErrors(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, nil)
	var cuts atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cuts.Add(1) <= 2 {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		intake.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	u, logs := newTestRecorder(t, intake, UsageConfig{Endpoint: front.URL + "/internal/v1/usage", FlushInterval: 10 * time.Millisecond})
	for i := range 3 {
		u.record(testEvent(fmt.Sprintf("r%d", i)))
	}
	testutil.WaitFor(t, "3 events stored", 10*time.Second, func() bool { return len(intake.stored()) == 3 })
	if got := counterValue(u.m.droppedFull) + counterValue(u.m.droppedRej); got != 0 {
		t.Errorf("%v dropped, want none", got)
	}
	if !strings.Contains(logs.String(), `"msg":"usage intake unavailable; retrying"`) {
		t.Errorf("no WARN line of the retry: %s", logs)
	}
}

// A batch the intake refuses (400, 401) is dropped, counted as rejected
// and logged with the intake's problem, never with the secret.
func TestUsageRejectedBatchDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		intake  func(*fakeIntake)
		problem string
	}{
		{"400", func(f *fakeIntake) { f.answer = func(int) int { return http.StatusBadRequest } }, "event 0: field agent: answered by the test"},
		{"401", func(f *fakeIntake) { f.secret = strings.Repeat("x", 40) }, "bad or missing secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			intake := newFakeIntake(t, tc.intake)
			// One batch of both events: one line, after the first refusal.
			u, logs := newTestRecorder(t, intake, UsageConfig{Batch: 2, FlushInterval: time.Minute})
			u.record(testEvent("r0"))
			u.record(testEvent("r1"))
			testutil.WaitFor(t, "2 rejected", 5*time.Second, func() bool { return counterValue(u.m.droppedRej) == 2 })
			if d := u.depth(); d != 0 {
				t.Errorf("depth %d after a refusal, want 0 (dropped)", d)
			}
			testutil.WaitFor(t, "the WARN line", 5*time.Second, func() bool {
				return strings.Contains(logs.String(), `"msg":"usage events dropped: the intake refused them","dropped":2`)
			})
			if !strings.Contains(logs.String(), tc.problem) {
				t.Errorf("the line lacks the problem %q: %s", tc.problem, logs)
			}
			if len(intake.stored()) != 0 {
				t.Errorf("stored %d", len(intake.stored()))
			}
		})
	}
}

// Close sends what is held at once, without waiting for flush_interval.
func TestUsageShutdownFlush(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, nil)
	u, _ := newTestRecorder(t, intake, UsageConfig{FlushInterval: time.Minute})
	for i := range 3 {
		u.record(testEvent(fmt.Sprintf("r%d", i)))
	}
	u.Close()
	if n := len(intake.stored()); n != 3 {
		t.Errorf("stored %d at Close, want 3", n)
	}
	u.record(testEvent("late")) // after Close: ignored, no panic
	if d := u.depth(); d != 0 {
		t.Errorf("depth %d after Close", d)
	}
}

// Close gives up on an intake that does not answer after
// usageShutdownWait, and says how many events it could not send.
func TestUsageShutdownBounded(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, func(f *fakeIntake) { f.block = make(chan struct{}) })
	t.Cleanup(func() { close(intake.block) })
	u, logs := newTestRecorder(t, intake, UsageConfig{FlushInterval: time.Minute})
	u.record(testEvent("r0"))
	start := time.Now()
	u.Close()
	if d := time.Since(start); d > usageShutdownWait+2*time.Second {
		t.Errorf("Close took %s with a hung intake", d)
	}
	if !strings.Contains(logs.String(), `"msg":"usage events not sent at shutdown","events":1`) {
		t.Errorf("no WARN line of the events lost: %s", logs)
	}
}

// A batch whose body would pass the intake's 1 MiB is sent in parts.
func TestUsageBodyLimitSplitsBatch(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, nil)
	u, _ := newTestRecorder(t, intake, UsageConfig{Queue: 1000, Batch: 1000, FlushInterval: time.Minute})
	for i := range 1000 {
		e := testEvent(fmt.Sprintf("%03d", i) + strings.Repeat("t", 120))
		e.account = strings.Repeat("a", 600) + "@example.com"
		e.repository = "stable/" + strings.Repeat("r", 240)
		u.record(e)
	}
	testutil.WaitFor(t, "1000 events stored", 10*time.Second, func() bool { return len(intake.stored()) == 1000 })
	intake.mu.Lock()
	sizes := intake.sizes
	intake.mu.Unlock()
	if len(sizes) < 2 {
		t.Errorf("%d POSTs, want the batch split", len(sizes))
	}
	for _, s := range sizes {
		if s > maxUsageBody {
			t.Errorf("a body of %d bytes", s)
		}
	}
	if got := counterValue(u.m.droppedRej); got != 0 {
		t.Errorf("%v rejected", got)
	}
}

func TestAgentFamily(t *testing.T) {
	t.Parallel()
	for ua, want := range map[string]string{
		"docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.8.0 os/linux arch/amd64 UpstreamClient(Docker-Client/27.3.1 \\(linux\\))": agentDocker,
		"Docker-Client/19.03.12 (linux)":             agentDocker,
		"containerd/v1.7.22":                         agentContainerd,
		"Helm/3.16.2":                                agentHelm,
		"go-containerregistry/v0.20.2":               agentCrane,
		"crane/v0.20.2 go-containerregistry/v0.20.2": agentCrane,
		"oras/1.2.0":                                 agentOras,
		"skopeo/1.16.1":                              agentSkopeo,
		"containers/5.32.2 (github.com/containers/image) libpod/5.2.3": agentPodman,
		"Podman/5.2.3": agentPodman,
		"curl/8.5.0":   agentOther,
		"":             agentOther,
		strings.Repeat("x", maxAgentScan) + "docker/1":                     agentOther,  // beyond what is looked at
		"DOCKER/27.0 containerd/1.7 (buildkit)":                            agentDocker, // first match, any case
		"containerd/1.7 docker/27.0":                                       agentDocker, // docker's pattern comes first
		"skopeo/1.16 containers/image go-containerregistry-like/0.1 crane": agentCrane,
	} {
		if got := agentFamily(ua); got != want {
			t.Errorf("agentFamily(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestClientPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		v6bits int
		want   string
	}{
		{"203.0.113.77", 48, "203.0.113.0/24"},
		{"::ffff:198.51.100.7", 48, "198.51.100.0/24"},
		{"2001:db8:abcd:12::1", 48, "2001:db8:abcd::/48"},
		{"2001:db8:abcd:12::1", 64, "2001:db8:abcd:12::/64"},
		{"fe80::1%eth0", 48, "fe80::/48"},
		{"lb-client-7", 48, ""}, // a trusted proxy's entry that is no address
		{"", 48, ""},
	} {
		got := ""
		if p := clientPrefix(tc.addr, tc.v6bits); p.IsValid() {
			got = p.String()
		}
		if got != tc.want {
			t.Errorf("clientPrefix(%q, %d) = %q, want %q", tc.addr, tc.v6bits, got, tc.want)
		}
	}
}

// The usage section: off without an endpoint, defaults with one, every
// problem reported at once; the secret file is read at start and by
// check-config with files.
func TestUsageConfig(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Usage != (UsageConfig{}) {
		t.Errorf("usage without an endpoint: %+v, want off", cfg.Usage)
	}
	cfg, err = ParseConfig([]byte(exampleConfig + "usage:\n  endpoint: http://tokens:5001/internal/v1/usage\n  secret_file: s\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := UsageConfig{Endpoint: "http://tokens:5001/internal/v1/usage", SecretFile: "s", Queue: 10000, Batch: 500,
		FlushInterval: time.Second, ClientAddress: "prefix", IPv6Prefix: 48}
	if cfg.Usage != want {
		t.Errorf("defaults %+v, want %+v", cfg.Usage, want)
	}

	_, err = ParseConfig([]byte(exampleConfig + `usage:
  endpoint: ftp://tokens/usage
  queue: -1
  batch: 1001
  flush_interval: 2m
  client_address: full
  ipv6_prefix: 129
`))
	for _, p := range []string{"usage.endpoint", "usage.secret_file: required", "usage.queue: -1", "usage.batch: 1001",
		"usage.flush_interval: 2m0s", `usage.client_address: "full"`, "usage.ipv6_prefix: 129"} {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("error %v lacks %q", err, p)
		}
	}
	_, err = ParseConfig([]byte(exampleConfig + "usage:\n  endpoint: http://t/u\n  secret_file: s\n  queue: 10\n  batch: 20\n"))
	if err == nil || !strings.Contains(err.Error(), "usage.batch: 20 is larger than usage.queue (10)") {
		t.Errorf("batch over queue: %v", err)
	}
	_, err = ParseConfig([]byte(exampleConfig + "usage:\n  client_address: off\n"))
	if err == nil || !strings.Contains(err.Error(), "usage: endpoint is not set") {
		t.Errorf("usage keys without an endpoint: %v", err)
	}

	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	writeFile(t, short, "too-short\n")
	spaced := filepath.Join(dir, "spaced")
	writeFile(t, spaced, "0123456789abcdef 0123456789abcdef0123\n")
	good := filepath.Join(dir, "good")
	writeFile(t, good, "  "+testUsageSecret+"\n")
	if s, err := readUsageSecret(good); err != nil || s != testUsageSecret {
		t.Errorf("readUsageSecret: %q, %v", s, err)
	}
	for path, want := range map[string]string{
		short:                    "the secret has 9 bytes, at least 32 are required",
		spaced:                   "spaces or control characters",
		filepath.Join(dir, "no"): "no such file",
	} {
		conf := filepath.Join(dir, "gateway.yaml")
		writeFile(t, conf, exampleConfig+"usage:\n  endpoint: http://t/u\n  secret_file: "+path+"\n")
		err := checkConfigFile(t, conf, true)
		if err == nil || !strings.Contains(err.Error(), "usage.secret_file: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("check-config with %s: %v, want %q", filepath.Base(path), err, want)
		}
		if err != nil && strings.Contains(err.Error(), "too-short") {
			t.Errorf("the error shows the secret: %v", err)
		}
		if err := checkConfigFile(t, conf, false); err != nil {
			t.Errorf("check-config without files: %v", err)
		}
	}
}

// New refuses a secret file that does not hold a usable secret.
func TestUsageSecretReadAtStart(t *testing.T) {
	t.Parallel()
	intake := newFakeIntake(t, nil)
	short := filepath.Join(t.TempDir(), "short")
	writeFile(t, short, "too-short")
	e := newEnv(t, newFakeRegistry())
	cfg := *e.cfg
	cfg.Usage = UsageConfig{Endpoint: intake.URL(), SecretFile: short}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gw, err := New(t.Context(), &cfg, Options{Credentials: StaticCredential{Username: testUser, Password: testPassword}})
	if err == nil {
		gw.Close()
		t.Fatal("New accepted a 9-byte usage secret")
	}
	if !strings.Contains(err.Error(), "usage.secret_file: ") {
		t.Errorf("error %v does not name usage.secret_file", err)
	}
}
