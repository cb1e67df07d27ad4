// Package buildinfo says which build a binary is: its version, the commit it
// was built from and the Go version that built it. Every command prints it
// for --version, and both services export it as a build_info metric, so
// that an operator can tell from a running process which source it runs.
//
// The commit comes from the VCS stamp that `go build` writes into a binary
// built inside a git checkout (runtime/debug.ReadBuildInfo; -trimpath keeps
// it), so it needs no linker flags. go build stamps nothing in a git
// worktree (it looks for a .git directory) or with -buildvcs=false; for
// those, make build also sets the commit at link time, used only when the
// stamp is missing. The version may be set at link time as well (make
// build passes `git describe`):
//
//	go build -ldflags "-X github.com/acme/registry-gateway/internal/buildinfo.version=v1.2.3"
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set with -ldflags -X. version, when set, wins over the module version go
// build stamps; commit is used only when the binary carries no VCS stamp.
var version, commit string

// Info describes a build.
type Info struct {
	// Version is the release version: the one set at link time, else the
	// main module's version as go build stamped it, else "(devel)".
	Version string
	// Commit is the VCS revision the binary was built from, with "+dirty"
	// when the checkout had uncommitted changes; "unknown" when the build
	// carries no VCS stamp (go run, -buildvcs=false, no checkout).
	Commit string
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// Read returns the build information of the running binary.
func Read() Info {
	bi, _ := debug.ReadBuildInfo() // nil when the binary carries none
	return fromBuildInfo(bi, version, commit)
}

// fromBuildInfo makes an Info from what the runtime reports and the version
// and commit set at link time.
func fromBuildInfo(bi *debug.BuildInfo, linkedVersion, linkedCommit string) Info {
	info := Info{Version: linkedVersion, Commit: linkedCommit, GoVersion: runtime.Version()}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if bi == nil {
		if info.Version == "" {
			info.Version = "(devel)"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	var revision string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		info.Commit = revision
		if modified {
			info.Commit += "+dirty"
		}
	}
	return info
}

// String is the --version line, without the command's name.
func (i Info) String() string {
	return fmt.Sprintf("version %s, commit %s, %s", i.Version, i.Commit, i.GoVersion)
}

// Print writes the --version line of command to w.
func Print(w io.Writer, command string) {
	fmt.Fprintf(w, "%s %s\n", command, Read())
}

// Collector is a gauge named name (e.g. gateway_build_info), always 1, whose
// labels version, commit and go_version describe the running binary.
func Collector(name string) prometheus.Collector {
	i := Read()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        name,
		Help:        "Always 1; the labels say which build is running: version, commit (VCS revision, +dirty for uncommitted changes) and go_version.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "go_version": i.GoVersion},
	}, func() float64 { return 1 })
}
