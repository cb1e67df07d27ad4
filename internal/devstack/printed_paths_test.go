package devstack

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrintedPathsAbsolute starts the stack the way `make run` does, with
// the repository given as a relative directory, and checks that every
// path a printed command names is absolute and inside that directory:
// pasted from anywhere else, a relative one would name nothing (`skopeo
// copy … oci:data/hello-oci:1.0` failed with lstat …/data). The skopeo and
// operator-command tests run the lines from another directory.
func TestPrintedPathsAbsolute(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dir := copyDeploy(t)
			t.Chdir(filepath.Dir(dir))
			opts := testOptions(filepath.Base(dir))
			opts.NoSeed = true
			m.mod(&opts)
			ctx, cancel := context.WithCancel(context.Background())
			st, err := Start(ctx, opts)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cancel()
				if err := st.Wait(); err != nil {
					t.Errorf("stack stopped with %v", err)
				}
			})
			// As if on LICENSES=sql, for the accounts lines.
			st.AccountsConfig = filepath.Join(st.Root, SQLConfig)

			var paths int
			for _, c := range append(st.Commands(), st.accountsCommands()...) {
				for _, p := range pathsIn(c.Line) {
					paths++
					if !filepath.IsAbs(p) || !strings.HasPrefix(p, dir+string(filepath.Separator)) && p != dir {
						t.Errorf("%s: path %s is not absolute under %s", c.Line, p, dir)
					}
				}
				for _, rel := range []string{" bin/", " data/", ":data/", " certs/", " deploy/", "=bin/", "=certs/"} {
					if strings.Contains(c.Line, rel) {
						t.Errorf("%s: a path relative to the repository (%q)", c.Line, strings.TrimSpace(rel))
					}
				}
			}
			// tokenserver ×3 (twice in the piped line), the oci: layout, 8
			// accounts lines × (cd, tokenserver, -config); over HTTPS the CA
			// a dozen times more.
			if paths < 30 {
				t.Errorf("only %d paths found in the printed commands", paths)
			}
		})
	}
}

// pathsIn returns the file paths a printed command line names: the
// program when it is a path, the words after a flag that takes a file or
// directory, the oci: layout and the files of NAME=path settings.
func pathsIn(line string) []string {
	var out []string
	words := strings.Fields(line)
	for i, w := range words {
		switch {
		case strings.Contains(w, "/tokenserver") && !strings.Contains(w, "://"):
			out = append(out, w)
		case strings.HasPrefix(w, "oci:"):
			p, _, _ := strings.Cut(strings.TrimPrefix(w, "oci:"), ":")
			out = append(out, p)
		case strings.HasPrefix(w, "SSL_CERT_FILE="):
			out = append(out, strings.TrimPrefix(w, "SSL_CERT_FILE="))
		case i > 0 && (words[i-1] == "cd" || words[i-1] == "-config" || words[i-1] == "--cacert" ||
			words[i-1] == "--cert-dir" || words[i-1] == "--src-cert-dir" || words[i-1] == "cp" && !strings.HasPrefix(w, "/etc/docker/")):
			out = append(out, w)
		}
	}
	return out
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"/home/me/registry-gateway/bin/tokenserver": "/home/me/registry-gateway/bin/tokenserver",
		"/Users/me/My Projects/rg":                  "'/Users/me/My Projects/rg'",
		"/tmp/it's":                                 `'/tmp/it'\''s'`,
		"/tmp/$HOME":                                "'/tmp/$HOME'",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}
