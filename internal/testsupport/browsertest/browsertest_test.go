package browsertest_test

import (
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/acme/registry-gateway/internal/testsupport/browsertest"
)

const head = `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title></head><body>`

var pages = map[string]string{
	// Every control reachable and named, fits a phone.
	"/good": head + `<main><h1>Good</h1>
<a href="/good">Home</a>
<label for="q">Search</label><input id="q" name="q">
<button type="submit">Find</button>
<button type="button" aria-label="Close">×</button>
<textarea aria-label="Notes"></textarea>
<button type="button" disabled>Disabled, skipped</button>
<input type="hidden" name="csrf" value="x">
</main></body></html>`,
	// A wide table in its own scroller fits a phone; a visually hidden,
	// absolutely positioned header inside it escapes the scroller (which
	// is not its containing block) and widens the page.
	"/scroller": head + `<main><table style="display:block;overflow-x:auto;width:100%"><caption>t</caption>
<tr><td style="white-space:nowrap">` + strings.Repeat("wide ", 200) + `</td></tr></table></main></body></html>`,
	"/escape": head + `<main><table style="display:block;overflow-x:auto;width:100%"><caption>t</caption>
<tr><td style="white-space:nowrap">` + strings.Repeat("wide ", 200) + `<span id="vh" style="position:absolute;width:1px;height:1px;overflow:hidden">hidden</span></td></tr></table></main></body></html>`,
	// A button without a name, a link taken out of the tab order, and a
	// table wider than a phone.
	"/bad": head + `<main><h1>Bad</h1>
<a href="/good">Reachable</a>
<button type="button"><svg width="10" height="10"></svg></button>
<a href="/good" tabindex="-1">Mouse only</a>
<div style="width:600px">too wide</div>
</main></body></html>`,
}

func serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(p))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGoodPage(t *testing.T) {
	b := browsertest.Start(t)
	srv := serve(t)
	tab := b.NewTab()
	tab.Navigate(srv.URL + "/good")
	if got := tab.Text("h1"); got != "Good" {
		t.Fatalf("h1 %q", got)
	}
	stops, err := tab.KeyboardWalk()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range stops {
		names = append(names, s.Role+":"+s.Name)
	}
	want := "link:Home textbox:Search button:Find button:Close textbox:Notes"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("stops %q, want %q", got, want)
	}
	if err := tab.Overflow375(); err != nil {
		t.Fatal(err)
	}
	desktop, phone := tab.Screenshot("good")
	for path, width := range map[string]int{desktop: browsertest.DesktopWidth, phone: browsertest.PhoneWidth} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if w := img.Bounds().Dx(); w != width {
			t.Errorf("%s: %d px wide, want %d", path, w, width)
		}
	}
	if !strings.HasPrefix(desktop, b.Dir()) || !strings.Contains(b.Dir(), "TestGoodPage") {
		t.Errorf("screenshot %s outside the test's folder %s", desktop, b.Dir())
	}
	if errs := tab.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

func TestBadPage(t *testing.T) {
	b := browsertest.Start(t)
	srv := serve(t)
	tab := b.NewTab()
	tab.Navigate(srv.URL + "/bad")
	_, err := tab.KeyboardWalk()
	if err == nil {
		t.Fatal("keyboard walk passed a page with an unnamed button and a mouse-only link")
	}
	for _, want := range []string{"no accessible name", "not reachable with Tab: <a href=\"/good\" tabindex=\"-1\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("walk error %q does not say %q", err, want)
		}
	}
	err = tab.Overflow375()
	if err == nil || !strings.Contains(err.Error(), "scrolls") || !strings.Contains(err.Error(), "div") {
		t.Fatalf("overflow check: %v, want the wide div named", err)
	}
}

func TestOverflowAndScrollers(t *testing.T) {
	b := browsertest.Start(t)
	srv := serve(t)
	tab := b.NewTab()
	tab.Navigate(srv.URL + "/scroller")
	if err := tab.Overflow375(); err != nil {
		t.Errorf("a table scrolling in its own box: %v", err)
	}
	tab.Navigate(srv.URL + "/escape")
	if err := tab.Overflow375(); err == nil || !strings.Contains(err.Error(), "span#vh") {
		t.Errorf("an absolutely positioned element escaping its scroller: %v, want span#vh named", err)
	}
}

func TestIncognitoTabsHaveTheirOwnCookies(t *testing.T) {
	b := browsertest.Start(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "s", Value: "1", Path: "/"})
		}
		c, _ := r.Cookie("s")
		w.Header().Set("Content-Type", "text/html")
		v := "none"
		if c != nil {
			v = c.Value
		}
		w.Write([]byte(head + "<p id=c>" + v + "</p></body></html>"))
	}))
	defer srv.Close()
	a := b.NewTab()
	a.Navigate(srv.URL + "/set")
	a.Navigate(srv.URL + "/get")
	if got := a.Text("#c"); got != "1" {
		t.Fatalf("cookie in the same tab: %q", got)
	}
	same := b.NewTab()
	same.Navigate(srv.URL + "/get")
	if got := same.Text("#c"); got != "1" {
		t.Fatalf("cookie in a tab of the same profile: %q", got)
	}
	other := b.NewIncognitoTab()
	other.Navigate(srv.URL + "/get")
	if got := other.Text("#c"); got != "none" {
		t.Fatalf("cookie leaked into an incognito tab: %q", got)
	}
	_ = browsertest.Run(other, chromedp.Title())
}
