package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/model"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the linked runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rt := model.Runtime()
			fmt.Fprintf(cmd.OutOrStdout(), "cachet %s (%s, %s/%s)\nlibtorch: device %s, %d threads\n",
				version, runtime.Version(), runtime.GOOS, runtime.GOARCH, rt.Device, rt.Threads)
			return nil
		},
	}
}
