package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/pull"
	"github.com/acme/registry-gateway/bench/report"
	"github.com/acme/registry-gateway/internal/license"
)

// tokenPath is the path and query of a token request for pull on the
// fixtures' repository, as docker asks.
func tokenPath(user string) string {
	return pull.TokenPath(user, fixtures.Repo, fixtures.Service)
}

// tokenRequest renders a token request of user with its API token as
// the Basic password.
func tokenRequest(addr, user, apiToken string) []byte {
	return loadgen.RenderGET(addr, tokenPath(user), "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+apiToken)))
}

// account names: distinct per server, so that the licence API's per-token
// counts are per server cache.
func accountName(server string, i int) string {
	return fmt.Sprintf("%s-user%03d@bench.example", server, i)
}

func (h *harness) runToken(ctx context.Context) error {
	var servers []*tokenServer
	defer func() {
		for _, ts := range servers {
			h.stop(ts.proc)
		}
	}()
	var cs []contender
	lic := &report.LicenceReport{CacheTTL: license.DefaultTTL}
	type warmSet struct {
		ts    *tokenServer
		start time.Time
		base  fixtures.LicenceStats
	}
	var warm []warmSet
	type server struct {
		alg, backend string
		conf         tokenConf
	}
	var list []server
	for _, alg := range []string{"ES256", "RS256"} {
		for _, backend := range []string{"bare", "file", "sql", "sqlcold", "http"} {
			if strings.HasPrefix(backend, "sql") && alg != "ES256" {
				continue // the backend costs the same whatever signs
			}
			list = append(list, server{alg, backend, tokenBare})
			if alg == "ES256" && backend == "file" {
				// The shipped configuration, and each of its settings alone.
				list = append(list, server{alg, backend, tokenX5C}, server{alg, backend, tokenInfo}, server{alg, backend, tokenShipped})
			}
		}
	}
	for _, sv := range list {
		alg, backend := sv.alg, sv.backend
		ts, err := h.startTokenServer(ctx, alg, backend, sv.conf)
		if err != nil {
			return err
		}
		if ts == nil {
			continue
		}
		servers = append(servers, ts)
		addr, name := ts.addr, ts.name()
		warmReqs := make([][]byte, h.opts.Accounts)
		for i := range warmReqs {
			u := accountName(name, i)
			warmReqs[i] = tokenRequest(addr, u, fixtures.APIToken(u))
		}
		warmOp := func(int, int) loadgen.NewOp {
			return loadgen.VaryingOp(addr, func(w, i int) []byte { return warmReqs[(w*7+i)%len(warmReqs)] }, 200, -1)
		}
		switch backend {
		case "bare":
			cs = append(cs, contender{name: alg + " bare", baseline: true, pids: []int{ts.proc.PID()}, newOp: warmOp})
		case "file":
			cs = append(cs, contender{name: strings.TrimSpace(alg + " file " + sv.conf.name), pids: []int{ts.proc.PID()}, newOp: warmOp})
		case "sql":
			cs = append(cs, contender{name: alg + " sql warm", pids: []int{ts.proc.PID()}, newOp: warmOp})
		case "sqlcold":
			cs = append(cs, contender{name: alg + " sql cold", pids: []int{ts.proc.PID()}, newOp: warmOp})
		case "http":
			if alg == "ES256" {
				herd, err := h.licenceHerd(ctx, ts)
				if err != nil {
					return err
				}
				lic.Herd = herd
			}
			base, err := h.fix.LicenceStats(ctx)
			if err != nil {
				return err
			}
			ws := warmSet{ts: ts, start: time.Now(), base: base}
			// Every account asked once: the cache is warm.
			if _, err := loadgen.RunCell(ctx, loadgen.Cell{Concurrency: 8, Requests: len(warmReqs), MaxTime: time.Minute},
				loadgen.VaryingOp(addr, func(w, i int) []byte { return warmReqs[(w+8*i)%len(warmReqs)] }, 200, -1)); err != nil {
				return fmt.Errorf("warming %s: %w", name, err)
			}
			warm = append(warm, ws)
			cs = append(cs, contender{name: alg + " http warm", pids: []int{ts.proc.PID()}, newOp: warmOp})
			cs = append(cs, contender{name: alg + " http cold", pids: []int{ts.proc.PID()}, newOp: func(r, c int) loadgen.NewOp {
				return loadgen.VaryingOp(addr, func(w, i int) []byte {
					u := fmt.Sprintf("%s-cold-r%d-c%d-w%d-%d@bench.example", name, r, c, w, i)
					return tokenRequest(addr, u, fixtures.APIToken(u))
				}, 200, -1)
			}})
		}
	}
	series, err := h.interleave(ctx, WorkloadToken, cs, h.opts.Concurrency, h.opts.Rounds, h.cell)
	if err != nil {
		return err
	}
	for _, s := range series {
		s.Group, _, _ = strings.Cut(s.Contender, " ")
	}
	h.report.Token = series

	stats, err := h.fix.LicenceStats(ctx)
	if err != nil {
		return err
	}
	for _, ws := range warm {
		name := ws.ts.name()
		w := report.LicenceWarm{Server: name, Accounts: h.opts.Accounts, Elapsed: time.Since(ws.start)}
		for i := range h.opts.Accounts {
			tok := fixtures.APIToken(accountName(name, i))
			n := stats.PerToken[tok] - ws.base.PerToken[tok]
			w.Calls += n
			w.MaxPerAcct = max(w.MaxPerAcct, n)
		}
		w.AllowedPerA = int64(math.Ceil(float64(w.Elapsed) / float64(lic.CacheTTL)))
		for _, s := range series {
			if s.Contender == ws.ts.alg+" http warm" {
				for _, r := range s.Rounds {
					w.Requests += int64(r.Requests + r.Errors)
				}
				w.Requests += int64(s.Concurrency * h.opts.Warmup * len(s.Rounds))
			}
		}
		lic.Warm = append(lic.Warm, w)
	}
	for tok, n := range stats.PerToken {
		if strings.Contains(tok, "-cold-") {
			lic.ColdCalls += n
		}
	}
	for _, s := range series {
		if strings.HasSuffix(s.Contender, "http cold") {
			for _, r := range s.Rounds {
				lic.ColdRequests += int64(r.Requests + r.Errors)
			}
			lic.ColdRequests += int64(s.Concurrency * h.opts.Warmup * len(s.Rounds))
		}
	}
	h.report.Licence = lic
	return nil
}

// licenceHerd asks a cold cache for a few accounts from many workers at
// once: the cache must collapse the look-ups into one call per account.
func (h *harness) licenceHerd(ctx context.Context, ts *tokenServer) (*report.LicenceHerd, error) {
	const accounts, conc = 16, 64
	reqs := make([][]byte, accounts)
	for i := range reqs {
		u := fmt.Sprintf("%s-herd%02d@bench.example", ts.name(), i)
		reqs[i] = tokenRequest(ts.addr, u, fixtures.APIToken(u))
	}
	res, err := loadgen.RunCell(ctx, loadgen.Cell{Concurrency: conc, Requests: conc * 4, MaxTime: time.Minute},
		loadgen.VaryingOp(ts.addr, func(w, i int) []byte { return reqs[(w+i)%accounts] }, 200, -1))
	if err != nil {
		return nil, err
	}
	stats, err := h.fix.LicenceStats(ctx)
	if err != nil {
		return nil, err
	}
	hd := &report.LicenceHerd{Accounts: accounts, Concurrency: conc, Requests: res.Requests}
	for tok, n := range stats.PerToken {
		if strings.Contains(tok, ts.name()+"-herd") {
			hd.Calls += n
			hd.MaxPerAcct = max(hd.MaxPerAcct, n)
		}
	}
	return hd, nil
}
