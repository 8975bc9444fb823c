package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

func newCalibrateCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "calibrate", Short: "Calibrate step-cache policies for a model"}
	var runs, steps, batch int
	var guidance float64
	mag := &cobra.Command{
		Use:   "magcache",
		Short: "Record the residual-magnitude ratios MagCache needs (saved next to the weights)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case runs < 1 || batch < 1 || batch > 64:
				return cachet.Errorf(cachet.CodeInvalidArgument, "--runs must be ≥ 1 and --batch 1…64")
			case steps < 2 || steps > model.MaxSteps:
				return cachet.Errorf(cachet.CodeInvalidArgument, "--steps must be between 2 and %d", model.MaxSteps)
			}
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			profile, err := calibrateMagCache(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance)
			if err != nil {
				return err
			}
			path := stepcache.CalibrationPath(cf.cfg.Weights)
			cals, err := stepcache.LoadCalibrations(path)
			if err != nil {
				return err
			}
			cals["magcache"] = profile
			if err := cals.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (magcache: %d steps, %d runs of %d images)\n", path, steps, runs, batch)
			return nil
		},
	}
	f := mag.Flags()
	f.IntVar(&runs, "runs", 4, "calibration runs (each a batch of random prompts)")
	f.IntVar(&batch, "batch", 8, "images per run")
	f.IntVar(&steps, "steps", 50, "sampler steps (other step counts resample the profile)")
	f.Float64Var(&guidance, "guidance", 4, "guidance scale, as when generating")
	cmd.AddCommand(mag)
	return cmd
}

// calibrateMagCache samples `runs` batches of random prompts (labels for label models) uncached and
// averages the recorded ratios.
func calibrateMagCache(ctx context.Context, weights string, runs, batch, steps int, guidance float64) ([]float64, error) {
	w := model.NewWorker(false)
	defer w.Close()
	var profiles [][]float64
	err := w.Do(ctx, func() error {
		m, _, err := model.Load(weights, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		for r := range runs {
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			req := model.SampleRequest{Seed: int64(r), Steps: steps, Guidance: guidance}
			for range batch {
				if m.Cfg.Cond == model.CondText {
					req.Prompts = append(req.Prompts, dataset.Format(dataset.RandomScene(rng, rng.IntN(dataset.NumClasses))))
				} else {
					req.Labels = append(req.Labels, rng.IntN(m.Cfg.NumClasses))
				}
			}
			rec := stepcache.NewMagRecorder(m.Cfg.Depth)
			req.Cache = rec
			if _, err := m.Sample(ctx, req); err != nil {
				return err
			}
			profiles = append(profiles, rec.Ratios())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stepcache.MeanProfiles(profiles)
}
