package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The usage recorder sends one event per counted manifest request (a pull,
// a check or a denial: what gateway_pulls_total counts) to the token
// service's usage intake, which stores them in the account database. The
// gateway never reaches a database itself: it holds no database
// credential, and the wall keeps it away from licence code.
//
// Recording never slows or fails a request: finishRequest appends to a
// bounded in-memory queue under a mutex and returns; one goroutine sends
// batches. What does not fit is dropped and counted.

// Limits of the intake protocol and of the sender.
const (
	// maxUsageBody and maxUsageBatch are the intake's limits of one POST.
	maxUsageBody  = 1 << 20
	maxUsageBatch = 1000
	// usageWriteTimeout bounds one POST, from dialling to the answer.
	usageWriteTimeout = 10 * time.Second
	// usageShutdownWait bounds the flush at Close.
	usageShutdownWait = 5 * time.Second
	// usageLogEvery spaces the WARN lines of drops and rejections.
	usageLogEvery = time.Minute
	// Backoff between attempts after 5xx or network errors.
	usageMinBackoff = 250 * time.Millisecond
	usageMaxBackoff = 30 * time.Second
	// maxUsageSecretFile bounds what is read of usage.secret_file.
	maxUsageSecretFile = 64 << 10
	// minUsageSecret is the protocol's shortest shared secret.
	minUsageSecret = 32
	// maxProblemBody bounds what is read of a refusal's problem details.
	maxProblemBody = 8 << 10
	// maxAgentScan bounds how much of a User-Agent is looked at.
	maxAgentScan = 512
)

// Reasons of gateway_usage_dropped_total.
const (
	usageDropQueueFull = "queue_full"
	usageDropRejected  = "rejected"
)

// usageEvent is one counted manifest request, as finishRequest hands it
// over: the client prefix stays a netip.Prefix, formatted by the sender.
type usageEvent struct {
	time       time.Time
	account    string
	repository string
	reference  string
	digest     string
	reason     string
	client     netip.Prefix // invalid: not recorded
	agent      string
	outcome    pullKind
}

// usageWire is an event as the protocol writes it. Every field is always
// present.
type usageWire struct {
	Time       string `json:"time"`
	Account    string `json:"account"`
	Repository string `json:"repository"`
	Reference  string `json:"reference"`
	Digest     string `json:"digest"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	Client     string `json:"client"`
	Agent      string `json:"agent"`
}

func (e *usageEvent) wire() usageWire {
	w := usageWire{
		Time:       e.time.UTC().Format("2006-01-02T15:04:05.000Z"),
		Account:    e.account,
		Repository: e.repository,
		Reference:  e.reference,
		Digest:     e.digest,
		Outcome:    e.outcome.String(),
		Agent:      e.agent,
	}
	if e.outcome == kindDenied {
		w.Reason, w.Digest = e.reason, ""
	}
	if e.client.IsValid() {
		w.Client = e.client.String()
	}
	return w
}

// Agent families of the protocol.
const (
	agentDocker     = "docker"
	agentContainerd = "containerd"
	agentHelm       = "helm"
	agentCrane      = "crane"
	agentOras       = "oras"
	agentSkopeo     = "skopeo"
	agentPodman     = "podman"
	agentOther      = "other"
)

// agentPatterns are the protocol's User-Agent substrings (lower case,
// matched without regard to case), first match wins.
var agentPatterns = [...]struct{ sub, family string }{
	{"docker/", agentDocker}, {"docker-client/", agentDocker},
	{"containerd/", agentContainerd},
	{"helm/", agentHelm},
	{"go-containerregistry", agentCrane}, {"crane", agentCrane},
	{"oras", agentOras},
	{"skopeo", agentSkopeo},
	{"podman", agentPodman}, {"libpod", agentPodman},
}

// agentFamily is the client family of a User-Agent.
func agentFamily(ua string) string {
	if len(ua) > maxAgentScan {
		ua = ua[:maxAgentScan]
	}
	for _, p := range agentPatterns {
		if containsFold(ua, p.sub) {
			return p.family
		}
	}
	return agentOther
}

// containsFold reports whether s contains lower (lower-case ASCII),
// ignoring ASCII case, without allocating.
func containsFold(s, lower string) bool {
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// clientPrefix is the prefix a client address is recorded as: /24 for
// IPv4 (IPv4-mapped IPv6 included), /v6bits for IPv6; invalid for what is
// no address (a trusted proxy's X-Forwarded-For entry in a format of its
// own).
func clientPrefix(addr string, v6bits int) netip.Prefix {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := v6bits
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// usageMetrics are the recorder's metrics.
type usageMetrics struct {
	dropped      *prometheus.CounterVec
	droppedFull  prometheus.Counter
	droppedRej   prometheus.Counter
	writeSeconds prometheus.Histogram
	sent         prometheus.Counter
}

// usageRecorder queues events and sends them to the intake in batches.
type usageRecorder struct {
	endpoint string
	header   []string // the Authorization value; never logged
	client   *http.Client
	log      *slog.Logger
	clock    func() time.Time
	max      int // events held at most, waiting and in the sender's hands
	batch    int
	flush    time.Duration
	prefixes bool // client_address: prefix
	v6bits   int
	m        usageMetrics

	mu sync.Mutex
	// queue[head:] wait, oldest first; held is the batch the sender took,
	// older than all of them, retried until answered. While posting, held
	// is the sender's alone.
	queue   []usageEvent
	head    int
	held    []usageEvent
	posting bool
	closed  bool
	// dropsUnlogged counts queue_full drops since their last WARN line.
	dropsUnlogged int
	dropsLogged   time.Time

	// Only the sender's.
	rejectedUnlogged int
	rejectedLogged   time.Time

	wake   chan struct{} // a full batch waits
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context // cancelled when the shutdown flush runs out of time
	cancel context.CancelFunc
	once   sync.Once
}

// usageOptions are what newUsageRecorder takes besides the config.
type usageOptions struct {
	secret    string
	transport http.RoundTripper
	log       *slog.Logger
	clock     func() time.Time
	reg       prometheus.Registerer
}

// newUsageRecorder builds the recorder of cfg and starts its sender; Close
// stops it.
func newUsageRecorder(cfg UsageConfig, o usageOptions) *usageRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	u := &usageRecorder{
		endpoint: cfg.Endpoint,
		header:   []string{"Bearer " + o.secret},
		client: &http.Client{Transport: o.transport, Timeout: usageWriteTimeout,
			// The secret goes to the configured endpoint only.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:      o.log,
		clock:    o.clock,
		max:      cfg.Queue,
		batch:    cfg.Batch,
		flush:    cfg.FlushInterval,
		prefixes: cfg.ClientAddress != usageClientOff,
		v6bits:   cfg.IPv6Prefix,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
	u.m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_usage_dropped_total",
		Help: "Usage events not sent to the intake, by reason: queue_full (usage.queue was full; the oldest waiting event went), rejected (the intake refused the batch with 400, 401 or 413).",
	}, []string{"reason"})
	u.m.droppedFull = u.m.dropped.WithLabelValues(usageDropQueueFull)
	u.m.droppedRej = u.m.dropped.WithLabelValues(usageDropRejected)
	u.m.writeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gateway_usage_write_seconds",
		Help:    "Time of one POST of a usage batch to the intake, until its answer or failure.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	u.m.sent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_usage_events_sent_total",
		Help: "Usage events the intake stored (answered 204).",
	})
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_usage_queue_depth",
		Help: "Usage events held: waiting, and the batch being sent or retried.",
	}, func() float64 { return float64(u.depth()) })
	o.reg.MustRegister(u.m.dropped, u.m.writeSeconds, u.m.sent, depth)
	go u.run()
	return u
}

// readUsageSecret reads usage.secret_file: trimmed, at least
// minUsageSecret bytes, nothing that cannot go into a header. Errors never
// show the content.
func readUsageSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUsageSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxUsageSecretFile {
		return "", fmt.Errorf("%s: larger than %d KiB, not a secret", path, maxUsageSecretFile>>10)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minUsageSecret {
		return "", fmt.Errorf("%s: the secret has %d bytes, at least %d are required", path, len(s), minUsageSecret)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return "", fmt.Errorf("%s: the secret holds spaces or control characters (it is sent in an Authorization header)", path)
		}
	}
	return s, nil
}

// record queues e without waiting. When usage.queue events are held
// already, the oldest one not being sent is dropped (or e, when all are
// being sent) and counted.
func (u *usageRecorder) record(e usageEvent) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	if len(u.queue)-u.head+len(u.held) >= u.max {
		u.dropsUnlogged++
		u.m.droppedFull.Inc()
		switch {
		case !u.posting && len(u.held) > 0:
			u.held[0] = usageEvent{}
			u.held = u.held[1:]
		case len(u.queue) > u.head:
			u.queue[u.head] = usageEvent{}
			u.head++
			u.compactLocked()
		default:
			u.mu.Unlock()
			return
		}
	}
	u.queue = append(u.queue, e)
	full := len(u.queue)-u.head >= u.batch
	u.mu.Unlock()
	if full {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
}

// depth is the number of events held.
func (u *usageRecorder) depth() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.queue) - u.head + len(u.held)
}

// takeLocked moves up to n waiting events into held.
func (u *usageRecorder) takeLocked(n int) {
	n = min(n, len(u.queue)-u.head)
	if n == 0 {
		return
	}
	u.held = make([]usageEvent, n)
	copy(u.held, u.queue[u.head:u.head+n])
	clear(u.queue[u.head : u.head+n])
	u.head += n
	u.compactLocked()
}

// compactLocked moves the waiting events to the front of queue once more
// than half of it is spent, so that appends reuse its array: its length
// stays within twice usage.queue however many events are dropped while the
// sender is stuck. A compaction moves fewer events than were passed since
// the last one, so its cost per event is constant.
func (u *usageRecorder) compactLocked() {
	switch {
	case u.head == len(u.queue):
		u.queue, u.head = u.queue[:0], 0
	case u.head > len(u.queue)/2:
		m := copy(u.queue, u.queue[u.head:])
		clear(u.queue[m:])
		u.queue, u.head = u.queue[:m], 0
	}
}

// run is the sender: a batch goes when batch events wait or every
// flush_interval, and after a failure once its backoff has passed.
func (u *usageRecorder) run() {
	defer close(u.done)
	tick := time.NewTicker(u.flush)
	defer tick.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	var backoff time.Duration
	for {
		fullOnly := false
		select {
		case <-u.stop:
			u.finish()
			return
		case <-u.wake:
			if backoff > 0 {
				continue
			}
			fullOnly = true
		case <-tick.C:
			u.logDrops(false)
			if backoff > 0 {
				continue
			}
		case <-retry.C:
		}
		if u.sendAll(fullOnly) {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, usageMinBackoff), usageMaxBackoff)
		// Jitter, so that gateways restarted together do not retry
		// together.
		retry.Reset(backoff/2 + rand.N(backoff/2+1))
	}
}

// finish sends what is held when Close is called, within
// usageShutdownWait (Close cancels u.ctx then), and logs what is left.
func (u *usageRecorder) finish() {
	backoff := usageMinBackoff
	for u.depth() > 0 && u.ctx.Err() == nil {
		if u.sendAll(false) {
			continue
		}
		select {
		case <-u.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
	u.logDrops(true)
	u.logRejected(0, 0, "", true)
	if n := u.depth(); n > 0 {
		u.log.Warn("usage events not sent at shutdown", slog.Int("events", n), slog.String("endpoint", u.endpoint))
	}
}

// sendAll posts batches while there are any (with fullOnly, while a full
// batch waits). It reports false after a failure that is to be retried,
// the batch still held.
func (u *usageRecorder) sendAll(fullOnly bool) bool {
	for {
		u.mu.Lock()
		if len(u.held) == 0 {
			if fullOnly && len(u.queue)-u.head < u.batch {
				u.mu.Unlock()
				return true
			}
			u.takeLocked(u.batch)
		}
		if len(u.held) == 0 {
			u.mu.Unlock()
			return true
		}
		u.posting = true
		batch := u.held
		u.mu.Unlock()

		body, n := encodeUsage(batch)
		var res postResult
		if n == 0 {
			// One event alone over the body limit: the intake would
			// refuse it with 413.
			res = postResult{outcome: postRejected, status: http.StatusRequestEntityTooLarge, title: "event larger than the intake's body limit"}
			n = 1
		} else {
			res = u.post(body)
		}

		u.mu.Lock()
		u.posting = false
		if res.outcome != postRetry {
			clear(u.held[:n])
			u.held = u.held[n:]
			if len(u.held) == 0 {
				u.held = nil
			}
		}
		held := len(u.held) + len(u.queue) - u.head
		u.mu.Unlock()

		switch res.outcome {
		case postStored:
			u.m.sent.Add(float64(n))
		case postRejected:
			u.m.droppedRej.Add(float64(n))
			u.logRejected(n, res.status, res.title+problemSep(res)+res.detail, false)
		case postRetry:
			u.log.Warn("usage intake unavailable; retrying", slog.String("endpoint", u.endpoint),
				slog.Int("status", res.status), slog.String("error", res.err), slog.Int("held", held))
			return false
		}
	}
}

func problemSep(r postResult) string {
	if r.title != "" && r.detail != "" {
		return ": "
	}
	return ""
}

// encodeUsage is the body of the first n events of batch that fit in
// maxUsageBody (n is 0 when the first alone does not).
func encodeUsage(batch []usageEvent) ([]byte, int) {
	const head, tail = `{"events":[`, `]}`
	buf := bytes.NewBuffer(make([]byte, 0, 64<<10))
	buf.WriteString(head)
	n := 0
	for i := range batch {
		b, err := json.Marshal(batch[i].wire())
		if err != nil {
			break // strings and a time: cannot fail
		}
		extra := len(b) + len(tail)
		if n > 0 {
			extra++
		}
		if buf.Len()+extra > maxUsageBody {
			break
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
		n++
	}
	buf.WriteString(tail)
	return buf.Bytes(), n
}

type postOutcome uint8

const (
	postStored postOutcome = iota
	postRejected
	postRetry
)

type postResult struct {
	outcome       postOutcome
	status        int
	title, detail string
	err           string
}

// post sends one batch and classifies the answer: 2xx stored; 5xx, 408,
// 429 and network errors retried; any other answer (400, 401, 413, a
// redirect, a 404 of a wrong endpoint) rejected, since sending the same
// batch again would get the same answer.
func (u *usageRecorder) post(body []byte) postResult {
	req, err := http.NewRequestWithContext(u.ctx, http.MethodPost, u.endpoint, bytes.NewReader(body))
	if err != nil {
		return postResult{outcome: postRejected, err: err.Error()}
	}
	req.Header["Authorization"] = u.header
	req.Header["Content-Type"] = []string{"application/json"}
	start := time.Now()
	resp, err := u.client.Do(req)
	u.m.writeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return postResult{outcome: postRetry, err: err.Error()}
	}
	defer resp.Body.Close()
	res := postResult{status: resp.StatusCode}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		res.outcome = postStored
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		res.outcome = postRetry
	default:
		res.outcome = postRejected
		res.title, res.detail = readProblem(resp)
	}
	// Drained (bounded) so that the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProblemBody))
	return res
}

// readProblem is the title and detail of an RFC 9457 problem answer, cut
// short; empty for other answers.
func readProblem(resp *http.Response) (title, detail string) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/problem+json" && mt != "application/json" {
		return "", ""
	}
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxProblemBody)).Decode(&p); err != nil {
		return "", ""
	}
	return cut(p.Title, 256), cut(p.Detail, 1024)
}

func cut(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "?")
}

// logDrops writes the WARN line of queue_full drops, at most once per
// usageLogEvery unless now.
func (u *usageRecorder) logDrops(now bool) {
	t := u.clock()
	u.mu.Lock()
	n := u.dropsUnlogged
	if n == 0 || (!now && !u.dropsLogged.IsZero() && t.Sub(u.dropsLogged) < usageLogEvery) {
		u.mu.Unlock()
		return
	}
	u.dropsUnlogged, u.dropsLogged = 0, t
	u.mu.Unlock()
	u.log.Warn("usage events dropped: the queue was full", slog.Int("dropped", n), slog.Int("queue", u.max),
		slog.String("endpoint", u.endpoint))
}

// logRejected counts n events of a refused batch and writes the WARN line
// of refusals (the intake's status and problem), at most once per
// usageLogEvery unless now. Never the secret: it is in no answer.
func (u *usageRecorder) logRejected(n, status int, problem string, now bool) {
	u.rejectedUnlogged += n
	t := u.clock()
	if u.rejectedUnlogged == 0 || (!now && !u.rejectedLogged.IsZero() && t.Sub(u.rejectedLogged) < usageLogEvery) {
		return
	}
	attrs := []slog.Attr{slog.Int("dropped", u.rejectedUnlogged), slog.String("endpoint", u.endpoint)}
	if status != 0 {
		attrs = append(attrs, slog.Int("status", status))
	}
	if problem != "" {
		attrs = append(attrs, slog.String("problem", problem))
	}
	u.rejectedUnlogged, u.rejectedLogged = 0, t
	u.log.LogAttrs(context.Background(), slog.LevelWarn, "usage events dropped: the intake refused them", attrs...)
}

// Close stops taking events and sends what is held, for at most
// usageShutdownWait.
func (u *usageRecorder) Close() {
	u.once.Do(func() {
		u.mu.Lock()
		u.closed = true
		u.mu.Unlock()
		close(u.stop)
		t := time.NewTimer(usageShutdownWait)
		defer t.Stop()
		select {
		case <-u.done:
		case <-t.C:
			u.cancel()
			<-u.done
		}
		u.cancel()
	})
}

// buildUsage starts the usage recorder when usage.endpoint is set. Its
// connection to the intake uses the token service's TLS settings
// (tls.ca_file and the client pair) for https.
func (g *Gateway) buildUsage(context.Context, Options) error {
	cfg := g.cfg.Usage
	if cfg.Endpoint == "" {
		return nil
	}
	secret, err := readUsageSecret(cfg.SecretFile)
	if err != nil {
		return fmt.Errorf("usage.secret_file: %w", err)
	}
	d := &net.Dialer{Timeout: g.cfg.Upstream.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       g.tokenTLS,
		TLSHandshakeTimeout:   g.cfg.Upstream.TLSHandshakeTimeout,
		ResponseHeaderTimeout: usageWriteTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	g.closers = append(g.closers, t.CloseIdleConnections)
	g.usage = newUsageRecorder(cfg, usageOptions{secret: secret, transport: t, log: g.log, clock: g.clock, reg: g.metrics.reg})
	g.closers = append(g.closers, g.usage.Close)
	return nil
}

// recordUsage hands a counted request of kind k to the recorder.
func (g *Gateway) recordUsage(rt *routed, k pullKind) {
	e := usageEvent{
		time:       g.clock(),
		account:    rt.subject,
		repository: rt.Name,
		reference:  rt.Reference,
		digest:     rt.digest,
		reason:     rt.denied,
		client:     rt.client,
		agent:      rt.agent,
		outcome:    k,
	}
	if e.digest == "" && k != kindDenied && strings.Contains(e.reference, ":") {
		// Asked by digest, and the upstream's answer did not name it:
		// what was served is what was asked for.
		e.digest = e.reference
	}
	if e.agent == "" {
		e.agent = agentOther
	}
	g.usage.record(e)
}

// noteUsageClient keeps what the usage event of a manifest request needs
// from the request itself: the client's prefix and agent family. It is
// called once the token is checked (granted or denied), so that requests
// without a valid token cost nothing here.
func (g *Gateway) noteUsageClient(r *http.Request, rt *routed) {
	if g.usage == nil {
		return
	}
	var ua string
	if v := r.Header["User-Agent"]; len(v) > 0 {
		ua = v[0]
	}
	rt.agent = agentFamily(ua)
	if g.usage.prefixes {
		rt.client = clientPrefix(g.clients.Of(r), g.usage.v6bits)
	}
}
