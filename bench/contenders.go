package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/proc"
	"github.com/acme/registry-gateway/bench/procstat"
	"github.com/acme/registry-gateway/bench/report"
)

// The contenders of the workloads and how they are measured side by side.

// contender is one server (or path) a workload measures.
type contender struct {
	name     string
	baseline bool
	// newOp builds the op of worker w in a cell of round r at concurrency c.
	newOp func(r, c int) loadgen.NewOp
	// pids are the processes that serve this contender (besides the
	// upstream fixtures), whose CPU time is read around each cell.
	pids []int
}

// interleave runs every contender at every concurrency level in every
// round, the contenders' order rotating from round to round, so that noise
// of the machine (other processes, thermal limits, GC of the load generator)
// falls on all of them alike.
func (h *harness) interleave(ctx context.Context, workload string, cs []contender, concs []int, rounds int, cell func(c int) loadgen.Cell) ([]*report.Series, error) {
	series := map[string]*report.Series{}
	var order []*report.Series
	for _, c := range concs {
		for _, ct := range cs {
			s := &report.Series{Workload: workload, Contender: ct.name, Baseline: ct.baseline, Concurrency: c}
			series[fmt.Sprint(ct.name, "/", c)] = s
			order = append(order, s)
		}
	}
	for r := range rounds {
		for _, c := range concs {
			for i := range cs {
				ct := cs[(i+r)%len(cs)]
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				fixPID := []int{h.fix.PID()}
				srv0, fix0 := procstat.SumCPU(ct.pids), procstat.SumCPU(fixPID)
				res, err := loadgen.RunCell(ctx, cell(c), ct.newOp(r, c))
				if err == nil && res.Requests > 0 {
					n := time.Duration(res.Requests + res.Errors)
					if len(ct.pids) > 0 {
						res.ServerCPU = (procstat.SumCPU(ct.pids) - srv0) / n
					}
					res.UpstreamCPU = (procstat.SumCPU(fixPID) - fix0) / n
				}
				if err != nil {
					return nil, fmt.Errorf("%s at concurrency %d, round %d: %w", ct.name, c, r+1, err)
				}
				if res.Errors > 0 {
					h.note("%s: %s at concurrency %d, round %d: %d errors (first: %s)", workload, ct.name, c, r+1, res.Errors, res.FirstErr)
				}
				s := series[fmt.Sprint(ct.name, "/", c)]
				s.Rounds = append(s.Rounds, res)
			}
		}
		h.logf("%s: round %d/%d", workload, r+1, rounds)
	}
	for _, s := range order {
		s.Summarize()
	}
	return order, nil
}

// cell is the request-workload cell at concurrency c.
func (h *harness) cell(c int) loadgen.Cell {
	return loadgen.Cell{Concurrency: c, Requests: h.opts.CellRequests, MaxTime: h.opts.CellTime, Warmup: h.opts.Warmup}
}

// writeGatewayConfig writes the configuration of a gateway under test
// into its own directory; cache is its manifest_cache (fixtures.CacheOff or
// fixtures.CacheOn).
func (h *harness) writeGatewayConfig(name, cache string) (cfgPath, addr string, err error) {
	if addr, err = proc.FreeAddr(); err != nil {
		return "", "", err
	}
	g := fixtures.Gateway{Listen: addr, PublicKey: h.keys["ES256"].Public, Upstream: h.fix.Addrs.Registry, ManifestCache: cache}
	cfgPath, err = g.Write(filepath.Join(h.tmp, name))
	return cfgPath, addr, err
}

// startGateway starts bin/gateway with manifest_cache cache; nil when it
// was not built.
func (h *harness) startGateway(ctx context.Context, name, cache string) (*proc.Proc, string, error) {
	bin, ok := h.bins["gateway"]
	if !ok {
		return nil, "", nil
	}
	cfgPath, addr, err := h.writeGatewayConfig(name, cache)
	if err != nil {
		return nil, "", err
	}
	p, err := h.start(ctx, name, bin, []string{"-config", cfgPath}, "http://"+addr+"/readyz", 200)
	if err != nil {
		return nil, "", err
	}
	return p, addr, nil
}

// tokenServer is one token service under test.
type tokenServer struct {
	alg, backend string
	conf         tokenConf
	addr         string
	proc         *proc.Proc
}

// tokenConf is what a token server under test logs and signs with beyond
// the bare configuration (log_level warn, no signing_cert).
type tokenConf struct {
	// name is added to the server's name; empty for the bare
	// configuration.
	name string
	// info: log_level info, as shipped: the audit line and the access line
	// of every token go to the log (the process's stderr, a file).
	info bool
	// x5c: signing_cert set, as shipped: every token carries the
	// certificate.
	x5c bool
}

// Token server configurations measured side by side: the cost of each
// shipped setting alone, then both, as deploy/tokenserver.yaml ships.
var (
	tokenBare    = tokenConf{}
	tokenX5C     = tokenConf{name: "x5c", x5c: true}
	tokenInfo    = tokenConf{name: "info", info: true}
	tokenShipped = tokenConf{name: "shipped", info: true, x5c: true}
)

func tokenServerName(alg, backend string, conf tokenConf) string {
	n := "tokenserver-" + strings.ToLower(alg) + "-" + backend
	if conf.name != "" {
		n += "-" + conf.name
	}
	return n
}

// writeTokenConfig writes the configuration of a token service under test
// (and, for the file and sql backends, its accounts).
func (h *harness) writeTokenConfig(alg, backend string, conf tokenConf) (cfgPath, addr string, err error) {
	if addr, err = proc.FreeAddr(); err != nil {
		return "", "", err
	}
	name := tokenServerName(alg, backend, conf)
	ts := fixtures.TokenServer{Listen: addr, SigningKey: h.keys[alg].Private, LogLevel: "warn"}
	if conf.info {
		ts.LogLevel = "info"
	}
	if conf.x5c {
		ts.SigningCert = h.keys[alg].Cert
	}
	users := make([]string, h.opts.Accounts)
	for i := range users {
		users[i] = accountName(name, i)
	}
	switch backend {
	case "file":
		ts.AccountsFile = filepath.Join(h.tmp, name+"-accounts.yaml")
		if err := fixtures.WriteAccounts(ts.AccountsFile, users); err != nil {
			return "", "", err
		}
	case "sql", "sqlcold":
		ts.AccountsDB = filepath.Join(h.tmp, name+"-accounts.db")
		if err := fixtures.WriteAccountsDB(context.Background(), ts.AccountsDB, users); err != nil {
			return "", "", err
		}
		if backend == "sqlcold" {
			// Every request misses the cache: one indexed query each.
			ts.CacheTTL = "1ns"
		}
	case "http":
		ts.LicenceAPI = h.fix.Addrs.License
	default:
		return "", "", fmt.Errorf("unknown licence backend %q", backend)
	}
	cfgPath = filepath.Join(h.tmp, name+".yaml")
	return cfgPath, addr, ts.Write(cfgPath)
}

// startTokenServer starts the bare signer or bin/tokenserver; nil when the
// latter was not built.
func (h *harness) startTokenServer(ctx context.Context, alg, backend string, conf tokenConf) (*tokenServer, error) {
	ts := &tokenServer{alg: alg, backend: backend, conf: conf}
	if backend == "bare" {
		addr, err := proc.FreeAddr()
		if err != nil {
			return nil, err
		}
		ts.addr = addr
		ts.proc, err = h.start(ctx, "signer-"+strings.ToLower(alg), h.opts.Self, []string{"signer", "-listen", addr, "-key", h.keys[alg].Private},
			"http://"+addr+"/token", 401)
		return ts, err
	}
	bin, ok := h.bins["tokenserver"]
	if !ok {
		return nil, nil
	}
	cfgPath, addr, err := h.writeTokenConfig(alg, backend, conf)
	if err != nil {
		return nil, err
	}
	ts.addr = addr
	ts.proc, err = h.start(ctx, ts.name(), bin, []string{"-config", cfgPath}, "http://"+addr+"/healthz", 200)
	return ts, err
}

func (ts *tokenServer) name() string { return tokenServerName(ts.alg, ts.backend, ts.conf) }
