package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/proc"
	"github.com/acme/registry-gateway/bench/report"
	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

// usageDrainWait bounds the wait for the recording gateway's queue to
// empty after the load.
const usageDrainWait = time.Minute

// maxMetricsBody bounds what is read of a /metrics page.
const maxMetricsBody = 4 << 20

// runUsage is issue 19's load test of the usage path: the same gateway
// binary with the usage recorder off and on, side by side, under a paced
// manifest load, the token service storing the events in PostgreSQL; then
// every pull and check the load generator counted must be a row.
func (h *harness) runUsage(ctx context.Context) error {
	gwBin, ok1 := h.bins["gateway"]
	tsBin, ok2 := h.bins["tokenserver"]
	if !ok1 || !ok2 {
		return nil // noted when the build failed
	}
	pg, err := accountstest.StartServer()
	if errors.Is(err, accountstest.ErrNoPostgres) {
		h.note("usage: skipped: %v (apt-get install postgresql)", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer pg.Close()
	dsn, err := pg.CreateDatabase(ctx)
	if err != nil {
		return err
	}
	dbVersion, err := postgresVersion(ctx, dsn)
	if err != nil {
		return err
	}
	users := make([]string, h.opts.Accounts)
	for i := range users {
		users[i] = accountName("usage", i)
	}
	acfg := &accounts.Config{Driver: accounts.DriverPostgres, DSN: dsn}
	acfg.SetDefaults()
	if err := fixtures.MigrateAccounts(ctx, acfg, users); err != nil {
		return err
	}

	dir := filepath.Join(h.tmp, "usage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	secretFile := filepath.Join(dir, "usage.secret")
	if err := os.WriteFile(secretFile, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return err
	}
	tsAddr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	tsCfg := filepath.Join(dir, "tokenserver.yaml")
	if err := (fixtures.TokenServer{Listen: tsAddr, SigningKey: h.keys["ES256"].Private, LogLevel: "info",
		AccountsPostgres: dsn, UsageSecretFile: secretFile}).Write(tsCfg); err != nil {
		return err
	}
	ts, err := h.start(ctx, "tokenserver-usage", tsBin, []string{"-config", tsCfg}, "http://"+tsAddr+"/healthz", 200)
	if err != nil {
		return err
	}
	defer h.stop(ts)

	type gateway struct {
		name, addr, metrics string
		pids                []int
	}
	var gws []gateway
	for _, g := range []struct {
		name, proc string
		record     bool
	}{{report.ContenderUsageOff, "gateway-usage-off", false}, {report.ContenderUsageOn, "gateway-usage-on", true}} {
		addr, err := proc.FreeAddr()
		if err != nil {
			return err
		}
		metrics, err := proc.FreeAddr()
		if err != nil {
			return err
		}
		cfg := fixtures.Gateway{Listen: addr, PublicKey: h.keys["ES256"].Public, Upstream: h.fix.Addrs.Registry, Shipped: true,
			TokenEndpoint: tsAddr, MetricsListen: metrics}
		if g.record {
			cfg.UsageEndpoint, cfg.UsageSecretFile = tsAddr, secretFile
		}
		cfgPath, err := cfg.Write(filepath.Join(dir, g.proc))
		if err != nil {
			return err
		}
		p, err := h.start(ctx, g.proc, gwBin, []string{"-config", cfgPath}, "http://"+addr+"/readyz", 200)
		if err != nil {
			return err
		}
		defer h.stop(p)
		pids := []int{p.PID()}
		if g.record {
			pids = append(pids, ts.PID())
		}
		gws = append(gws, gateway{name: g.name, addr: addr, metrics: metrics, pids: pids})
	}

	// Each worker pulls as one of the accounts, with a token the gateway
	// accepts (signed by the token service's key) minted up front: the load
	// is the manifest path, not token issuance.
	bearers := make([]string, len(users))
	for i, u := range users {
		tok, err := fixtures.PullToken(h.keys["ES256"].Key, u, fixtures.Repo)
		if err != nil {
			return err
		}
		bearers[i] = "Authorization: Bearer " + tok
	}
	fx := h.fix.Addrs
	accept := "Accept: " + fx.ManifestType
	headPath := "/v2/" + fixtures.Repo + "/manifests/" + fixtures.Tag
	getPath := "/v2/" + fixtures.Repo + "/manifests/" + fx.ManifestDigest
	var pulls, checks atomic.Int64 // of the recording gateway, warm-up included
	var cs []contender
	for _, g := range gws {
		head := make([][]byte, len(bearers))
		get := make([][]byte, len(bearers))
		for i, b := range bearers {
			head[i] = loadgen.RenderHEAD(g.addr, headPath, accept, b)
			get[i] = loadgen.RenderGET(g.addr, getPath, accept, b)
		}
		counted := g.name == report.ContenderUsageOn
		cs = append(cs, contender{name: g.name, baseline: !counted, pids: g.pids, newOp: func(int, int) loadgen.NewOp {
			return usageOp(g.addr, head, get, int64(fx.ManifestSize), func(isHead bool) {
				switch {
				case !counted:
				case isHead:
					checks.Add(1)
				default:
					pulls.Add(1)
				}
			})
		}})
	}
	cellTime := max(h.opts.UsageTime/time.Duration(h.opts.Rounds), 100*time.Millisecond)
	cell := func(c int) loadgen.Cell {
		return loadgen.Cell{Concurrency: c, Requests: 1 << 30, MaxTime: cellTime, Warmup: h.opts.Warmup, Rate: float64(h.opts.UsageRate)}
	}
	series, err := h.interleave(ctx, WorkloadUsage, cs, []int{h.opts.UsageConcurrency}, h.opts.Rounds, cell)
	h.report.Usage = series
	if err != nil {
		return err
	}

	on := gws[1]
	uc := &report.UsageCount{Database: dbVersion, Rate: float64(h.opts.UsageRate), Concurrency: h.opts.UsageConcurrency, CellTime: cellTime,
		Pulls: pulls.Load(), Checks: checks.Load()}
	t := time.Now()
	for {
		m, err := scrapeMetrics(ctx, on.metrics)
		if err != nil {
			return err
		}
		if m["gateway_usage_queue_depth"] == 0 {
			uc.Drained = true
			uc.Dropped, uc.Sent = m["gateway_usage_dropped_total"], m["gateway_usage_events_sent_total"]
			break
		}
		if time.Since(t) > usageDrainWait {
			uc.Dropped, uc.Sent = m["gateway_usage_dropped_total"], m["gateway_usage_events_sent_total"]
			h.note("usage: the recording gateway's queue still held %.0f events after %s", m["gateway_usage_queue_depth"], usageDrainWait)
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	uc.Drain = time.Since(t)
	if uc.Rows, err = countUsageRows(ctx, dsn); err != nil {
		return err
	}
	h.report.UsageCount = uc
	h.logf("usage: %d pulls + %d checks counted, %d rows, %.0f dropped, drained in %s", uc.Pulls, uc.Checks, uc.Rows, uc.Dropped, uc.Drain.Round(10*time.Millisecond))
	return nil
}

// usageOp alternates a HEAD of the manifest by tag (what a docker host
// holding the image sends, a check) and a GET by digest (a pull), each as
// one of the accounts; count is called for every answer 200.
func usageOp(addr string, head, get [][]byte, size int64, count func(head bool)) loadgen.NewOp {
	return func(w int) (loadgen.Op, func(), error) {
		conn, err := loadgen.NewConn(addr, loadgen.RequestTimeout)
		if err != nil {
			return nil, nil, err
		}
		op := func(ctx context.Context, i int) (int64, error) {
			isHead := i%2 == 0
			raw, want := get[(w+i/2)%len(get)], size
			if isHead {
				raw, want = head[(w+i/2)%len(head)], 0
			}
			resp, err := conn.Do(ctx, raw, isHead, nil)
			if err != nil {
				return 0, err
			}
			if err := loadgen.ExpectStatus(resp, http.StatusOK); err != nil {
				return 0, err
			}
			count(isHead)
			if resp.Bytes != want {
				return 0, fmt.Errorf("body of %d bytes, want %d", resp.Bytes, want)
			}
			return resp.Bytes, nil
		}
		return op, conn.Close, nil
	}
}

// scrapeMetrics reads the unlabelled values and the sums over the labels
// of every metric on the /metrics page at addr.
func scrapeMetrics(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxMetricsBody))
}

// parseMetrics sums the samples of each metric of a Prometheus text page
// over their labels.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		m[strings.TrimSpace(name)] += v
	}
	return m, sc.Err()
}

// postgresVersion names the server, for the report.
func postgresVersion(ctx context.Context, dsn string) (string, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", err
	}
	v, _, _ = strings.Cut(v, " ")
	return "PostgreSQL " + v, nil
}

// countUsageRows counts the stored usage events.
func countUsageRows(ctx context.Context, dsn string) (int64, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM usage_events").Scan(&n)
	return n, err
}
