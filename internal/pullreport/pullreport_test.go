package pullreport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if want := "customer,repository,reference,digest,pulls,first,last,bytes,checks\nbob@example.com,stable/app," + dg + "," + dg + ",1,2026-12-01T10:00:02Z,2026-12-01T10:00:02Z,507,0\n"; out.String() != want {
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

// Text lines as slog's text handler writes them: quoted values with
// escapes, '=' and spaces inside quotes, a prefix before the record, a
// time with an offset; lines that do not parse whole are skipped.
func TestParseText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		ok   bool
		want record
	}{
		{`time=2026-12-07T19:57:50.904Z level=INFO msg=request component=gateway method=HEAD path=/v2/stable/app/manifests/1.0 route=manifest status=200 bytes=0 duration=1.5ms remote=127.0.0.1:5 subject="zoë \"x\" \\y" repository=stable/app reference=1.0 digest=sha256:aa kind=check`,
			true, record{Msg: "request", Method: "HEAD", Route: "manifest", Status: 200, Subject: `zoë "x" \y`, Repository: "stable/app", Reference: "1.0", Digest: "sha256:aa", Kind: "check"}},
		{`gateway-1  | time=2026-12-07T20:57:50.904+01:00 level=INFO msg=request method=GET route=manifest status=401 bytes=190 message="the token of a@b does not grant pull on channel 'beta' (x=y)" subject=a@b repository=beta/app reference=1.0 kind=denied reason=channel_not_licensed`,
			true, record{Msg: "request", Method: "GET", Route: "manifest", Status: 401, Bytes: 190, Subject: "a@b", Repository: "beta/app", Reference: "1.0", Kind: "denied", Reason: "channel_not_licensed"}},
		{`time=2026-12-07T19:57:50.905Z level=INFO msg="token issued" subject=a@b`, true, record{Msg: "token issued", Subject: "a@b"}},
		{`level=INFO msg=request "odd key"=1 empty="" status=200`, true, record{Msg: "request", Status: 200}},
		{`msg=request status=two`, false, record{}},
		{`msg="unterminated status=200`, false, record{}},
		{`msg=request status=200"x"`, false, record{}},
		{`time=2026-12-07T19:57:50Z =x msg=request`, false, record{}},
		{`Starting the demo stack: make run`, false, record{}},
		{`note: msg=request`, true, record{Msg: "request"}},
	} {
		var got record
		ok := parseLine([]byte(tc.line), &got)
		got.Time = time.Time{}
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s:\n got %v %+v\nwant %v %+v", tc.line, ok, got, tc.ok, tc.want)
		}
	}
	var rec record
	if !parseLine([]byte(`time=2026-12-07T20:57:50.904+01:00 msg=request`), &rec) || !rec.Time.Equal(time.Date(2026, 12, 7, 19, 57, 50, 904e6, time.UTC)) {
		t.Errorf("time: %v", rec.Time)
	}
}

// Checks and refusals: counted from the kind field when the line has one,
// else from the method; refusals listed apart with --refused, and
// mentioned on stderr by the pull report.
func TestChecksAndRefusals(t *testing.T) {
	t.Parallel()
	log := sample + strings.Join([]string{
		// A gateway that writes kind: a re-pull that only checks.
		`{"time":"2026-12-01T10:01:00Z","msg":"request","method":"HEAD","route":"manifest","status":200,"bytes":0,"subject":"carol@example.com","repository":"stable/app","reference":"1.4.2","digest":"` + dg + `","kind":"check"}`,
		`time=2026-12-01T10:01:01Z level=INFO msg=request method=HEAD route=manifest status=200 bytes=0 subject=carol@example.com repository=stable/app reference=1.4.2 kind=check`,
		`time=2026-12-01T10:01:02Z level=INFO msg=request method=HEAD route=manifest status=401 bytes=0 subject=carol@example.com repository=beta/app reference=1.4.2 kind=denied reason=channel_not_licensed`,
		`time=2026-12-01T10:01:03Z level=INFO msg=request method=GET route=manifest status=401 bytes=180 subject=carol@example.com repository=beta/app reference=1.4.2 kind=denied reason=channel_not_licensed`,
	}, "\n") + "\n"
	var out, errb bytes.Buffer
	if code := Run([]string{"--format", "json"}, strings.NewReader(log), &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	var rows []Row
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, r := range rows {
		got += fmt.Sprintf("%s %s pulls=%d checks=%d bytes=%d %s..%s\n", r.Customer, r.Reference, r.Pulls, r.Checks, r.Bytes, r.First.Format("04:05"), r.Last.Format("04:05"))
	}
	want := "alice@example.com 1.4.2 pulls=2 checks=1 bytes=2000 00:10..00:20\n" +
		"bob@example.com " + dg + " pulls=1 checks=0 bytes=507 00:02..00:02\n" +
		"carol@example.com 1.4.2 pulls=0 checks=2 bytes=0 01:00..01:01\n"
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
	if !strings.Contains(errb.String(), "2 manifest requests refused for the token's grants are not listed: --refused lists them") {
		t.Errorf("stderr: %q", errb.String())
	}

	out.Reset()
	errb.Reset()
	Run([]string{"--refused", "--format", "csv"}, strings.NewReader(log), &out, &errb)
	if want := "customer,repository,reference,reason,attempts,first,last\n" +
		"carol@example.com,beta/app,1.4.2,channel_not_licensed,2,2026-12-01T10:01:02Z,2026-12-01T10:01:03Z\n"; out.String() != want || errb.Len() != 0 {
		t.Errorf("--refused:\n%s%s", out.String(), errb.String())
	}
	out.Reset()
	Run([]string{"--refused"}, strings.NewReader(log), &out, &errb)
	if !strings.Contains(out.String(), "carol@example.com  beta/app    1.4.2      channel_not_licensed  2") {
		t.Errorf("--refused table:\n%s", out.String())
	}
}

// The hints say what was read when the report is empty or leaves out.
func TestHints(t *testing.T) {
	t.Parallel()
	text := func(msg, rest string) string {
		return "time=2026-12-01T10:00:00Z level=INFO msg=" + msg + " " + rest + "\n"
	}
	for _, tc := range []struct {
		name, log string
		args      []string
		want      string
	}{
		{"empty", "", nil, "no access records of customers: the input is empty"},
		{"no log lines", "hello\nworld\n", nil, "none of the 2 lines is a log line"},
		{"access log off", text("listening", "addr=:5000") + text(`"token issued"`, "subject=a@b"), nil,
			"the log has 2 lines, none with msg=request (an access line): is access_log on?"},
		{"anonymous only", text("request", "method=GET route=manifest status=401"), nil,
			"1 access lines, none of a read with a valid token"},
		{"no pulls", text("request", "method=GET route=tags status=200 subject=a@b repository=stable/app"), nil,
			"1 access records of customers, no pull or check among them"},
		{"only refused", text("request", "method=GET route=manifest status=401 subject=a@b repository=beta/app kind=denied"), nil,
			"no pull or check among them; 1 refused (--refused lists them)"},
		{"none refused", text("request", "method=GET route=manifest status=200 subject=a@b repository=stable/app"), []string{"--refused"},
			"none refused for the token's grants"},
		{"filtered out", text("request", "method=GET route=manifest status=200 subject=a@b repository=stable/app"), []string{"--customer", "x@y"},
			"nothing matches the filters"},
		{"text report", text("request", "method=GET route=manifest status=200 subject=a@b repository=stable/app"), nil, ""},
	} {
		var out, errb bytes.Buffer
		if code := Run(tc.args, strings.NewReader(tc.log), &out, &errb); code != 0 {
			t.Errorf("%s: exit %d", tc.name, code)
		}
		if (tc.want == "") != (errb.Len() == 0) || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: stderr %q, want %q", tc.name, errb.String(), tc.want)
		}
	}
}
