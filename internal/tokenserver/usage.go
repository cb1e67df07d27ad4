package tokenserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/license/sqlbackend"
)

// The usage intake: the gateway's batches of manifest events, stored in
// the account database (docs/accounts.md, "Usage").
const (
	// UsagePath is where the gateway posts its batches.
	UsagePath = "/internal/v1/usage"
	// DefaultUsageRetention keeps raw events 90 days.
	DefaultUsageRetention = 90 * 24 * time.Hour
	// DefaultUsageRollupRetention keeps the daily counts two years.
	DefaultUsageRollupRetention = 2 * 365 * 24 * time.Hour
	// maxUsageBody bounds a batch: 1000 events of a few hundred bytes.
	maxUsageBody = 1 << 20
	// minUsageSecret is the shortest shared secret accepted, in bytes.
	minUsageSecret = 32
	// usagePruneEvery is how often the retention job runs (and once at
	// start).
	usagePruneEvery = time.Hour
	// usageWriteTimeout bounds one batch's transaction.
	usageWriteTimeout = 10 * time.Second
)

// UsageConfig is the section usage: the intake of the gateway's usage
// events, on the service's listener.
type UsageConfig struct {
	// SecretFile holds the secret the gateway presents as a Bearer token
	// (its usage.secret_file); set, it enables the intake. At least 32
	// bytes once trimmed. Needs licenses.sql.
	SecretFile string `yaml:"secret_file"`
	// Retention is how long raw events are kept; default 90 days.
	Retention time.Duration `yaml:"retention"`
	// RollupRetention is how long the daily counts are kept; default two
	// years.
	RollupRetention time.Duration `yaml:"rollup_retention"`
}

func (u *UsageConfig) setDefaults() {
	if u.Retention == 0 {
		u.Retention = DefaultUsageRetention
	}
	if u.RollupRetention == 0 {
		u.RollupRetention = DefaultUsageRollupRetention
	}
}

// problems checks the section; hasSQL: licenses.sql is configured.
func (u *UsageConfig) problems(hasSQL bool) []error {
	var errs []error
	if u.SecretFile != "" && !hasSQL {
		errs = append(errs, errors.New("usage.secret_file: usage is stored in the account database: configure licenses.sql"))
	}
	if u.Retention < 0 || u.RollupRetention < 0 {
		errs = append(errs, errors.New("usage: retention and rollup_retention must not be negative"))
	}
	if u.Retention > 0 && u.Retention < 24*time.Hour {
		errs = append(errs, fmt.Errorf("usage.retention: %v is under a day", u.Retention))
	}
	if u.RollupRetention > 0 && u.Retention > 0 && u.RollupRetention < u.Retention {
		errs = append(errs, fmt.Errorf("usage.rollup_retention: %v is shorter than usage.retention %v", u.RollupRetention, u.Retention))
	}
	return errs
}

// usageSQL is the licenses.sql section the usage store lives in; nil when
// another backend is configured.
func (c *Config) usageSQL() *accounts.Config {
	if sql, ok := c.Licenses.Backends["sql"].(*sqlbackend.Config); ok {
		return &sql.Config
	}
	return nil
}

// loadUsageSecret reads the shared secret of the intake.
func loadUsageSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := bytes.TrimSpace(data)
	if len(secret) < minUsageSecret {
		return nil, fmt.Errorf("%s: %d bytes, at least %d needed (e.g. openssl rand -hex 32)", path, len(secret), minUsageSecret)
	}
	return secret, nil
}

// usageIntake stores the gateway's batches and prunes what is past
// retention.
type usageIntake struct {
	db     *accounts.DB
	secret [sha256.Size]byte // the secret's hash: compared in constant time at one length
	cfg    UsageConfig
	now    func() time.Time
	log    *slog.Logger

	stored  prometheus.Counter
	batches map[string]prometheus.Counter
}

// Outcomes of tokenserver_usage_batches_total.
const (
	usageStored       = "stored"
	usageBadRequest   = "bad_request"
	usageUnauthorized = "unauthorized"
	usageTooLarge     = "too_large"
	usageUnavailable  = "unavailable"
)

// registerUsageMetrics adds the intake's metrics to reg, every outcome at
// 0 from the start.
func registerUsageMetrics(reg prometheus.Registerer) (prometheus.Counter, map[string]prometheus.Counter) {
	stored := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenserver_usage_events_stored_total",
		Help: "Usage events from the gateway stored in the account database.",
	})
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenserver_usage_batches_total",
		Help: "Usage batches from the gateway by outcome (stored, bad_request, unauthorized, too_large, unavailable).",
	}, []string{"outcome"})
	by := map[string]prometheus.Counter{}
	for _, o := range []string{usageStored, usageBadRequest, usageUnauthorized, usageTooLarge, usageUnavailable} {
		by[o] = vec.WithLabelValues(o)
	}
	reg.MustRegister(stored, vec)
	return stored, by
}

// openUsage sets up the intake when usage.secret_file is set: the secret
// and a connection pool of its own to the account database, so that a
// burst of batches never queues the logins' look-ups.
func (s *Server) openUsage(ctx context.Context) error {
	stored, batches := registerUsageMetrics(s.metrics.reg)
	if s.cfg.Usage.SecretFile == "" || s.cfg.usageSQL() == nil {
		return nil
	}
	secret, err := loadUsageSecret(s.cfg.Usage.SecretFile)
	if err != nil {
		return fmt.Errorf("usage.secret_file: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := accounts.Open(ctx, s.cfg.usageSQL(), accounts.Options{Clock: s.now})
	if err != nil {
		return fmt.Errorf("usage: %w", err)
	}
	if err := db.CheckSchema(ctx); err != nil {
		db.Close()
		return fmt.Errorf("usage: %w", err)
	}
	s.usage = &usageIntake{
		db: db, secret: sha256.Sum256(secret), cfg: s.cfg.Usage, now: s.now, log: s.log,
		stored: stored, batches: batches,
	}
	return nil
}

// withUsage routes UsagePath to the intake, with the access log and panic
// recovery of the service, and everything else to next; without an
// intake, next alone (UsagePath is a 404 there).
func (s *Server) withUsage(next http.Handler) http.Handler {
	if s.usage == nil {
		return next
	}
	intake := httpx.Chain(s.usage, httpx.AccessLog(s.log), httpx.Recover(s.errs))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == UsagePath {
			intake.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// closeUsage releases the intake's database connections.
func (s *Server) closeUsage() {
	if s.usage == nil {
		return
	}
	if err := s.usage.db.Close(); err != nil {
		s.log.Warn("closing the usage store's account database", slog.Any("error", err))
	}
}

// problem is an RFC 9457 problem details document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Field names the bad field, events[i].name, for a 400.
	Field string `json:"field,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, field, detail string) {
	b, _ := json.Marshal(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Field: field})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// usageWireEvent is an event as the gateway sends it: the channel is not
// part of the protocol (the store derives it).
type usageWireEvent struct {
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

// ServeHTTP is POST UsagePath: authenticated, bounded, strict, stored in
// one transaction.
func (u *usageIntake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rec := httpx.RecordOf(r.Context()); rec != nil {
		rec.Msg = "usage batch"
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeProblem(w, http.StatusMethodNotAllowed, "", "POST a batch of usage events")
		return
	}
	if !u.authorized(r) {
		u.batches[usageUnauthorized].Inc()
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeProblem(w, http.StatusUnauthorized, "", "the usage secret (Authorization: Bearer) is missing or wrong")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		u.batches[usageBadRequest].Inc()
		writeProblem(w, http.StatusUnsupportedMediaType, "", "Content-Type must be application/json")
		return
	}
	if r.ContentLength > maxUsageBody {
		u.batches[usageTooLarge].Inc()
		writeProblem(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("a batch is at most %d bytes", maxUsageBody))
		return
	}
	events, field, err := decodeUsage(http.MaxBytesReader(w, r.Body, maxUsageBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			u.batches[usageTooLarge].Inc()
			writeProblem(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("a batch is at most %d bytes", maxUsageBody))
			return
		}
		u.batches[usageBadRequest].Inc()
		writeProblem(w, http.StatusBadRequest, field, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), usageWriteTimeout)
	defer cancel()
	if err := u.db.RecordUsage(ctx, events); err != nil {
		if fe, ok := errors.AsType[*accounts.UsageFieldError](err); ok {
			u.batches[usageBadRequest].Inc()
			writeProblem(w, http.StatusBadRequest, fmt.Sprintf("events[%d].%s", fe.Index, fe.Field), err.Error())
			return
		}
		if errors.Is(err, accounts.ErrInvalid) {
			u.batches[usageBadRequest].Inc()
			writeProblem(w, http.StatusBadRequest, "events", err.Error())
			return
		}
		u.batches[usageUnavailable].Inc()
		u.log.Warn("usage batch not stored", slog.Int("events", len(events)), slog.Any("error", err))
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusServiceUnavailable, "", "the account database is unavailable: send the batch again later")
		return
	}
	u.batches[usageStored].Inc()
	u.stored.Add(float64(len(events)))
	w.WriteHeader(http.StatusNoContent)
}

// authorized compares the Bearer secret with ours in constant time.
func (u *usageIntake) authorized(r *http.Request) bool {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	return subtle.ConstantTimeCompare(got[:], u.secret[:]) == 1
}

// decodeUsage reads a batch strictly: one JSON object, no unknown field,
// at most accounts.MaxUsageBatch events. A bad event is named with its
// field.
func decodeUsage(body io.Reader) (events []accounts.UsageEvent, field string, err error) {
	var batch struct {
		Events *[]json.RawMessage `json:"events"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("not a usage batch: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, "", err
		}
		return nil, "", errors.New("not a usage batch: data after the JSON object")
	}
	if batch.Events == nil {
		return nil, "events", errors.New("events: required")
	}
	if n := len(*batch.Events); n > accounts.MaxUsageBatch {
		return nil, "events", fmt.Errorf("events: %d events, at most %d a batch", n, accounts.MaxUsageBatch)
	}
	events = make([]accounts.UsageEvent, len(*batch.Events))
	for i, raw := range *batch.Events {
		var e usageWireEvent
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			f := fmt.Sprintf("events[%d]", i)
			if ue, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && ue.Field != "" {
				f += "." + ue.Field
			} else if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				f += "." + strings.Trim(name, `"`)
			}
			return nil, f, fmt.Errorf("%s: %v", f, err)
		}
		t, err := time.Parse(time.RFC3339Nano, e.Time)
		if err != nil {
			f := fmt.Sprintf("events[%d].time", i)
			return nil, f, fmt.Errorf("%s: not an RFC 3339 time", f)
		}
		events[i] = accounts.UsageEvent{
			Time: t.UTC(), Account: e.Account, Repository: e.Repository, Reference: e.Reference, Digest: e.Digest,
			Outcome: e.Outcome, Reason: e.Reason, Client: e.Client, Agent: e.Agent,
		}
	}
	return events, "", nil
}

// runRetention prunes the usage store at once and then every
// usagePruneEvery until ctx ends. Replicas each run it; a DELETE finds
// only what another has not removed yet.
func (u *usageIntake) runRetention(ctx context.Context) {
	t := time.NewTicker(usagePruneEvery)
	defer t.Stop()
	for {
		u.prune(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (u *usageIntake) prune(ctx context.Context) {
	now := u.now()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	events, rollups, err := u.db.PruneUsage(pctx, now.Add(-u.cfg.Retention), now.Add(-u.cfg.RollupRetention))
	if err != nil {
		if ctx.Err() == nil {
			u.log.Warn("usage retention: pruning failed; retried within the hour", slog.Any("error", err))
		}
		return
	}
	if events > 0 || rollups > 0 {
		u.log.Info("usage retention: pruned", slog.Int64("events", events), slog.Int64("daily_counts", rollups),
			slog.Duration("retention", u.cfg.Retention), slog.Duration("rollup_retention", u.cfg.RollupRetention))
	}
}
