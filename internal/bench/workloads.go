package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license"
)

// cell is the request-workload cell at concurrency c.
func (h *harness) cell(c int) Cell {
	return Cell{Concurrency: c, Requests: h.opts.CellRequests, MaxTime: h.opts.CellTime, Warmup: h.opts.Warmup}
}

// requestTimeout bounds one request of the request workloads.
const requestTimeout = 30 * time.Second

// fixedOp sends raw again and again, expecting status want and, when
// wantBytes >= 0, a body of that size.
func fixedOp(addr string, raw []byte, want int, wantBytes int64) NewOp {
	return varyingOp(addr, func(int, int) []byte { return raw }, want, wantBytes)
}

// varyingOp sends render(w, i) as request i of worker w.
func varyingOp(addr string, render func(w, i int) []byte, want int, wantBytes int64) NewOp {
	return func(w int) (Op, func(), error) {
		conn, err := NewConn(addr, requestTimeout)
		if err != nil {
			return nil, nil, err
		}
		op := func(ctx context.Context, i int) (int64, error) {
			resp, err := conn.Do(ctx, render(w, i), false, nil)
			if err != nil {
				return 0, err
			}
			if err := expectStatus(resp, want); err != nil {
				return 0, err
			}
			if wantBytes >= 0 && resp.Bytes != wantBytes {
				return 0, fmt.Errorf("body of %d bytes, want %d", resp.Bytes, wantBytes)
			}
			return resp.Bytes, nil
		}
		return op, conn.Close, nil
	}
}

// upstreamBasic is the credential the gateway and nginx send upstream. The
// upstream registry is open (bcrypt checks of an htpasswd file on every
// request would dominate every number), so it is sent but not checked.
const upstreamUser, upstreamPassword = "AWS", "bench-upstream-password"

func upstreamBasic() string {
	return base64.StdEncoding.EncodeToString([]byte(upstreamUser + ":" + upstreamPassword))
}

// Manifest cache settings (the YAML value of manifest_cache) of the
// gateways under test. Every gateway runs with the cache off except the
// gateway+cache contender, so that "gateway" keeps meaning the pass-through
// hop, every request upstream.
const (
	cacheOff = "{disabled: true}"
	// cacheTagTTL lets the tag workload hit too: one upstream GET per
	// 10 s, as a fleet pulling the same tag would see.
	cacheTagTTL = "10s"
	cacheOn     = "{tag_ttl: " + cacheTagTTL + "}"
)

// writeGatewayConfig writes the configuration of a gateway under test;
// cache is its manifest_cache (cacheOff or cacheOn).
func (h *harness) writeGatewayConfig(name, cache string) (cfgPath, addr string, err error) {
	if addr, err = freeAddr(); err != nil {
		return "", "", err
	}
	dir := filepath.Join(h.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	pw := filepath.Join(dir, "upstream-password")
	if err := os.WriteFile(pw, []byte(upstreamPassword+"\n"), 0o600); err != nil {
		return "", "", err
	}
	conf := fmt.Sprintf(`# written by the benchmark harness
listen: %s
realm: http://localhost:%s/token
service: %s
issuer: %s
keys:
  public_keys: [%s]
access_log: false
manifest_cache: %s
upstream:
  url: http://%s
  proxy_blobs: true
  static:
    username: %s
    password_file: %s
`, addr, strings.Split(addr, ":")[1], benchService, benchIssuer, h.keys["ES256"].Public, cache, h.fix.Addrs.Registry, upstreamUser, pw)
	cfgPath = filepath.Join(dir, "gateway.yaml")
	return cfgPath, addr, os.WriteFile(cfgPath, []byte(conf), 0o644)
}

// startGateway starts bin/gateway with manifest_cache cache; nil when it
// was not built.
func (h *harness) startGateway(ctx context.Context, name, cache string) (*Proc, string, error) {
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

// Groups of the manifest workload: the same contenders asked by tag (what
// the targets were set on) and by digest (what docker GETs after resolving
// the tag with a HEAD).
const (
	GroupTag    = "by tag"
	GroupDigest = "by digest"
)

// Names of the manifest contenders.
const (
	ContenderGateway      = "gateway"
	ContenderGatewayCache = "gateway+cache"
)

func (h *harness) runManifest(ctx context.Context) error {
	fx := h.fix.Addrs
	tok, err := pullToken(h.keys["ES256"].Key, "bench@bench.example", benchRepo)
	if err != nil {
		return err
	}
	accept := "Accept: " + fx.ManifestType
	bearer := "Authorization: Bearer " + tok
	size := int64(fx.ManifestSize)
	tagPath := "/v2/" + benchRepo + "/manifests/" + benchTag
	digestPath := "/v2/" + benchRepo + "/manifests/" + fx.ManifestDigest
	h.report.ManifestInfo = fmt.Sprintf("`GET %s` (`%s`, %d bytes) as `docker pull` asks it, and the same manifest by digest (`GET /v2/%s/manifests/sha256:…`), on kept-alive connections.",
		tagPath, fx.ManifestType, size, benchRepo)

	// contenders builds the contenders of one request path; the servers
	// are shared by both groups.
	type server struct {
		name, addr string
		pids       []int
	}
	var servers []server
	for _, g := range []struct{ name, proc, cache string }{
		{ContenderGateway, "gateway-manifest", cacheOff},
		{ContenderGatewayCache, "gateway-manifest-cache", cacheOn},
	} {
		gw, addr, err := h.startGateway(ctx, g.proc, g.cache)
		if err != nil {
			return err
		}
		if gw == nil {
			continue
		}
		defer h.stop(gw)
		servers = append(servers, server{name: g.name, addr: addr, pids: []int{gw.PID()}})
	}
	if nginxVersion() == "" {
		h.note("nginx contender skipped: %s not found (apt-get install nginx-light)", NginxPath)
	} else {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		ngx, err := startNginx(ctx, filepath.Join(h.tmp, "nginx"), addr, fx.Registry, upstreamBasic(), h.report.Env.CPUs)
		if err != nil {
			return err
		}
		h.procs = append(h.procs, ngx)
		defer h.stop(ngx)
		if err := waitReady(ctx, ngx, "http://"+addr+"/v2/", 30*time.Second, 200); err != nil {
			return err
		}
		servers = append(servers, server{name: "nginx", addr: addr, pids: append([]int{ngx.PID()}, childPIDs(ngx.PID())...)})
	}
	for _, g := range []struct{ group, path string }{{GroupTag, tagPath}, {GroupDigest, digestPath}} {
		p := g.path
		cs := []contender{{name: "direct", baseline: true, newOp: func(int, int) NewOp {
			return fixedOp(fx.Registry, RenderGET(fx.Registry, p, accept, "Authorization: Basic "+upstreamBasic()), 200, size)
		}}}
		for _, sv := range servers {
			cs = append(cs, contender{name: sv.name, pids: sv.pids, newOp: func(int, int) NewOp {
				return fixedOp(sv.addr, RenderGET(sv.addr, p, accept, bearer), 200, size)
			}})
		}
		series, err := h.interleave(ctx, WorkloadManifest, cs, h.opts.Concurrency, h.opts.Rounds, h.cell)
		for _, s := range series {
			s.Group = g.group
		}
		h.report.Manifest = append(h.report.Manifest, series...)
		if err != nil {
			return fmt.Errorf("%s: %w", g.group, err)
		}
	}
	return nil
}

// tokenServer is one token service under test.
type tokenServer struct {
	alg, backend string
	addr         string
	proc         *Proc
}

func tokenPath(user string) string {
	return "/token?account=" + url.QueryEscape(user) + "&scope=" + url.QueryEscape("repository:"+benchRepo+":pull") + "&service=" + benchService
}

func tokenRequest(addr, user, apiToken string) []byte {
	return RenderGET(addr, tokenPath(user), "Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+apiToken)))
}

// account names: distinct per server, so that the licence API's per-token
// counts are per server cache.
func accountName(server string, i int) string {
	return fmt.Sprintf("%s-user%03d@bench.example", server, i)
}

func apiToken(user string) string { return licenceTokenPrefix + user }

func tokenServerName(alg, backend string) string {
	return "tokenserver-" + strings.ToLower(alg) + "-" + backend
}

// writeTokenConfig writes the configuration of a token service under test.
func (h *harness) writeTokenConfig(alg, backend string) (cfgPath, addr string, err error) {
	if addr, err = freeAddr(); err != nil {
		return "", "", err
	}
	name := tokenServerName(alg, backend)
	var licences string
	switch backend {
	case "file":
		var b strings.Builder
		b.WriteString("accounts:\n")
		for i := range h.opts.Accounts {
			u := accountName(name, i)
			fmt.Fprintf(&b, "  - username: %s\n    token_sha256: %q\n    channels: [stable, beta]\n", u, license.HashToken(apiToken(u)))
		}
		f := filepath.Join(h.tmp, name+"-accounts.yaml")
		if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
			return "", "", err
		}
		licences = "  file: " + f + "\n"
	case "http":
		licences = "  http:\n    url: http://" + h.fix.Addrs.License + "/v1/meta/licenses/\n"
	case "sql", "sqlcold":
		db := filepath.Join(h.tmp, name+"-accounts.db")
		if err := h.writeAccountsDB(name, db); err != nil {
			return "", "", err
		}
		licences = "  sql:\n    driver: sqlite\n    dsn: " + db + "\n"
		if backend == "sqlcold" {
			// Every request misses the cache: one indexed query each.
			licences += "  cache_ttl: 1ns\n"
		}
	default:
		return "", "", fmt.Errorf("unknown licence backend %q", backend)
	}
	conf := fmt.Sprintf(`# written by the benchmark harness
listen: %s
issuer: %s
service: %s
signing_key: %s
log_level: warn
licenses:
%s`, addr, benchIssuer, benchService, h.keys[alg].Private, licences)
	cfgPath = filepath.Join(h.tmp, name+".yaml")
	return cfgPath, addr, os.WriteFile(cfgPath, []byte(conf), 0o644)
}

// writeAccountsDB makes a SQLite account database holding the server's
// accounts, the way a vendor would: migrate, then import.
func (h *harness) writeAccountsDB(server, path string) error {
	ctx := context.Background()
	cfg := &accounts.Config{Driver: accounts.DriverSQLite, DSN: path}
	db, err := accounts.Open(ctx, cfg, accounts.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Migrate(ctx, "bench"); err != nil {
		return err
	}
	in := make([]license.FileAccount, h.opts.Accounts)
	for i := range in {
		u := accountName(server, i)
		in[i] = license.FileAccount{Username: u, TokenSHA256: license.HashToken(apiToken(u)), Channels: []string{"stable", "beta"}}
	}
	_, err = db.Import(ctx, "bench", in)
	return err
}

// startTokenServer starts the bare signer or bin/tokenserver; nil when the
// latter was not built.
func (h *harness) startTokenServer(ctx context.Context, alg, backend string) (*tokenServer, error) {
	ts := &tokenServer{alg: alg, backend: backend}
	if backend == "bare" {
		addr, err := freeAddr()
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
	cfgPath, addr, err := h.writeTokenConfig(alg, backend)
	if err != nil {
		return nil, err
	}
	ts.addr = addr
	ts.proc, err = h.start(ctx, tokenServerName(alg, backend), bin, []string{"-config", cfgPath}, "http://"+addr+"/healthz", 200)
	return ts, err
}

func (ts *tokenServer) name() string { return tokenServerName(ts.alg, ts.backend) }

func (h *harness) runToken(ctx context.Context) error {
	var servers []*tokenServer
	defer func() {
		for _, ts := range servers {
			h.stop(ts.proc)
		}
	}()
	var cs []contender
	lic := &LicenceReport{CacheTTL: license.DefaultTTL}
	type warmSet struct {
		ts    *tokenServer
		start time.Time
		base  LicenceStats
	}
	var warm []warmSet
	for _, alg := range []string{"ES256", "RS256"} {
		for _, backend := range []string{"bare", "file", "sql", "sqlcold", "http"} {
			if strings.HasPrefix(backend, "sql") && alg != "ES256" {
				continue // the backend costs the same whatever signs
			}
			ts, err := h.startTokenServer(ctx, alg, backend)
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
				warmReqs[i] = tokenRequest(addr, u, apiToken(u))
			}
			warmOp := func(int, int) NewOp {
				return varyingOp(addr, func(w, i int) []byte { return warmReqs[(w*7+i)%len(warmReqs)] }, 200, -1)
			}
			switch backend {
			case "bare":
				cs = append(cs, contender{name: alg + " bare", baseline: true, pids: []int{ts.proc.PID()}, newOp: warmOp})
			case "file":
				cs = append(cs, contender{name: alg + " file", pids: []int{ts.proc.PID()}, newOp: warmOp})
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
				base, err := h.fix.licenceStats(ctx)
				if err != nil {
					return err
				}
				ws := warmSet{ts: ts, start: time.Now(), base: base}
				// Every account asked once: the cache is warm.
				if _, err := RunCell(ctx, Cell{Concurrency: 8, Requests: len(warmReqs), MaxTime: time.Minute},
					varyingOp(addr, func(w, i int) []byte { return warmReqs[(w+8*i)%len(warmReqs)] }, 200, -1)); err != nil {
					return fmt.Errorf("warming %s: %w", name, err)
				}
				warm = append(warm, ws)
				cs = append(cs, contender{name: alg + " http warm", pids: []int{ts.proc.PID()}, newOp: warmOp})
				cs = append(cs, contender{name: alg + " http cold", pids: []int{ts.proc.PID()}, newOp: func(r, c int) NewOp {
					return varyingOp(addr, func(w, i int) []byte {
						u := fmt.Sprintf("%s-cold-r%d-c%d-w%d-%d@bench.example", name, r, c, w, i)
						return tokenRequest(addr, u, apiToken(u))
					}, 200, -1)
				}})
			}
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

	stats, err := h.fix.licenceStats(ctx)
	if err != nil {
		return err
	}
	for _, ws := range warm {
		name := ws.ts.name()
		w := LicenceWarm{Server: name, Accounts: h.opts.Accounts, Elapsed: time.Since(ws.start)}
		for i := range h.opts.Accounts {
			tok := apiToken(accountName(name, i))
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
func (h *harness) licenceHerd(ctx context.Context, ts *tokenServer) (*LicenceHerd, error) {
	const accounts, conc = 16, 64
	reqs := make([][]byte, accounts)
	for i := range reqs {
		u := fmt.Sprintf("%s-herd%02d@bench.example", ts.name(), i)
		reqs[i] = tokenRequest(ts.addr, u, apiToken(u))
	}
	res, err := RunCell(ctx, Cell{Concurrency: conc, Requests: conc * 4, MaxTime: time.Minute},
		varyingOp(ts.addr, func(w, i int) []byte { return reqs[(w+i)%accounts] }, 200, -1))
	if err != nil {
		return nil, err
	}
	stats, err := h.fix.licenceStats(ctx)
	if err != nil {
		return nil, err
	}
	hd := &LicenceHerd{Accounts: accounts, Concurrency: conc, Requests: res.Requests}
	for tok, n := range stats.PerToken {
		if strings.Contains(tok, ts.name()+"-herd") {
			hd.Calls += n
			hd.MaxPerAcct = max(hd.MaxPerAcct, n)
		}
	}
	return hd, nil
}
