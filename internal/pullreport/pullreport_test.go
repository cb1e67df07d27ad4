package pullreport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dg = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func line(at, method, route string, status int, bytes int64, subject, repo, ref, digest string) string {
	m := map[string]any{"time": "2026-12-01T10:00:" + at + "Z", "level": "INFO", "msg": "request", "method": method, "path": "/v2/x",
		"route": route, "status": status, "bytes": bytes, "remote": "127.0.0.1:1"}
	for k, v := range map[string]string{"subject": subject, "repository": repo, "reference": ref, "digest": digest} {
		if v != "" {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

var sample = strings.Join([]string{
	"not json at all",
	`{"time":"2026-12-01T09:59:00Z","level":"INFO","msg":"gateway listening"}`,
	line("05", "GET", "blob", 200, 7, "bob@example.com", "stable/app", "sha256:b0", ""), // before any manifest
	line("10", "GET", "manifest", 200, 500, "alice@example.com", "stable/app", "1.4.2", dg),
	line("11", "GET", "blob", 200, 1000, "alice@example.com", "stable/app", "sha256:aa", ""),
	line("12", "HEAD", "manifest", 200, 0, "alice@example.com", "stable/app", "1.4.2", dg),
	line("13", "GET", "manifest", 404, 90, "alice@example.com", "stable/app", "9.9", ""),
	line("02", "GET", "manifest", 200, 500, "bob@example.com", "stable/app", dg, dg), // out of order
	line("20", "GET", "manifest", 200, 500, "alice@example.com", "stable/app", "1.4.2", dg),
	line("21", "GET", "blob", 307, 0, "alice@example.com", "stable/app", "sha256:aa", ""),
	line("30", "GET", "manifest", 401, 100, "", "", "", ""),
}, "\n") + "\n"

func TestReport(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if code := Run([]string{"--format", "json"}, strings.NewReader(sample), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rows []Row
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range rows {
		got += fmt.Sprintf("%s %s %s pulls=%d bytes=%d %s..%s\n", r.Customer, r.Repository, r.Reference, r.Pulls, r.Bytes,
			r.First.Format("04:05"), r.Last.Format("04:05"))
	}
	want := "alice@example.com stable/app 1.4.2 pulls=2 bytes=2000 00:10..00:20\n" +
		"bob@example.com stable/app " + dg + " pulls=1 bytes=507 00:02..00:02\n"
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}

	out.Reset()
	Run([]string{"--reference", "1.4.2"}, strings.NewReader(sample), &out, &errb)
	if !strings.Contains(out.String(), "alice@example.com  stable/app  1.4.2") || strings.Contains(out.String(), "bob") ||
		!strings.Contains(out.String(), "sha256:111111111111") || strings.Contains(out.String(), dg) {
		t.Errorf("table:\n%s", out.String())
	}
	out.Reset()
	Run([]string{"--format", "csv", "--customer", "BOB@example.com"}, strings.NewReader(sample), &out, &errb)
	if want := "customer,repository,reference,digest,pulls,first,last,bytes\nbob@example.com,stable/app," + dg + "," + dg + ",1,2026-12-01T10:00:02Z,2026-12-01T10:00:02Z,507\n"; out.String() != want {
		t.Errorf("csv:\n%s", out.String())
	}
}

func TestReportFilesAndErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	lines := strings.SplitAfter(sample, "\n")
	os.WriteFile(a, []byte(strings.Join(lines[:6], "")), 0o600)
	os.WriteFile(b, []byte(strings.Join(lines[6:], "")), 0o600)
	var out, errb bytes.Buffer
	if code := Run([]string{"--format", "json", a, b}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rows []Row
	json.Unmarshal(out.Bytes(), &rows)
	if len(rows) != 2 || rows[0].Pulls != 2 {
		t.Errorf("two files: %+v", rows)
	}

	for _, tc := range []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"--format", "xml"}, "", 2, "unknown format"},
		{[]string{filepath.Join(dir, "missing.log")}, "", 1, "missing.log"},
		{nil, strings.Repeat("x", maxLine+10) + "\n", 1, "longer than"},
		{nil, "hello\n", 0, "no access records"},
		{[]string{"--nope"}, "", 2, "flag provided but not defined"},
	} {
		out.Reset()
		errb.Reset()
		if code := Run(tc.args, strings.NewReader(tc.stdin), &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errb.String())
		}
	}
}
