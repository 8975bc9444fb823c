package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/auth"
	"github.com/cachetlab/cachet/storage"
)

func newKeysCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Make, list and revoke API keys (stored as a SHA-256; a key is shown once)",
		Args:  cobra.NoArgs,
	}
	var k cachet.NewKey
	create := &cobra.Command{
		Use:   "create",
		Short: "Make an API key for a tenant and print it (the only time it is shown)",
		Example: `  export CACHET_KEY=$(./cachet keys create --tenant acme)
  ./cachet keys create --tenant ops --admin --name "on-call"
  ./cachet keys create --tenant acme --rate-limit 5 --quota-jobs 8`,
		Args: cobra.NoArgs,
		RunE: withKeys(cf, func(cmd *cobra.Command, keys *auth.Keys, _ []string) error {
			_, secret, err := keys.Create(cmd.Context(), k)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		}),
	}
	f := create.Flags()
	f.StringVar(&k.Tenant, "tenant", "", "the tenant the key acts for (lowercase letters, digits, - and _)")
	f.StringVar(&k.Name, "name", "", "a note to tell keys apart")
	f.BoolVar(&k.Admin, "admin", false, "the key sees every tenant's data and /metrics")
	f.Float64Var(&k.Limits.RequestsPerSecond, "rate-limit", 0, "requests a second (0: the server's --rate-limit)")
	f.IntVar(&k.Limits.Burst, "rate-burst", 0, "requests at once above the rate (0: the server's --rate-burst)")
	f.IntVar(&k.Limits.Jobs, "quota-jobs", 0, "model jobs queued or running at once (0: the server's --quota-jobs)")
	f.IntVar(&k.Limits.Subjects, "quota-subjects", 0, "subjects kept (0: the server's --quota-subjects)")
	f.IntVar(&k.Limits.Collections, "quota-collections", 0, "collections kept (0: the server's --quota-collections)")
	f.Int64Var(&k.Limits.StoredBytes, "quota-bytes", 0, "bytes kept in the object store (0: the server's --quota-bytes)")
	_ = create.MarkFlagRequired("tenant")

	var tenant string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: withKeys(cf, func(cmd *cobra.Command, ks *auth.Keys, _ []string) error {
			keys, err := ks.List(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(keys)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTENANT\tPREFIX\tADMIN\tNAME\tCREATED\tREVOKED")
			for _, k := range keys {
				revoked := ""
				if k.RevokedAt != nil {
					revoked = k.RevokedAt.Format(time.DateTime)
				}
				fmt.Fprintf(w, "%s\t%s\t%s…\t%v\t%s\t%s\t%s\n", k.ID, k.Tenant, k.Prefix, k.Admin, k.Name, k.CreatedAt.Format(time.DateTime), revoked)
			}
			return w.Flush()
		}),
	}
	list.Flags().StringVar(&tenant, "tenant", "", "only this tenant's keys")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API key (servers stop accepting it within 5 seconds)",
		Example: `  ./cachet keys revoke 0b6d3c6e-6f1e-4a4e-9f54-3f1f5b8f2f0a`,
		Args:    cobra.ExactArgs(1),
		RunE: withKeys(cf, func(cmd *cobra.Command, keys *auth.Keys, args []string) error {
			return keys.Revoke(cmd.Context(), args[0])
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// withKeys runs a keys subcommand on the keys of --database-url (migrated first).
func withKeys(cf *configFlags, run func(cmd *cobra.Command, keys *auth.Keys, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		db, err := storage.MigrateAndOpen(cmd.Context(), cf.cfg.DatabaseURL)
		if err != nil {
			return err
		}
		defer db.Close()
		return run(cmd, auth.New(db), args)
	}
}
