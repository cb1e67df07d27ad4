// Package browsertest drives Debian's headless chromium from tests with
// github.com/chromedp/chromedp: one private browser per test (fresh
// profile, no background networking), and the checks every console page
// gets: screenshots at desktop and phone widths, a keyboard walk, and the
// horizontal overflow at 375 px.
//
// Without chromium, Start skips the test with the install hint unless
// REQUIRE_BROWSER=1 (set by CI), which makes it a failure so that CI cannot
// pass by skipping.
//
// Screenshots go to ScreenshotDir: $TEST_ARTIFACTS/<test name> when that is
// set, else screenshots/<test name> beside the test's package (go test runs
// a test in its package's folder), a folder .gitignore leaves out. It is
// emptied when the test starts, so it holds only this run's pictures.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// requireEnv makes a missing chromium a failure instead of a skip.
const requireEnv = "REQUIRE_BROWSER"

// ActionTimeout bounds each Run of a Tab: a page that hangs fails the test
// instead of the whole test binary's timeout.
const ActionTimeout = 30 * time.Second

// Desktop and phone viewports of Screenshot.
const (
	DesktopWidth, DesktopHeight = 1280, 800
	PhoneWidth, PhoneHeight     = 375, 812
)

// browserNames are the commands tried, Debian's first.
var browserNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Browser is a private headless chromium for one test.
type Browser struct {
	t   testing.TB
	ctx context.Context // the browser's own context: its first tab
	dir string

	mu    sync.Mutex
	shots map[string]bool
}

// Start runs chromium for the test's length; it is stopped at cleanup.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := lookBrowser(t)
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers; the pages are the test's own
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("password-store", "basic"),
		chromedp.WindowSize(DesktopWidth, DesktopHeight),
	)
	// chromedp logs from its own goroutines, which may outlive the test
	// by a moment: t.Logf after the test has ended panics.
	var ended atomic.Bool
	logf := func(format string, args ...any) {
		if !ended.Load() {
			t.Logf(format, args...)
		}
	}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf))
	// The first Run starts the browser and lives as long as ctx: no
	// timeout on it (see chromedp.Run), but the start itself is bounded
	// by the allocator's own read timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("browsertest: starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		ended.Store(true)
		cancel()
		cancelAlloc() // kills the browser and waits for it
	})
	return &Browser{t: t, ctx: ctx, dir: ScreenshotDir(t), shots: map[string]bool{}}
}

func lookBrowser(t testing.TB) string {
	t.Helper()
	for _, name := range browserNames {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not installed (apt-get install -y --no-install-recommends chromium)"
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s, and %s=1", msg, requireEnv)
	}
	t.Skip(msg)
	return ""
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ScreenshotDir is the test's screenshot folder (see the package comment),
// created empty on the first call of a test.
func ScreenshotDir(t testing.TB) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	base := os.Getenv("TEST_ARTIFACTS")
	if base == "" {
		base = "screenshots"
	}
	dir, err := filepath.Abs(filepath.Join(base, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatalf("browsertest: emptying %s: %v", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	return dir
}

// Dir is where Screenshot writes.
func (b *Browser) Dir() string { return b.dir }

// Tab is one browser tab with its own cookies or sharing the browser's.
type Tab struct {
	b   *Browser
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// NewTab opens a tab in the browser's default profile: tabs share cookies.
func (b *Browser) NewTab() *Tab {
	return b.newTab(b.ctx)
}

// NewIncognitoTab opens a tab in a browser context of its own: its cookies
// are its own, as for a second person on another machine.
func (b *Browser) NewIncognitoTab() *Tab {
	return b.newTab(b.ctx, chromedp.WithNewBrowserContext())
}

func (b *Browser) newTab(parent context.Context, opts ...chromedp.ContextOption) *Tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(parent, opts...)
	b.t.Cleanup(cancel)
	tab := &Tab{b: b, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("browsertest: new tab: %v", err)
	}
	// Keep what the page writes to its console (CSP violations, script
	// errors): ConsoleErrors returns them.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			// The browser asks for /favicon.ico by itself; its 404 is
			// not the page's error.
			if strings.HasSuffix(m.URL, "/favicon.ico") {
				continue
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				tab.mu.Lock()
				tab.console = append(tab.console, m.String())
				tab.mu.Unlock()
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(DesktopWidth, DesktopHeight)); err != nil {
		b.t.Fatalf("browsertest: viewport: %v", err)
	}
	return tab
}

// Context is the tab's chromedp context, for actions of one's own; bound
// it with context.WithTimeout.
func (tab *Tab) Context() context.Context { return tab.ctx }

// Do runs the actions within ActionTimeout and fails the test on an error.
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.b.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, ActionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.b.t.Fatalf("browser: %v", err)
	}
}

// Run runs one action within ActionTimeout and returns its value.
func Run[T any](tab *Tab, a chromedp.Action[T]) T {
	tab.b.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, ActionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tab.b.t.Fatalf("browser: %v", err)
	}
	return v
}

// Navigate loads the URL and waits for the page's load event.
func (tab *Tab) Navigate(url string) {
	tab.b.t.Helper()
	tab.Do(chromedp.Navigate(url))
}

// Location is the URL the tab shows.
func (tab *Tab) Location() string {
	tab.b.t.Helper()
	return Run(tab, chromedp.Location())
}

// Text is the rendered text of the first element matching the CSS
// selector, once it is there.
func (tab *Tab) Text(css string) string {
	tab.b.t.Helper()
	return Run(tab, chromedp.Text(chromedp.CSS(css)))
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](tab *Tab, expr string) T {
	tab.b.t.Helper()
	return Run(tab, chromedp.Evaluate[T](expr))
}

// ClickAndWait clicks the element matching the CSS selector (a link, a
// form's button) and waits until the page it leads to has loaded: a page
// is left, the next one complete. Redirects on the way (a sign-in at
// another site) are followed by the browser.
func (tab *Tab) ClickAndWait(css string) {
	t := tab.b.t
	t.Helper()
	tab.Do(chromedp.Evaluate[chromedp.Void](`window.__browsertestOld = true`),
		chromedp.Click(chromedp.CSS(css), chromedp.NodeVisible))
	tab.WaitFor("the page after clicking "+css, `!window.__browsertestOld && document.readyState === "complete"`)
}

// WaitFor evaluates the JavaScript condition until it is true, within
// ActionTimeout (the page may be navigating meanwhile).
func (tab *Tab) WaitFor(what, cond string) {
	t := tab.b.t
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, ActionTimeout)
	defer cancel()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+cond+`); } catch (e) { return false; } })()`))
		if err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("browser: waiting for %s at %s: %v", what, tab.Location(), err)
		case <-time.After(50 * time.Millisecond): // polling a page that is loading
		}
	}
}

// ConsoleErrors are the errors and uncaught exceptions the tab's pages have
// written to the console so far, CSP violations among them.
func (tab *Tab) ConsoleErrors() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.console...)
}

// Screenshot writes two full-page PNGs of the page as it is:
// <name>-desktop.png at 1280 px and <name>-375.png at 375 px wide (as a
// phone: mobile viewport, touch), and leaves the tab at desktop width.
// Names must be unique within the test.
func (tab *Tab) Screenshot(name string) (desktop, phone string) {
	t := tab.b.t
	t.Helper()
	name = unsafeName.ReplaceAllString(name, "_")
	tab.b.mu.Lock()
	dup := tab.b.shots[name]
	tab.b.shots[name] = true
	tab.b.mu.Unlock()
	if dup {
		t.Fatalf("browsertest: screenshot %q taken twice in one test", name)
	}
	desktop = filepath.Join(tab.b.dir, name+"-desktop.png")
	phone = filepath.Join(tab.b.dir, name+"-375.png")
	tab.Do(chromedp.EmulateViewport(DesktopWidth, DesktopHeight))
	tab.writePNG(desktop)
	tab.Do(phoneViewport())
	tab.writePNG(phone)
	tab.Do(chromedp.EmulateViewport(DesktopWidth, DesktopHeight))
	return desktop, phone
}

func phoneViewport() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(PhoneWidth, PhoneHeight, chromedp.EmulateMobile, chromedp.EmulateTouch)
}

func (tab *Tab) writePNG(path string) {
	t := tab.b.t
	t.Helper()
	png := Run(tab, chromedp.FullScreenshot(100))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
}

// Overflow375 is an error unless the page fits 375 px: at a phone's
// viewport, the document scrolls no wider than the screen. It names the
// first elements sticking out, to say what to fix.
func (tab *Tab) Overflow375() error {
	tab.b.t.Helper()
	tab.Do(phoneViewport())
	defer tab.Do(chromedp.EmulateViewport(DesktopWidth, DesktopHeight))
	type overflow struct {
		ScrollWidth int      `json:"scrollWidth"`
		Culprits    []string `json:"culprits"`
	}
	got := Eval[overflow](tab, `(() => {
		const w = document.scrollingElement.scrollWidth;
		const culprits = [];
		// An element inside a scrolling box (a wide table in its own
		// scroller) does not widen the page: name only the others.
		// An absolutely positioned element escapes a scroller that is not
		// (inside) its containing block: that one is named.
		const clipped = (el) => {
			const abs = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
			let positioned = false;
			for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
				const s = getComputedStyle(p);
				const pos = s.position !== 'static';
				if (['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX) && (!abs || positioned || pos)) return true;
				positioned = positioned || pos;
			}
			return false;
		};
		for (const el of document.querySelectorAll('body *')) {
			const r = el.getBoundingClientRect();
			if (r.right > `+fmt.Sprint(PhoneWidth)+` + 0.5 && culprits.length < 5 && !clipped(el)) {
				culprits.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
					(el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '') +
					' right=' + Math.round(r.right));
			}
		}
		return {scrollWidth: w, culprits};
	})()`)
	if got.ScrollWidth > PhoneWidth {
		return fmt.Errorf("%s: at %d px the page scrolls %d px wide; sticking out: %s",
			tab.Location(), PhoneWidth, got.ScrollWidth, strings.Join(got.Culprits, ", "))
	}
	return nil
}

// Stop is one focus stop of KeyboardWalk.
type Stop struct {
	Role, Name string
	// HTML is the start of the element's outer HTML, to find it.
	HTML string
}

// interactive is what a keyboard user must be able to reach: links,
// buttons, form controls, summaries and anything given a tab stop.
const interactive = `a[href], area[href], button, input:not([type=hidden]), select, textarea, summary, iframe, [tabindex]:not([tabindex="-1"]), [contenteditable=""], [contenteditable="true"]`

// KeyboardWalk presses Tab from the top of the page until the focus comes
// round again. It returns the stops in order, and an error naming each
// interactive control (visible, enabled) that the walk never reaches and
// each stop without an accessible name, as the browser's accessibility tree
// computes it.
func (tab *Tab) KeyboardWalk() ([]Stop, error) {
	tab.b.t.Helper()
	tab.Do(chromedp.EmulateViewport(DesktopWidth, DesktopHeight))
	type control struct {
		Index int    `json:"index"`
		HTML  string `json:"html"`
	}
	// Number the controls, then start before the first one.
	controls := Eval[[]control](tab, `(() => {
		const out = [];
		let i = 0;
		for (const el of document.querySelectorAll('`+interactive+`')) {
			const s = getComputedStyle(el);
			if (el.disabled || el.closest('[inert]') || !el.getClientRects().length ||
			    s.visibility === 'hidden' || s.display === 'none') continue;
			el.setAttribute('data-walk', String(i));
			out.push({index: i, html: el.outerHTML.slice(0, 120)});
			i++;
		}
		if (document.activeElement) document.activeElement.blur();
		window.scrollTo(0, 0);
		return out;
	})()`)
	reached := map[int]bool{}
	var stops []Stop
	var errs []error
	first := ""
	for range 2*len(controls) + 4 {
		tab.pressTab()
		stop, idx, ok := tab.focused()
		if !ok { // focus left the page (to the browser's UI): wrap round
			continue
		}
		key := stop.HTML + "#" + fmt.Sprint(idx)
		if key == first {
			break
		}
		if first == "" {
			first = key
		}
		if idx >= 0 {
			reached[idx] = true
		}
		if strings.TrimSpace(stop.Name) == "" {
			errs = append(errs, fmt.Errorf("focus stop %d (%s) has no accessible name: %s", len(stops), stop.Role, stop.HTML))
		}
		stops = append(stops, stop)
	}
	for _, c := range controls {
		if !reached[c.Index] {
			errs = append(errs, fmt.Errorf("not reachable with Tab: %s", c.HTML))
		}
	}
	if len(errs) > 0 {
		return stops, fmt.Errorf("%s: keyboard walk: %w", tab.Location(), errors.Join(errs...))
	}
	return stops, nil
}

// CheckPage is what every page of the console gets: screenshots under the
// name (see Screenshot), the keyboard walk and the 375 px overflow check,
// each failure reported with t.Errorf so that one run shows them all.
func (tab *Tab) CheckPage(name string) {
	t := tab.b.t
	t.Helper()
	tab.Screenshot(name)
	if _, err := tab.KeyboardWalk(); err != nil {
		t.Errorf("page %s: %v", name, err)
	}
	if err := tab.Overflow375(); err != nil {
		t.Errorf("page %s: %v", name, err)
	}
}

// pressTab sends a Tab key down and up, without the char event that
// KeyEvent adds (it would type a tab into a text field).
func (tab *Tab) pressTab() {
	tab.Do(chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: "Tab", Code: "Tab", WindowsVirtualKeyCode: 9, NativeVirtualKeyCode: 9,
			}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// focused describes the focused element: its role and accessible name from
// the accessibility tree, and its data-walk number (-1 without one); ok is
// false when nothing in the page has the focus.
func (tab *Tab) focused() (stop Stop, idx int, ok bool) {
	type res struct {
		Stop
		Idx int
		OK  bool
	}
	r := Run(tab, chromedp.Action[res](func(ctx context.Context, tg *chromedp.Target) (res, error) {
		obj, err := chromedp.Evaluate[*runtime.RemoteObject](`(() => {
			const el = document.activeElement;
			return el && el !== document.body && el !== document.documentElement ? el : null;
		})()`)(ctx, tg)
		if err != nil {
			return res{}, err
		}
		if obj.ObjectID == "" {
			return res{Idx: -1}, nil
		}
		defer cdp.Call(ctx, tg, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: obj.ObjectID}) //nolint:errcheck // best effort
		fetch := false
		ax, err := cdp.Call(ctx, tg, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{ObjectID: obj.ObjectID, FetchRelatives: &fetch})
		if err != nil {
			return res{}, fmt.Errorf("accessibility tree: %w", err)
		}
		info, err := chromedp.Evaluate[struct {
			HTML string `json:"html"`
			Walk string `json:"walk"`
		}](`({html: document.activeElement.outerHTML.slice(0, 120), walk: document.activeElement.getAttribute('data-walk') || ''})`)(ctx, tg)
		if err != nil {
			return res{}, err
		}
		r := res{OK: true, Idx: -1, Stop: Stop{HTML: info.HTML}}
		if info.Walk != "" {
			fmt.Sscan(info.Walk, &r.Idx)
		}
		if len(ax.Nodes) > 0 {
			r.Role = axString(ax.Nodes[0].Role)
			r.Name = axString(ax.Nodes[0].Name)
		}
		return r, nil
	}))
	return r.Stop, r.Idx, r.OK
}

func axString(v *accessibility.Value) string {
	if v == nil || len(v.Value) == 0 {
		return ""
	}
	s := string(v.Value)
	if unq, err := unquote(s); err == nil {
		return unq
	}
	return s
}

func unquote(s string) (string, error) {
	var out string
	err := json.Unmarshal([]byte(s), &out)
	return out, err
}
