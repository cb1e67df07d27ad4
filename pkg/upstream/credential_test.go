package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCredentialNeverPrintsPassword(t *testing.T) {
	t.Parallel()
	c := Credential{Username: "AWS", Password: "s3cr3t-pw", ExpiresAt: t0, ProxyEndpoint: "https://1.dkr.ecr.us-east-1.amazonaws.com"}
	logged := func(h func(*bytes.Buffer) slog.Handler) string {
		var b bytes.Buffer
		slog.New(h(&b)).Info("msg", "cred", c, "ptr", &c)
		return b.String()
	}
	js, _ := json.Marshal(c)
	for name, out := range map[string]string{
		"String":    c.String(),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"%s":        fmt.Sprintf("%s", c),
		"%q":        fmt.Sprintf("%q", c),
		"%x":        fmt.Sprintf("%x", c),
		"%d":        fmt.Sprintf("%d", c),
		"pointer":   fmt.Sprintf("%v", &c),
		"nested":    fmt.Sprintf("%+v", struct{ C Credential }{c}),
		"error":     fmt.Errorf("using %v: boom", c).Error(),
		"json":      string(js),
		"slog text": logged(func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }),
		"slog json": logged(func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }),
	} {
		if strings.Contains(out, c.Password) {
			t.Errorf("%s prints the password: %s", name, out)
		}
		if name != "json" && !strings.Contains(out, "AWS") {
			t.Errorf("%s lost the username: %s", name, out)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	c := Credential{Username: "AWS", Password: "pa:ss"}
	r, _ := http.NewRequest(http.MethodGet, "https://example.test/v2/", nil)
	r.Header.Set("Authorization", c.BasicAuth())
	user, pass, ok := r.BasicAuth()
	if !ok || user != "AWS" || pass != "pa:ss" {
		t.Errorf("BasicAuth() = %q decodes to %q %q %v", c.BasicAuth(), user, pass, ok)
	}
}

func TestExpired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expires time.Time
		now     time.Time
		want    bool
	}{
		{time.Time{}, t0.Add(1000 * time.Hour), false}, // never expires
		{t0, t0.Add(-time.Nanosecond), false},
		{t0, t0, true},
		{t0, t0.Add(time.Second), true},
	} {
		if got := (Credential{ExpiresAt: tc.expires}).Expired(tc.now); got != tc.want {
			t.Errorf("Expired(%v) with ExpiresAt %v = %v", tc.now, tc.expires, got)
		}
	}
}
