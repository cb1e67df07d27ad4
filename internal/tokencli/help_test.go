package tokencli

import (
	"strings"
	"testing"
)

// Every command group answers -h, --help and help with its own commands on
// stdout (exit 0), and a bare group names the missing command before its
// usage on stderr (exit 2).
func TestGroupHelp(t *testing.T) {
	t.Parallel()
	groups := []struct {
		args []string // the group's command line
		want []string // what its usage lists
		miss string   // the missing-command line of the bare group
	}{
		{nil, []string{"tokenserver keygen", "tokenserver accounts"}, "tokenserver: missing command"},
		{[]string{"accounts"}, []string{"tokenserver accounts add EMAIL", "tokenserver accounts token add EMAIL", "Exit codes"}, "tokenserver accounts: missing command"},
		{[]string{"accounts", "token"}, []string{"tokenserver accounts token add EMAIL", "token revoke EMAIL [ID]", "token rotate EMAIL [ID]"}, "tokenserver accounts token: missing command (add, revoke, rotate)"},
		{[]string{"accounts", "channels"}, []string{"tokenserver accounts channels list", "channels add NAME [--description TEXT]", "channels remove NAME [--force]", "--create"}, "tokenserver accounts channels: missing command (add, list, remove)"},
	}
	for _, g := range groups {
		for _, h := range []string{"-h", "--help", "-help", "help"} {
			r := runCLI(t, "", nil, append(append([]string{}, g.args...), h)...)
			if r.code != exitOK || r.stderr != "" || strings.Contains(r.stdout, "unknown command") {
				t.Errorf("%v %s: exit %d\nstdout: %s\nstderr: %s", g.args, h, r.code, r.stdout, r.stderr)
			}
			mustContain(t, strings.Join(append(g.args, h), " "), r.stdout, g.want...)
		}
		r := runCLI(t, "", nil, g.args...)
		if r.code != exitUsage || r.stdout != "" {
			t.Errorf("bare %v: exit %d\nstdout: %s", g.args, r.code, r.stdout)
		}
		if first, rest, _ := strings.Cut(r.stderr, "\n"); first != g.miss {
			t.Errorf("bare %v: first line %q, want %q", g.args, first, g.miss)
		} else {
			mustContain(t, strings.Join(g.args, " "), rest, g.want...)
		}
	}

	// `help GROUP` is `GROUP -h`.
	r := runCLI(t, "", nil, "accounts", "help", "token")
	r.want(t, exitOK, "token rotate EMAIL [ID]")
	if strings.Contains(r.stdout, "accounts migrate") {
		t.Errorf("accounts help token shows every command:\n%s", r.stdout)
	}
	runCLI(t, "", nil, "help", "accounts").want(t, exitOK, "tokenserver accounts migrate")

	// An unknown command of a group shows the group's usage.
	runCLI(t, "", nil, "accounts", "help", "channels").want(t, exitOK, "channels remove NAME [--force]")

	r = runCLI(t, "", nil, "accounts", "token", "frob")
	r.want(t, exitUsage, `unknown command "token frob"`, "token rotate EMAIL")
	if strings.Contains(r.stderr, "accounts migrate") {
		t.Errorf("unknown token command shows every command:\n%s", r.stderr)
	}

	// A command's own -h lists its flags, on stderr as the flag package
	// writes it, exit 0.
	for _, args := range [][]string{{"accounts", "add", "-h"}, {"accounts", "token", "add", "--help"}} {
		r := runCLI(t, "", nil, args...)
		r.want(t, exitOK, "usage: tokenserver accounts", "-config")
	}
}

// A missing argument is named in one line before the usage, exit 2.
func TestMissingArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		line  string
		usage string
	}{
		{[]string{"accounts", "add", "--channels", "stable", "-config", "F"}, "tokenserver accounts add: missing e-mail address", "usage: tokenserver accounts add EMAIL --channels"},
		{[]string{"accounts", "add", "a@example.com", "-config", "F"}, "tokenserver accounts add: missing --channels (no channels given)", "usage: tokenserver accounts add EMAIL"},
		{[]string{"accounts", "show"}, "tokenserver accounts show: missing e-mail address", "usage: tokenserver accounts show EMAIL"},
		{[]string{"accounts", "grant"}, "tokenserver accounts grant: missing e-mail address", "usage: tokenserver accounts grant EMAIL CHANNEL..."},
		{[]string{"accounts", "grant", "a@example.com"}, "tokenserver accounts grant: missing channel", "usage: tokenserver accounts grant EMAIL CHANNEL..."},
		{[]string{"accounts", "ungrant", "a@example.com"}, "tokenserver accounts ungrant: missing channel", "usage: tokenserver accounts ungrant EMAIL CHANNEL..."},
		{[]string{"accounts", "expire"}, "tokenserver accounts expire: missing e-mail address", "usage: tokenserver accounts expire EMAIL DATE|never"},
		{[]string{"accounts", "expire", "a@example.com"}, "tokenserver accounts expire: missing date (or never)", "usage: tokenserver accounts expire"},
		{[]string{"accounts", "token", "add"}, "tokenserver accounts token add: missing e-mail address", "usage: tokenserver accounts token add EMAIL"},
		{[]string{"accounts", "token", "revoke"}, "tokenserver accounts token revoke: missing e-mail address", "usage: tokenserver accounts token revoke EMAIL [ID]"},
		{[]string{"accounts", "token", "rotate"}, "tokenserver accounts token rotate: missing e-mail address", "usage: tokenserver accounts token rotate EMAIL [ID]"},
		{[]string{"accounts", "disable"}, "tokenserver accounts disable: missing e-mail address", "usage: tokenserver accounts disable EMAIL"},
		{[]string{"accounts", "enable"}, "tokenserver accounts enable: missing e-mail address", "usage: tokenserver accounts enable EMAIL"},
		{[]string{"accounts", "delete", "--yes"}, "tokenserver accounts delete: missing e-mail address", "usage: tokenserver accounts delete EMAIL --yes"},
		{[]string{"accounts", "import"}, "tokenserver accounts import: missing licence file (licenses.yaml) or export (accounts.json)", "usage: tokenserver accounts import licenses.yaml"},
		{[]string{"accounts", "export"}, "tokenserver accounts export: missing output file (- for standard output, piped)", "usage: tokenserver accounts export FILE|- [--force] [--json]"},
		{[]string{"accounts", "show", "a@example.com", "b@example.com"}, `tokenserver accounts show: unexpected argument "b@example.com"`, "usage: tokenserver accounts show EMAIL"},
		{[]string{"accounts", "migrate", "now"}, `tokenserver accounts migrate: unexpected argument "now"`, "usage: tokenserver accounts migrate"},
		{[]string{"accounts", "channels", "add", "--description", "x"}, "tokenserver accounts channels add: missing channel name", "usage: tokenserver accounts channels add NAME [--description TEXT]"},
		{[]string{"accounts", "channels", "remove", "--force"}, "tokenserver accounts channels remove: missing channel name", "usage: tokenserver accounts channels remove NAME [--force]"},
		{[]string{"accounts", "channels", "list", "x"}, `tokenserver accounts channels list: unexpected argument "x"`, "usage: tokenserver accounts channels list [--json]"},
		{[]string{"accounts", "grant", "a@example.com", "--create"}, "tokenserver accounts grant: missing channel", "usage: tokenserver accounts grant EMAIL CHANNEL... [--create]"},
		{[]string{"healthcheck"}, "tokenserver healthcheck: missing URL", "usage: tokenserver healthcheck URL"},
	} {
		r := runCLI(t, "", nil, tc.args...)
		first, rest, _ := strings.Cut(r.stderr, "\n")
		if r.code != exitUsage || first != tc.line || !strings.Contains(rest, tc.usage) {
			t.Errorf("%v: exit %d, want %d; first line %q, want %q; then the usage %q\nstderr: %s", tc.args, r.code, exitUsage, first, tc.line, tc.usage, r.stderr)
		}
	}
}

// Every accounts command answers -h with its usage line, and every command
// of a group is in the group's usage and in the usage of accounts.
func TestEveryAccountsCommandHelps(t *testing.T) {
	t.Parallel()
	for name := range accountsCommands {
		r := runCLI(t, "", nil, append(append([]string{"accounts"}, strings.Fields(name)...), "-h")...)
		r.want(t, exitOK, "usage: tokenserver accounts "+name+" ", "-config")
		mustContain(t, "accounts usage", accountsUsage, "tokenserver accounts "+name)
		if group, _, ok := strings.Cut(name, " "); ok {
			usage, found := accountsGroups[group]
			if !found {
				t.Errorf("%s: no usage of group %s", name, group)
			}
			mustContain(t, group+" usage", usage, "tokenserver accounts "+name)
		}
	}
}
