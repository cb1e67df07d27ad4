package license

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

func TestCredentialsNeverPrintToken(t *testing.T) {
	t.Parallel()
	const token = "tok_SECRET_1234567890"
	c := Credentials{Username: "alice@example.com", Token: token}
	wrapped := struct{ C Credentials }{c}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, wrapped))
	}
	outs = append(outs, c.String(), fmt.Sprint(c), fmt.Sprintln([]Credentials{c}))

	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("login", "creds", c)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("login", "creds", c, slog.Any("ptr", &c))
	outs = append(outs, logBuf.String())

	js, err := json.Marshal(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(js))

	for _, out := range outs {
		if strings.Contains(out, token) || strings.Contains(out, "SECRET") {
			t.Errorf("token leaked: %s", out)
		}
	}
	if !strings.Contains(logBuf.String(), "alice@example.com") || !strings.Contains(c.String(), "alice@example.com") {
		t.Errorf("username should still be visible: %q / %q", logBuf.String(), c.String())
	}
}

func TestHolds(t *testing.T) {
	t.Parallel()
	l := License{Channels: []string{"beta", "stable"}}
	for ch, want := range map[string]bool{"stable": true, "beta": true, "nightly": false, "": false, "Stable": false} {
		if got := l.Holds(ch); got != want {
			t.Errorf("Holds(%q) = %v, want %v", ch, got, want)
		}
	}
	if (License{}).Holds("stable") {
		t.Error("empty licence holds nothing")
	}
}

func TestNormalizeChannels(t *testing.T) {
	t.Parallel()
	got := NormalizeChannels([]string{"stable", "", "beta", "stable", "alpha"})
	if want := []string{"alpha", "beta", "stable"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPlausible(t *testing.T) {
	t.Parallel()
	for _, c := range []Credentials{
		{"", "tok"},
		{"a@b", ""},
		{"a@b", "tok\nInjected: yes"},
		{"a@b", "tok\x00"},
		{"a@b", strings.Repeat("x", maxTokenLen+1)},
	} {
		if c.plausible() {
			t.Errorf("%q accepted", c.Token)
		}
	}
	if !(Credentials{"a@b", "tok_1-2.3~"}).plausible() {
		t.Error("ordinary credentials rejected")
	}
}
