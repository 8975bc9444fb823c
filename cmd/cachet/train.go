package main

import (
	"github.com/spf13/cobra"
)

func newTrainCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train Cachet's models (base denoiser, evaluator, adapters, classifier features)",
	}
	cmd.AddCommand(newTrainBaseCmd(cf), newTrainEvaluatorCmd(cf), newTrainAdaptersCmd(cf), newTrainFeaturesCmd(cf))
	return cmd
}
