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
			if len(applied) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "database is up to date")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied migrations %v\n", applied)
			return nil
		},
	}
}
