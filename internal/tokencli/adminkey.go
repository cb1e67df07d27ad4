package tokencli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/acme/registry-gateway/internal/accounts"
)

// adminKeyUsage is the usage of the admin-key group.
const adminKeyUsage = `Admin API keys: who may use the token service's admin API (admin.listen),
sent as "Authorization: Bearer KEY" (accounts help lists the other commands):

  tokenserver accounts admin-key add NAME --scope read|write [--expires 2027-06-30]
                                                    new key; printed once, stored as a hash
  tokenserver accounts admin-key list [--json]      name, scope, prefix, created, expires, last used
  tokenserver accounts admin-key revoke NAME|ID     refused from the next request on

NAME is the actor the admin audit records for every change the key makes.

Every command takes -config FILE, --actor NAME and --json; -h shows a command's flags.
`

func accountsAdminKeyAdd(ctx context.Context, c *accountsCmd, args []string) int {
	scope := c.fs.String("scope", "", "what the key may do: read (look only) or write (also change)")
	expires := c.fs.String("expires", "never", "last `day` the key works (2027-06-30, UTC), an RFC 3339 time, or never")
	return c.do(ctx, args, argSpec{synopsis: "NAME --scope read|write [--expires 2027-06-30]", need: []string{"key name"}, missing: func() string {
		if *scope == "" {
			return "--scope (read or write)"
		}
		return ""
	}}, func(db *accounts.DB, pos []string) error {
		exp, err := accounts.ParseExpiry(*expires, c.now())
		if err != nil {
			return err
		}
		k, key, err := db.AddAdminKey(ctx, c.who(), pos[0], *scope, exp)
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				accounts.AdminKey
				Key string `json:"key"`
			}{k, key})
		}
		fmt.Fprintf(c.stdout, "created admin key %s (%s): scope %s, expires %s\n", k.Name, k.Prefix, k.Scope, expiryText(k.Expires))
		st := c.style()
		fmt.Fprintf(c.stdout, "\nAdmin key (shown only now; it is stored as a hash):\n\n    %s\n\n", st.bold(key))
		fmt.Fprintln(c.stdout, `Send it as:  Authorization: Bearer <key>`)
		return nil
	})
}

func accountsAdminKeyList(ctx context.Context, c *accountsCmd, args []string) int {
	return c.do(ctx, args, argSpec{synopsis: "[--json]"}, func(db *accounts.DB, _ []string) error {
		list, err := db.AdminKeys(ctx)
		if err != nil {
			return err
		}
		if *c.json {
			if list == nil {
				list = []accounts.AdminKey{}
			}
			return c.printJSON(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(c.stdout, "no admin keys (add one: tokenserver accounts admin-key add crm --scope write)")
			return nil
		}
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tSCOPE\tPREFIX\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
		for _, k := range list {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Scope, k.Prefix, stamp(k.Created), expiryText(k.Expires), timeText(k.LastUsed), timeText(k.Revoked))
		}
		return w.Flush()
	})
}

func accountsAdminKeyRevoke(ctx context.Context, c *accountsCmd, args []string) int {
	return c.do(ctx, args, argSpec{synopsis: "NAME|ID", need: []string{"key name or id"}}, func(db *accounts.DB, pos []string) error {
		k, err := db.RevokeAdminKey(ctx, c.who(), pos[0])
		if err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(k)
		}
		fmt.Fprintf(c.stdout, "revoked admin key %s (%s): refused from the next request on\n", k.Name, k.Prefix)
		return nil
	})
}
