package buildinfo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	stamped := func(version string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "example.com/m", Version: version}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name                        string
		bi                          *debug.BuildInfo
		linkedVersion, linkedCommit string
		want                        Info
	}{
		{"clean checkout", stamped("v1.2.3", "vcs.revision", rev, "vcs.modified", "false"), "", "",
			Info{Version: "v1.2.3", Commit: rev, GoVersion: "go1.99.1"}},
		{"dirty checkout", stamped("v1.2.4-0.20261207-0123456789ab+dirty", "vcs.revision", rev, "vcs.modified", "true"), "", "",
			Info{Version: "v1.2.4-0.20261207-0123456789ab+dirty", Commit: rev + "+dirty", GoVersion: "go1.99.1"}},
		{"version set at link time", stamped("(devel)", "vcs.revision", rev), "v2.0.0", "",
			Info{Version: "v2.0.0", Commit: rev, GoVersion: "go1.99.1"}},
		{"the stamp wins over a linked commit", stamped("v1.2.3", "vcs.revision", rev), "", "fedcba",
			Info{Version: "v1.2.3", Commit: rev, GoVersion: "go1.99.1"}},
		{"linked commit without a stamp", stamped("(devel)"), "v2.0.0-dirty", "fedcba+dirty",
			Info{Version: "v2.0.0-dirty", Commit: "fedcba+dirty", GoVersion: "go1.99.1"}},
		{"no VCS stamp", stamped(""), "", "",
			Info{Version: "(devel)", Commit: "unknown", GoVersion: "go1.99.1"}},
		{"no build info", nil, "", "",
			Info{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}},
	} {
		if got := fromBuildInfo(tc.bi, tc.linkedVersion, tc.linkedCommit); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestPrint(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	Print(&b, "gateway")
	i := Read()
	want := "gateway version " + i.Version + ", commit " + i.Commit + ", " + runtime.Version() + "\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// TestBinariesPrintVersion builds every command as make build does
// (-trimpath, the version set with -ldflags -X) and runs `--version` and
// `version` on each: the commit is the checkout's HEAD. In a plain checkout
// go build stamps it (no linker flag for it); in a git worktree, where go
// build stamps nothing, it is set at link time as make build does.
func TestBinariesPrintVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four binaries")
	}
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) (string, bool) {
		cmd := exec.CommandContext(t.Context(), "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	head, ok := git("rev-parse", "HEAD")
	if !ok {
		t.Skip("not a git checkout (or no git): go build stamps no commit")
	}
	status, _ := git("status", "--porcelain")
	commit := head
	if status != "" {
		commit += "+dirty"
	}

	bin := t.TempDir()
	const version = "v9.9.9-buildinfo-test"
	const pkg = "github.com/acme/registry-gateway/internal/buildinfo"
	ldflags := "-X " + pkg + ".version=" + version
	vcs := "-buildvcs=true" // whatever GOFLAGS says
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		t.Log("git worktree: go build stamps no commit here; setting it at link time, as make build does")
		ldflags += " -X " + pkg + ".commit=" + commit
		vcs = "-buildvcs=auto"
	}
	// go test puts its own toolchain first in PATH.
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", vcs, "-ldflags", ldflags,
		"-o", bin+string(filepath.Separator), "./cmd/tokenserver", "./cmd/gateway", "./cmd/devstack", "./cmd/registry")
	build.Dir = root
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, name := range []string{"tokenserver", "gateway", "devstack", "registry"} {
		forms := [][]string{{"--version"}, {"-version"}}
		if name != "registry" { // the only command without subcommands
			forms = append(forms, []string{"version"})
		}
		for _, args := range forms {
			cmd := exec.CommandContext(t.Context(), filepath.Join(bin, name+exe()), args...)
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("%s %v: %v", name, args, err)
				continue
			}
			want := name + " version " + version + ", commit " + commit + ", " + runtime.Version() + "\n"
			if string(out) != want {
				t.Errorf("%s %v:\n got %q\nwant %q", name, args, out, want)
			}
		}
	}
}

func exe() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}
