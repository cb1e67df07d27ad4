package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/loadgen"
	"github.com/acme/registry-gateway/bench/nginx"
	"github.com/acme/registry-gateway/bench/proc"
	"github.com/acme/registry-gateway/bench/procstat"
	"github.com/acme/registry-gateway/bench/pull"
	"github.com/acme/registry-gateway/bench/report"
)

// runPull is the headline: whole `docker pull`s of the multi-platform
// image, many clients at once, through each contender as a user would run
// it — the gateway at its shipped configuration with the token service at
// its own, the article's nginx + Lua, plain nginx, and the registry itself.
func (h *harness) runPull(ctx context.Context) error {
	fx := h.fix.Addrs
	im := &fx.Pull
	h.report.PullInfo = fmt.Sprintf("`docker pull` of `%s:%s`, an index of %d platforms, fetching %s: %d layers, %d KiB in all. Per pull: %s.",
		im.Repo, im.Tag, im.Platforms, im.Platform, len(im.Layers), im.Bytes()>>10,
		"the token request with Basic credentials (where there is a token service), `HEAD` then `GET` of the index by tag, `GET` of the platform manifest by digest, then the config blob and each layer, each answered with a 307 to the S3 store that the client follows without the registry's credential")

	var (
		mu     sync.Mutex
		counts = map[string]*pull.Stats{}
	)
	collect := func(name string) func(pull.Stats) {
		return func(s pull.Stats) {
			mu.Lock()
			defer mu.Unlock()
			if counts[name] == nil {
				counts[name] = &pull.Stats{}
			}
			counts[name].Add(s)
		}
	}
	op := func(name, addr string, auth func(int) pull.Auth) func(int, int) loadgen.NewOp {
		return func(int, int) loadgen.NewOp { return pull.NewOp(addr, im, auth, collect(name)) }
	}
	fixed := func(a pull.Auth) func(int) pull.Auth { return func(int) pull.Auth { return a } }

	cs := []contender{{name: report.ContenderDirect, baseline: true, newOp: op(report.ContenderDirect, fx.Registry,
		fixed(pull.Auth{Header: "Authorization: Basic " + fixtures.UpstreamBasic()}))}}

	gw, err := h.startShippedGateway(ctx)
	if err != nil {
		return err
	}
	if gw != nil {
		defer gw.stop()
		cs = append(cs, contender{name: report.ContenderGatewayShipped, pids: gw.pids, newOp: op(report.ContenderGatewayShipped, gw.addr, h.pullAuth(gw.token, im.Repo))})
		// The same gateway less the caches that spare the upstream, on the
		// same token service: what each pull costs without them.
		nc, ncAddr, err := h.startGatewayOn(ctx, "gateway-pull-nocaches", gw.token, fixtures.NoTagCache, fixtures.RedirectCacheOff)
		if err != nil {
			return err
		}
		defer h.stop(nc)
		cs = append(cs, contender{name: report.ContenderGatewayNoCaches, pids: []int{nc.PID(), gw.token.proc.PID()},
			newOp: op(report.ContenderGatewayNoCaches, ncAddr, h.pullAuth(gw.token, im.Repo))})
	}

	if !nginx.HasLua() {
		h.note("pull: the article's nginx + Lua contender skipped: nginx or %s not found (apt-get install nginx libnginx-mod-http-lua)", nginx.LuaModule)
	} else {
		addr, err := proc.FreeAddr()
		if err != nil {
			return err
		}
		ngx, err := nginx.StartLua(filepath.Join(h.tmp, "nginx-lua"), addr, fx.Registry, fx.License, fixtures.UpstreamBasic(), h.report.Env.CPUs)
		if err != nil {
			return err
		}
		pids, err := h.startedNginx(ctx, ngx, "http://"+addr+"/health")
		if err != nil {
			return err
		}
		defer h.stop(ngx)
		cs = append(cs, contender{name: report.ContenderNginxLua, pids: pids, newOp: op(report.ContenderNginxLua, addr, func(w int) pull.Auth {
			u := fmt.Sprintf("lua-user%03d@bench.example", w%h.opts.Accounts)
			return pull.Auth{Header: basicHeader(u, fixtures.APIToken(u))}
		})})
	}
	ngx, addr, pids, err := h.startNginx(ctx, WorkloadPull)
	if err != nil {
		return err
	}
	if ngx != nil {
		defer h.stop(ngx)
		cs = append(cs, contender{name: report.ContenderNginx, pids: pids, newOp: op(report.ContenderNginx, addr, fixed(pull.Auth{}))})
	}

	// A pull is a dozen requests, and the article's set-up takes seconds a
	// pull at high concurrency: a couple of pulls per worker warm up the
	// connections and caches as well as the request workloads' 20 requests.
	// The cells of more than pullTimedContenders share the time that many
	// took, so that the workload's run time stays the same.
	cell := func(c int) loadgen.Cell {
		cl := h.cell(c)
		cl.Warmup = min(cl.Warmup, pullWarmup)
		cl.MaxTime = cl.MaxTime * pullTimedContenders / time.Duration(max(len(cs), pullTimedContenders))
		return cl
	}
	series, err := h.interleave(ctx, WorkloadPull, cs, h.opts.Concurrency, h.opts.Rounds, cell)
	h.report.Pull = series
	if err != nil {
		return err
	}
	for _, c := range cs {
		st := counts[c.name]
		if st == nil || st.Pulls == 0 {
			continue
		}
		h.report.PullCounts = append(h.report.PullCounts, report.PullCount{Contender: c.name, Stats: *st})
		h.logf("pull: %s: %s", c.name, stepTimes(st))
		// Every pull must have been whole: a contender that skipped a step
		// would look fast.
		wantReq := int64(im.Requests(c.name == report.ContenderGatewayShipped || c.name == report.ContenderGatewayNoCaches))
		if st.Requests != st.Pulls*wantReq || st.Redirects != st.Pulls*int64(len(im.Layers)+1) || st.Bytes != st.Pulls*im.Bytes() {
			return fmt.Errorf("pull: %s: %+v, want %d requests, %d redirects and %d bytes a pull", c.name, *st, wantReq, len(im.Layers)+1, im.Bytes())
		}
	}
	return nil
}

// stepTimes is the mean time of each step of st's pulls (a blob step per
// blob), every concurrency level together: where a contender's added
// latency goes.
func stepTimes(st *pull.Stats) string {
	var b strings.Builder
	for i, d := range st.Time {
		n := st.Pulls
		switch i {
		case pull.StepBlob: // the requests after the token and manifests
			n = st.Requests - st.Pulls*int64(pull.StepBlob-pull.StepHeadIndex)
			if st.Time[pull.StepToken] > 0 {
				n -= st.Pulls
			}
		case pull.StepFollow:
			n = st.Redirects
		}
		if d == 0 || n == 0 {
			continue
		}
		fmt.Fprintf(&b, " %s %.0f µs,", pull.StepNames[i], float64(d.Microseconds())/float64(n))
	}
	return strings.TrimSuffix(b.String(), ",")
}

// pullWarmup is the most unmeasured pulls per worker before a cell.
const pullWarmup = 2

// pullTimedContenders is how many contenders' cells the pull workload's
// time was set for.
const pullTimedContenders = 4

func basicHeader(user, password string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// startNginx starts the plain nginx contender (proxy_pass with keep-alive,
// checking nothing) for workload; nil, noted, when nginx is not installed.
func (h *harness) startNginx(ctx context.Context, workload string) (*proc.Proc, string, []int, error) {
	if nginx.Version() == "" {
		h.note("%s: nginx contender skipped: %s not found (apt-get install nginx)", workload, nginx.Path)
		return nil, "", nil, nil
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, "", nil, err
	}
	ngx, err := nginx.Start(filepath.Join(h.tmp, "nginx-"+workload), addr, h.fix.Addrs.Registry, fixtures.UpstreamBasic(), h.report.Env.CPUs)
	if err != nil {
		return nil, "", nil, err
	}
	pids, err := h.startedNginx(ctx, ngx, "http://"+addr+"/v2/")
	return ngx, addr, pids, err
}

// startedNginx waits for a started nginx and returns its processes
// (master and workers), which the harness stops with the master.
func (h *harness) startedNginx(ctx context.Context, ngx *proc.Proc, readyURL string) ([]int, error) {
	h.procs = append(h.procs, ngx)
	if err := proc.WaitReady(ctx, ngx, readyURL, 30*time.Second, 200); err != nil {
		return nil, err
	}
	workers, err := procstat.Children(ngx.PID())
	if err != nil {
		return nil, err
	}
	return append([]int{ngx.PID()}, workers...), nil
}

// shippedGateway is bin/gateway at its shipped configuration with
// bin/tokenserver at its own behind /token.
type shippedGateway struct {
	addr  string
	pids  []int
	token *tokenServer
	stop  func()
}

// startShippedGateway starts the token service (file backend) and the
// gateway, both as shipped; nil when either was not built.
func (h *harness) startShippedGateway(ctx context.Context) (*shippedGateway, error) {
	if _, ok := h.bins["gateway"]; !ok {
		return nil, nil
	}
	ts, err := h.startTokenServer(ctx, "ES256", "file", tokenShipped)
	if err != nil || ts == nil {
		return nil, err
	}
	p, addr, err := h.startGatewayOn(ctx, "gateway-pull", ts, "", "")
	if err != nil {
		h.stop(ts.proc)
		return nil, err
	}
	return &shippedGateway{addr: addr, pids: []int{p.PID(), ts.proc.PID()}, token: ts, stop: func() { h.stop(p); h.stop(ts.proc) }}, nil
}

// writeShippedGatewayConfig writes the configuration of a gateway as
// shipped, forwarding /token to the token service at tokenAddr; with
// manifestCache and redirectCache (YAML values; empty: as shipped), those
// settings changed.
func (h *harness) writeShippedGatewayConfig(name, tokenAddr, manifestCache, redirectCache string) (cfgPath, addr string, err error) {
	if addr, err = proc.FreeAddr(); err != nil {
		return "", "", err
	}
	g := fixtures.Gateway{Listen: addr, PublicKey: h.keys["ES256"].Public, Upstream: h.fix.Addrs.Registry, Shipped: true, TokenEndpoint: tokenAddr,
		ManifestCache: manifestCache, BlobRedirectCache: redirectCache}
	cfgPath, err = g.Write(filepath.Join(h.tmp, name))
	return cfgPath, addr, err
}

// startGatewayOn starts bin/gateway as shipped but for manifestCache and
// redirectCache, forwarding /token to ts.
func (h *harness) startGatewayOn(ctx context.Context, name string, ts *tokenServer, manifestCache, redirectCache string) (*proc.Proc, string, error) {
	cfgPath, addr, err := h.writeShippedGatewayConfig(name, ts.addr, manifestCache, redirectCache)
	if err != nil {
		return nil, "", err
	}
	p, err := h.start(ctx, name, h.bins["gateway"], []string{"-config", cfgPath}, "http://"+addr+"/readyz", 200)
	return p, addr, err
}

// pullAuth is how worker w of a pull through the gateway authenticates:
// an account of the token service ts, with its API token.
func (h *harness) pullAuth(ts *tokenServer, repo string) func(w int) pull.Auth {
	return func(w int) pull.Auth {
		u := accountName(ts.name(), w%h.opts.Accounts)
		return pull.Auth{Header: basicHeader(u, fixtures.APIToken(u)), TokenPath: pull.TokenPath(u, repo, fixtures.Service)}
	}
}
