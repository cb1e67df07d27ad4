package tokencli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/license/filebackend"
)

// Exit codes of `accounts` beyond exitOK, exitFail (database or
// configuration trouble) and exitUsage (bad arguments or input: a bad
// channel name, a past date), so that scripts can tell what went wrong.
const (
	exitNotFound = 3
	exitConflict = 4
)

const accountsUsage = `Customer accounts of the licenses.sql backend. Every command takes
-config FILE (the token service's configuration; default $TOKENSERVER_CONFIG)
and --actor NAME (who is recorded in the audit; default the OS user).

Remotely, through the token service's admin API instead of the database:
--server https://tokens.example.com --admin-key-file FILE [--cacert FILE]
(not with -config; the audit records the admin key's name). Every command
works so but migrate, export, import and admin-key, which need the database.

  tokenserver accounts migrate                      create or upgrade the schema
  tokenserver accounts add EMAIL --channels stable,beta [--expires 2027-06-30] [--create]
                                                    new account; prints its API token once
  tokenserver accounts list [--json]
  tokenserver accounts show EMAIL [--json]          channels, tokens, state
  tokenserver accounts grant EMAIL CHANNEL... [--create]
                                                    a channel must exist: --create makes it
  tokenserver accounts ungrant EMAIL CHANNEL...
  tokenserver accounts expire EMAIL DATE|never      change when the licence ends
  tokenserver accounts token add EMAIL [--name NAME]
                                                    another API token
  tokenserver accounts token revoke EMAIL [ID]      ID: id or prefix from show
  tokenserver accounts token rotate EMAIL [ID]      revoke and replace in one step
  tokenserver accounts self-service EMAIL on|off    the customer may create and revoke their own
                                                    API tokens in the web console, or not
  tokenserver accounts sign-in-link EMAIL [--console-url URL] [--ttl 72h]
                                                    a one-time link that signs the customer in to
                                                    the web console; printed once
  tokenserver accounts disable EMAIL                every login refused; tokens and channels kept
  tokenserver accounts enable EMAIL
  tokenserver accounts delete EMAIL --yes
  tokenserver accounts import licenses.yaml         accounts of the file backend
  tokenserver accounts export FILE [--force]        every row, token hashes included (mode 0600)
  tokenserver accounts import FILE                  an export, into a new database: restored exactly
  tokenserver accounts audit [EMAIL] [--json]       who changed what, when
  tokenserver accounts channels list [--json]       the channel catalogue
  tokenserver accounts channels add NAME [--description TEXT]
  tokenserver accounts channels remove NAME [--force]
                                                    --force: also when granted (takes it away)
  tokenserver accounts admin-key add NAME --scope read|write [--expires DATE]
                                                    a key of the admin API; printed once
  tokenserver accounts admin-key list [--json]
  tokenserver accounts admin-key revoke NAME|ID

A group answers -h with its own commands (accounts token -h); a command
answers -h with its flags (accounts add -h).

Exit codes: 0 done, 1 error (configuration, database; with --server also
the admin key refused or read-only, the server unreachable), 2 usage or
invalid input, 3 no such account, token or channel, 4 conflict (exists
already, already in that state, a channel still granted, an import into a
database that differs, with --server an account changed by someone else
meanwhile).
`

// accountsCmd is one run of an accounts command.
type accountsCmd struct {
	*env
	name   string
	fs     *flag.FlagSet
	config *string
	actor  *string
	json   *bool
	// server, keyFile and cacert reach the admin API instead of the
	// database (--server).
	server, keyFile, cacert *string
}

// localOnly are the commands the admin API has no route for, with why:
// they refuse --server.
var localOnly = map[string]string{
	"migrate":          "the schema is changed where the database is; the admin API has no route for it",
	"export":           "the export reads the whole database (token hashes included); the admin API has no route for it",
	"import":           "an import writes the database directly; the admin API has no route for it",
	"admin-key add":    "admin keys are managed where the database is: an admin key cannot make keys",
	"admin-key list":   "admin keys are managed where the database is: an admin key cannot list keys",
	"admin-key revoke": "admin keys are managed where the database is: an admin key cannot revoke keys",
}

type accountsFunc func(context.Context, *accountsCmd, []string) int

var accountsCommands = map[string]accountsFunc{
	"migrate":      accountsMigrate,
	"add":          accountsAdd,
	"list":         accountsList,
	"show":         accountsShow,
	"grant":        accountsGrant,
	"ungrant":      accountsGrant,
	"expire":       accountsExpire,
	"token add":    accountsTokenAdd,
	"token revoke": accountsTokenRevoke,
	"token rotate": accountsTokenRotate,
	"disable":      accountsState,
	"enable":       accountsState,
	"delete":       accountsDelete,
	"import":       accountsImport,
	"export":       accountsExport,
	"audit":        accountsAudit,
	"self-service": accountsSelfService,
	"sign-in-link": accountsSignInLink,

	"channels list":   accountsChannelsList,
	"channels add":    accountsChannelsAdd,
	"channels remove": accountsChannelsRemove,

	"admin-key add":    accountsAdminKeyAdd,
	"admin-key list":   accountsAdminKeyList,
	"admin-key revoke": accountsAdminKeyRevoke,
}

// accountsGroups are the command groups under accounts, with their usage:
// `accounts token -h` answers with the group's own commands.
var accountsGroups = map[string]string{
	"admin-key": adminKeyUsage,
	"token": `API tokens of an account (accounts help lists the other commands):

  tokenserver accounts token add EMAIL [--name NAME]
                                                    another API token; printed once
  tokenserver accounts token revoke EMAIL [ID]      ID: id or prefix from show; needed with several tokens
  tokenserver accounts token rotate EMAIL [ID]      revoke and replace in one step

Every command takes -config FILE (or --server URL --admin-key-file FILE),
--actor NAME and --json; -h shows a command's flags.
`,
	"channels": `The channel catalogue: a grant names one of these channels (accounts help
lists the other commands):

  tokenserver accounts channels list [--json]       name, description, accounts holding it, created
  tokenserver accounts channels add NAME [--description TEXT]
  tokenserver accounts channels remove NAME [--force]
                                                    refused while an account holds it;
                                                    --force takes it from them

accounts add and accounts grant refuse a channel not in the catalogue;
their --create makes it in the same step.

Every command takes -config FILE (or --server URL --admin-key-file FILE),
--actor NAME and --json; -h shows a command's flags.
`,
}

// isHelp reports whether arg asks for help rather than naming a command.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// groupCommands lists the commands of group, for a missing-command line.
func groupCommands(group string) string {
	var names []string
	for name := range accountsCommands {
		if sub, ok := strings.CutPrefix(name, group+" "); ok {
			names = append(names, sub)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// accounts runs `tokenserver accounts …`.
func (e *env) accounts(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(e.stderr, "tokenserver accounts: missing command\n\n%s", accountsUsage)
		return exitUsage
	}
	name, args := args[0], args[1:]
	if isHelp(name) {
		// `accounts help token` is `accounts token -h`.
		if len(args) > 0 {
			if usage, ok := accountsGroups[args[0]]; ok {
				fmt.Fprint(e.stdout, usage)
				return exitOK
			}
		}
		fmt.Fprint(e.stdout, accountsUsage)
		return exitOK
	}
	if usage, ok := accountsGroups[name]; ok {
		switch {
		case len(args) == 0:
			fmt.Fprintf(e.stderr, "tokenserver accounts %s: missing command (%s)\n\n%s", name, groupCommands(name), usage)
			return exitUsage
		case isHelp(args[0]):
			fmt.Fprint(e.stdout, usage)
			return exitOK
		}
		name, args = name+" "+args[0], args[1:]
		if _, ok := accountsCommands[name]; !ok {
			fmt.Fprintf(e.stderr, "tokenserver accounts: unknown command %q\n\n%s", name, usage)
			return exitUsage
		}
	}
	run, ok := accountsCommands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "tokenserver accounts: unknown command %q\n\n%s", name, accountsUsage)
		return exitUsage
	}
	c := &accountsCmd{env: e, name: name, fs: e.newFlagSet("accounts "+name, "[flags]")}
	c.config = c.fs.String("config", e.getenv("TOKENSERVER_CONFIG"), "the token service's configuration `file`")
	c.actor = c.fs.String("actor", "", "who makes the change, for the audit (default: the OS user)")
	c.json = c.fs.Bool("json", false, "print JSON")
	c.server = c.fs.String("server", "", "the token service's admin API `URL` (https://tokens.example.com), instead of -config")
	c.keyFile = c.fs.String("admin-key-file", "", "with --server: the `file` holding the admin key")
	c.cacert = c.fs.String("cacert", "", "with --server: trust only the CAs of this PEM `file`")
	return run(ctx, c, args)
}

// argSpec is what a command takes besides its flags.
type argSpec struct {
	// synopsis follows the command's name in its usage line.
	synopsis string
	// need names the required positional arguments in order, as the
	// missing-argument line names them ("e-mail address").
	need []string
	// optional is how many more positional arguments it takes; -1: any.
	optional int
	// missing, when set, checks the flags once parsed and returns what
	// is missing ("" for nothing), e.g. a required --channels.
	missing func() string
}

// parse parses the flags (anywhere among the arguments) and checks the
// positional arguments against spec: a missing one is named in one line
// before the usage. ok false: stop with code.
func (c *accountsCmd) parse(args []string, spec argSpec) (pos []string, code int, ok bool) {
	c.fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: tokenserver accounts %s %s\n\nflags (-x and --x are the same):\n", c.name, spec.synopsis)
		c.fs.PrintDefaults()
	}
	pos, err := parseArgs(c.fs, args)
	if err != nil {
		return nil, c.usageError(err), false
	}
	var problem string
	switch {
	case len(pos) < len(spec.need):
		problem = "missing " + spec.need[len(pos)]
	case spec.optional >= 0 && len(pos) > len(spec.need)+spec.optional:
		problem = fmt.Sprintf("unexpected argument %q", pos[len(spec.need)+spec.optional])
	case spec.missing != nil:
		if m := spec.missing(); m != "" {
			problem = "missing " + m
		}
	}
	if problem != "" {
		fmt.Fprintf(c.stderr, "tokenserver accounts %s: %s\n\n", c.name, problem)
		c.fs.Usage()
		return nil, exitUsage, false
	}
	if problem := c.remoteProblem(); problem != "" {
		fmt.Fprintf(c.stderr, "tokenserver accounts %s: %s\n", c.name, problem)
		return nil, exitUsage, false
	}
	if *c.server == "" && *c.config == "" {
		fmt.Fprintf(c.stderr, "tokenserver accounts %s: -config FILE is required (or set TOKENSERVER_CONFIG, or use --server URL --admin-key-file FILE)\n", c.name)
		return nil, exitUsage, false
	}
	return pos, 0, true
}

// open loads the configuration and connects to its account database; with
// check, it refuses a schema this binary was not written for.
func (c *accountsCmd) open(ctx context.Context, check bool) (*accounts.DB, error) {
	if c.accountsConfig == nil {
		return nil, errors.New("no loader of the token service's configuration")
	}
	cfg, err := c.accountsConfig(*c.config)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, fmt.Errorf("%s: licenses.sql is not configured (the accounts commands need the sql licence backend)", *c.config)
	}
	db, err := accounts.Open(ctx, cfg, accounts.Options{Clock: c.now})
	if err != nil {
		return nil, err
	}
	if check {
		if err := db.CheckSchema(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// who is the actor recorded in the audit.
func (c *accountsCmd) who() string {
	if *c.actor != "" {
		return *c.actor
	}
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if v := c.getenv(k); v != "" {
			return v
		}
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// fail prints err and returns the exit code of its kind.
func (c *accountsCmd) fail(err error) int {
	fmt.Fprintf(c.stderr, "tokenserver accounts %s: %v\n", c.name, err)
	// What to do next, where the message alone does not say.
	switch {
	case isUnknownChannel(err) && (c.name == "add" || c.name == "grant"):
		fmt.Fprintln(c.stderr, "nothing changed; --create makes the channel in the same step (tokenserver accounts channels -h)")
	case errors.Is(err, accounts.ErrConflict) && c.name == "channels remove":
		fmt.Fprintln(c.stderr, "nothing changed; --force removes it anyway and takes it from them")
	}
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		return exitNotFound
	case errors.Is(err, accounts.ErrConflict):
		return exitConflict
	case errors.Is(err, accounts.ErrInvalid):
		return exitUsage
	}
	return exitFail
}

// do parses args, opens the database and runs fn with the positional
// arguments.
func (c *accountsCmd) do(ctx context.Context, args []string, spec argSpec, fn func(*accounts.DB, []string) error) int {
	pos, code, ok := c.parse(args, spec)
	if !ok {
		return code
	}
	db, err := c.open(ctx, c.name != "migrate")
	if err != nil {
		return c.fail(err)
	}
	defer db.Close()
	if err := fn(db, pos); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// with parses args, opens the account database (-config) or the admin
// API (--server) and runs fn with the positional arguments.
func (c *accountsCmd) with(ctx context.Context, args []string, spec argSpec, fn func(accountStore, []string) error) int {
	pos, code, ok := c.parse(args, spec)
	if !ok {
		return code
	}
	if *c.server != "" {
		s, err := c.remote()
		if err != nil {
			return c.fail(err)
		}
		if err := fn(s, pos); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	db, err := c.open(ctx, true)
	if err != nil {
		return c.fail(err)
	}
	defer db.Close()
	if err := fn(localStore{db}, pos); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// printJSON writes v indented.
func (c *accountsCmd) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func accountsMigrate(ctx context.Context, c *accountsCmd, args []string) int {
	return c.do(ctx, args, argSpec{}, func(db *accounts.DB, _ []string) error {
		applied, err := db.Migrate(ctx, c.who())
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintf(c.stdout, "schema is current (version %d)\n", accounts.SchemaVersion())
			return nil
		}
		s := make([]string, len(applied))
		for i, n := range applied {
			s[i] = strconv.Itoa(n)
		}
		fmt.Fprintf(c.stdout, "schema migrated to version %d (applied %s)\n", accounts.SchemaVersion(), strings.Join(s, ", "))
		return nil
	})
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func accountsAdd(ctx context.Context, c *accountsCmd, args []string) int {
	channels := c.fs.String("channels", "", "comma-separated `channels` the account holds (stable,beta)")
	create := c.fs.Bool("create", false, "create the channels the catalogue lacks instead of refusing them")
	expires := c.fs.String("expires", "never", "last `day` of the licence (2027-06-30, UTC), an RFC 3339 time, or never")
	return c.with(ctx, args, argSpec{synopsis: "EMAIL --channels stable,beta [--expires 2027-06-30] [--create]", need: []string{"e-mail address"}, missing: func() string {
		if len(splitList(*channels)) == 0 {
			return "--channels (no channels given)"
		}
		return ""
	}}, func(db accountStore, pos []string) error {
		exp, err := accounts.ParseExpiry(*expires, c.now())
		if err != nil {
			return err
		}
		acct, token, err := db.Add(ctx, c.who(), pos[0], splitList(*channels), exp, *create)
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				Account accounts.Account `json:"account"`
				Token   string           `json:"token"`
			}{acct, token})
		}
		fmt.Fprintf(c.stdout, "created %s: channels %s, expires %s\n", acct.Email, strings.Join(acct.Channels, ", "), expiryText(acct.Expires))
		c.printToken(acct.Email, token)
		return nil
	})
}

// printToken shows a new API token, the one time it is seen.
func (c *accountsCmd) printToken(email, token string) {
	st := c.style()
	fmt.Fprintf(c.stdout, "\nAPI token (shown only now; hand it to the customer, it is stored as a hash):\n\n    %s\n\n", st.bold(token))
	fmt.Fprintf(c.stdout, "The customer logs in with:  docker login <registry> -u %s   (password: the token)\n", email)
}

func expiryText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return stamp(t)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return stamp(t)
}

func accountsList(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "[--json]"}, func(db accountStore, _ []string) error {
		list, err := db.List(ctx)
		if err != nil {
			return err
		}
		if *c.json {
			if list == nil {
				list = []accounts.Account{}
			}
			return c.printJSON(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(c.stdout, "no accounts (add one: tokenserver accounts add EMAIL --channels stable)")
			return nil
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "EMAIL\tSTATE\tCHANNELS\tEXPIRES\tTOKENS\tCREATED")
		for _, a := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", a.Email, a.State, strings.Join(a.Channels, ","), expiryText(a.Expires), a.ActiveTokens, stamp(a.Created))
		}
		return w.Flush()
	})
}

func accountsShow(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "EMAIL [--json]", need: []string{"e-mail address"}}, func(db accountStore, pos []string) error {
		a, err := db.Show(ctx, pos[0])
		if err != nil {
			return err
		}
		used, err := db.AccountUsage(ctx, a.Email)
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				accounts.Account
				Usage accounts.AccountUsage `json:"usage"`
			}{a, used})
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "account\t%s\n", a.Email)
		fmt.Fprintf(w, "state\t%s\n", a.State)
		fmt.Fprintf(w, "channels\t%s\n", strings.Join(a.Channels, ", "))
		fmt.Fprintf(w, "expires\t%s\n", expiryText(a.Expires))
		fmt.Fprintf(w, "created\t%s\n", stamp(a.Created))
		fmt.Fprintf(w, "first pull\t%s\n", usageText(used.FirstPull))
		fmt.Fprintf(w, "last pull\t%s\n", usageText(used.LastPull))
		fmt.Fprintf(w, "last check\t%s\n", usageText(used.LastCheck))
		if a.SelfServiceTokens {
			fmt.Fprintf(w, "self-service\ttokens: the customer creates and revokes their own in the console\n")
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(c.stdout)
		w = tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TOKEN ID\tPREFIX\tCREATED\tLAST USED\tREVOKED")
		for _, t := range a.Tokens {
			prefix := t.Prefix
			if prefix == "" {
				prefix = "(imported)"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", t.ID, prefix, stamp(t.Created), timeText(t.LastUsed), timeText(t.Revoked))
		}
		return w.Flush()
	})
}

func accountsGrant(ctx context.Context, c *accountsCmd, args []string) int {
	create, synopsis := new(bool), "EMAIL CHANNEL..."
	if c.name == "grant" {
		create = c.fs.Bool("create", false, "create the channels the catalogue lacks instead of refusing them")
		synopsis += " [--create]"
	}
	return c.with(ctx, args, argSpec{synopsis: synopsis, need: []string{"e-mail address", "channel"}, optional: -1}, func(db accountStore, pos []string) error {
		var channels []string
		for _, p := range pos[1:] {
			channels = append(channels, splitList(p)...)
		}
		change := func(ctx context.Context, actor, email string, channels []string) error {
			return db.Grant(ctx, actor, email, channels, *create)
		}
		if c.name == "ungrant" {
			change = db.Ungrant
		}
		if err := change(ctx, c.who(), pos[0], channels); err != nil {
			return err
		}
		a, err := db.Show(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s now holds: %s\n", a.Email, strings.Join(a.Channels, ", "))
		return nil
	})
}

func accountsExpire(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "EMAIL DATE|never", need: []string{"e-mail address", "date (or never)"}}, func(db accountStore, pos []string) error {
		exp, err := accounts.ParseExpiry(pos[1], c.now())
		if err != nil {
			return err
		}
		if err := db.SetExpiry(ctx, c.who(), pos[0], exp); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s expires %s\n", strings.ToLower(pos[0]), expiryText(exp))
		return nil
	})
}

func accountsTokenAdd(ctx context.Context, c *accountsCmd, args []string) int {
	name := c.fs.String("name", "", "which of the customer's systems holds it (ci, prod-cluster); with --server default "+defaultRemoteName)
	return c.with(ctx, args, argSpec{synopsis: "EMAIL [--name NAME]", need: []string{"e-mail address"}}, func(db accountStore, pos []string) error {
		tok, token, err := db.AddToken(ctx, c.who(), pos[0], *name)
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				tokenInfo
				Secret string `json:"token"`
			}{tokenInfo(tok), token})
		}
		fmt.Fprintf(c.stdout, "added token %d (%s) to %s\n", tok.ID, tok.Prefix, strings.ToLower(pos[0]))
		c.printToken(strings.ToLower(pos[0]), token)
		return nil
	})
}

// tokenInfo is accounts.Token with the id under a name that does not clash
// with the secret's in JSON.
type tokenInfo accounts.Token

func accountsTokenRevoke(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "EMAIL [ID]", need: []string{"e-mail address"}, optional: 1}, func(db accountStore, pos []string) error {
		tok, err := db.RevokeToken(ctx, c.who(), pos[0], optional(pos, 1))
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "revoked token %d (%s) of %s: refused from the next login on\n", tok.ID, orImported(tok.Prefix), strings.ToLower(pos[0]))
		return nil
	})
}

func accountsTokenRotate(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "EMAIL [ID]", need: []string{"e-mail address"}, optional: 1}, func(db accountStore, pos []string) error {
		old, created, token, err := db.RotateToken(ctx, c.who(), pos[0], optional(pos, 1))
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				Revoked accounts.Token `json:"revoked"`
				Created accounts.Token `json:"created"`
				Secret  string         `json:"token"`
			}{old, created, token})
		}
		fmt.Fprintf(c.stdout, "revoked token %d (%s); new token %d (%s)\n", old.ID, orImported(old.Prefix), created.ID, created.Prefix)
		c.printToken(strings.ToLower(pos[0]), token)
		return nil
	})
}

func optional(pos []string, i int) string {
	if i < len(pos) {
		return pos[i]
	}
	return ""
}

func orImported(prefix string) string {
	if prefix == "" {
		return "imported"
	}
	return prefix
}

func accountsState(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "EMAIL", need: []string{"e-mail address"}}, func(db accountStore, pos []string) error {
		state := accounts.StateActive
		if c.name == "disable" {
			state = accounts.StateDisabled
		}
		if err := db.SetState(ctx, c.who(), pos[0], state); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s is %s\n", strings.ToLower(pos[0]), state)
		return nil
	})
}

func accountsDelete(ctx context.Context, c *accountsCmd, args []string) int {
	yes := c.fs.Bool("yes", false, "really delete")
	return c.with(ctx, args, argSpec{synopsis: "EMAIL --yes", need: []string{"e-mail address"}}, func(db accountStore, pos []string) error {
		if !*yes {
			return &accounts.Error{Kind: accounts.ErrInvalid, Msg: "delete removes the account and its tokens for good (disable keeps them): add --yes"}
		}
		if err := db.Delete(ctx, c.who(), pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "deleted %s\n", strings.ToLower(pos[0]))
		return nil
	})
}

func accountsImport(ctx context.Context, c *accountsCmd, args []string) int {
	return c.do(ctx, args, argSpec{synopsis: "licenses.yaml|EXPORT.json", need: []string{"licence file (licenses.yaml) or export (accounts.json)"}}, func(db *accounts.DB, pos []string) error {
		if isExport, err := c.restoreExport(ctx, db, pos[0]); isExport {
			return err
		}
		in, err := filebackend.ReadAccounts(pos[0])
		if err != nil {
			return &accounts.Error{Kind: accounts.ErrInvalid, Msg: err.Error()}
		}
		n, err := db.Import(ctx, c.who(), in)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "imported %d accounts from %s (their tokens are unchanged; rotate them to get rgw_ tokens)\n", n, pos[0])
		return nil
	})
}

func accountsAudit(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "[EMAIL] [--json]", optional: 1}, func(db accountStore, pos []string) error {
		entries, err := db.Audit(ctx, optional(pos, 0))
		if err != nil {
			return err
		}
		if *c.json {
			if entries == nil {
				entries = []accounts.AuditEntry{}
			}
			return c.printJSON(entries)
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "WHEN\tWHO\tACTION\tACCOUNT\tDETAIL")
		for _, e := range entries {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", stamp(e.At), e.Actor, e.Action, e.Account, e.Detail)
		}
		return w.Flush()
	})
}

// createOption is the accounts option of --create.
func createOption(create bool) []accounts.GrantOption {
	if create {
		return []accounts.GrantOption{accounts.CreateChannels()}
	}
	return nil
}

func accountsChannelsList(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "[--json]"}, func(db accountStore, _ []string) error {
		list, err := db.Channels(ctx)
		if err != nil {
			return err
		}
		if *c.json {
			if list == nil {
				list = []accounts.Channel{}
			}
			return c.printJSON(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(c.stdout, "no channels (add one: tokenserver accounts channels add stable)")
			return nil
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CHANNEL\tACCOUNTS\tCREATED\tDESCRIPTION")
		for _, ch := range list {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", ch.Name, ch.Accounts, stamp(ch.Created), ch.Description)
		}
		return w.Flush()
	})
}

func accountsChannelsAdd(ctx context.Context, c *accountsCmd, args []string) int {
	description := c.fs.String("description", "", "what the channel holds, for listings (one line)")
	return c.with(ctx, args, argSpec{synopsis: "NAME [--description TEXT]", need: []string{"channel name"}}, func(db accountStore, pos []string) error {
		ch, err := db.AddChannel(ctx, c.who(), pos[0], *description)
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(ch)
		}
		fmt.Fprintf(c.stdout, "created channel %s\n", ch.Name)
		return nil
	})
}

func accountsChannelsRemove(ctx context.Context, c *accountsCmd, args []string) int {
	force := c.fs.Bool("force", false, "remove it also when accounts hold it: it is taken from them")
	return c.with(ctx, args, argSpec{synopsis: "NAME [--force]", need: []string{"channel name"}}, func(db accountStore, pos []string) error {
		holders, err := db.RemoveChannel(ctx, c.who(), pos[0], *force)
		if err != nil {
			return err
		}
		if *c.json {
			if holders == nil {
				holders = []string{}
			}
			return c.printJSON(struct {
				Removed   string   `json:"removed"`
				TakenFrom []string `json:"taken_from"`
			}{pos[0], holders})
		}
		if len(holders) == 0 {
			fmt.Fprintf(c.stdout, "removed channel %s\n", pos[0])
			return nil
		}
		fmt.Fprintf(c.stdout, "removed channel %s; taken from %s\n", pos[0], strings.Join(holders, ", "))
		return nil
	})
}

func accountsSelfService(ctx context.Context, c *accountsCmd, args []string) int {
	return c.with(ctx, args, argSpec{synopsis: "EMAIL on|off", need: []string{"e-mail address", "on or off"}}, func(db accountStore, pos []string) error {
		var on bool
		switch pos[1] {
		case "on":
			on = true
		case "off":
		default:
			return &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("%q is not on or off", pos[1])}
		}
		if err := db.SetSelfServiceTokens(ctx, c.who(), pos[0], on); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: self-service tokens %s\n", strings.ToLower(pos[0]), pos[1])
		return nil
	})
}

func accountsSignInLink(ctx context.Context, c *accountsCmd, args []string) int {
	consoleURL := c.fs.String("console-url", "", "with -config: the console's `URL`, its console.public_url (https://console.example.com/console/)")
	ttl := c.fs.Duration("ttl", 72*time.Hour, "with -config: how long the link is valid")
	return c.with(ctx, args, argSpec{synopsis: "EMAIL [--console-url URL] [--ttl 72h]", need: []string{"e-mail address"}}, func(db accountStore, pos []string) error {
		link, expires, err := db.SignInLink(ctx, c.who(), pos[0], *consoleURL, *ttl)
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				URL     string    `json:"url"`
				Expires time.Time `json:"expires"`
			}{link, expires})
		}
		fmt.Fprintf(c.stdout, "sign-in link for %s (works once, until %s):\n%s\n", strings.ToLower(pos[0]), expires.UTC().Format(time.RFC3339), link)
		return nil
	})
}
