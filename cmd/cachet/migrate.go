package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/storage"
)

func newMigrateCmd(cf *configFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			applied, err := storage.Migrate(cmd.Context(), cf.cfg.DatabaseURL)
			if err != nil {
				return err
			}
			if applied.Empty() {
				fmt.Fprintln(cmd.OutOrStdout(), "database is up to date")
				return nil
			}
			if len(applied.River) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "applied job queue migrations %v\n", applied.River)
			}
			if len(applied.Cachet) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "applied migrations %v\n", applied.Cachet)
			}
			return nil
		},
	}
}
