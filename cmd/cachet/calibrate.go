package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

func newCalibrateCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "calibrate", Short: "Calibrate step-cache policies for a model"}
	var runs, steps, batch int
	var guidance, cleanRenorm float64
	mag := &cobra.Command{
		Use:   "magcache",
		Short: "Record the residual-magnitude ratios MagCache needs (saved next to the weights)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepareCalibration(cf, runs, batch, steps, 2); err != nil {
				return err
			}
			var profiles [][]float64
			err := sampleCalibration(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance, cleanRenorm,
				func(depth int) model.StepCache { return stepcache.NewMagRecorder(depth) },
				func(c model.StepCache) { profiles = append(profiles, c.(*stepcache.MagRecorder).Ratios()) })
			if err != nil {
				return err
			}
			profile, err := stepcache.MeanProfiles(profiles)
			if err != nil {
				return err
			}
			return saveCalibration(cmd, cf.cfg.Weights, "magcache", profile, fmt.Sprintf("%d steps, %d runs of %d images", steps, runs, batch))
		},
	}
	tea := &cobra.Command{
		Use:   "teacache",
		Short: "Fit TeaCache's rescaling polynomial (output change vs modulated-input change; saved next to the weights)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepareCalibration(cf, runs, batch, steps, 6); err != nil {
				return err
			}
			var in, out []float64
			err := sampleCalibration(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance, cleanRenorm,
				func(depth int) model.StepCache { return stepcache.NewTeaRecorder(depth) },
				func(c model.StepCache) {
					rec := c.(*stepcache.TeaRecorder)
					in, out = append(in, rec.In...), append(out, rec.Out...)
				})
			if err != nil {
				return err
			}
			poly, err := stepcache.FitPolynomial(in, out, 4) // TeaCache's degree
			if err != nil {
				return fmt.Errorf("%w (the recorded input changes are too uniform to fit: more --runs or --steps, or a trained model)", err)
			}
			return saveCalibration(cmd, cf.cfg.Weights, "teacache", poly, fmt.Sprintf("polynomial %v from %d step pairs", poly, len(in)))
		},
	}
	profiling := &cobra.Command{
		Use:   "profilingdit",
		Short: "Profile each block's attention to the foreground, for ProfilingDiT (saved next to the weights)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepareCalibration(cf, runs, batch, steps, 2); err != nil {
				return err
			}
			var profiles [][]float64
			var scoreErr error
			err := sampleCalibration(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance, cleanRenorm,
				func(int) model.StepCache { return stepcache.NewProfilingRecorder() },
				func(c model.StepCache) {
					scores, err := c.(*stepcache.ProfilingRecorder).Scores()
					if err != nil {
						scoreErr = err
					}
					profiles = append(profiles, scores)
				})
			if err == nil {
				err = scoreErr
			}
			if err != nil {
				return err
			}
			profile, err := stepcache.MeanProfiles(profiles)
			if err != nil {
				return err
			}
			return saveCalibration(cmd, cf.cfg.Weights, "profilingdit", profile, fmt.Sprintf("foreground scores per block %.2f", profile))
		},
	}
	var clusters, interval, warmup int
	hyca := &cobra.Command{
		Use:   "hyca",
		Short: "Cluster every unit's channels by how they move and pick each cluster's solver, for HyCa (saved next to the weights)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepareCalibration(cf, runs, batch, steps, 4); err != nil {
				return err
			}
			if clusters < 1 || clusters > 16 || interval < 1 || warmup < 0 {
				return cachet.Errorf(cachet.CodeInvalidArgument, "--clusters must be 1…16, --interval ≥ 1 and --warmup ≥ 0")
			}
			rec, err := recordCalibration(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance, cleanRenorm,
				func(depth int) *stepcache.HycaRecorder { return stepcache.NewHycaRecorder(depth) })
			if err != nil {
				return err
			}
			profile, err := rec.Profile(clusters, warmup, interval)
			if err != nil {
				return err
			}
			return saveCalibration(cmd, cf.cfg.Weights, "hyca", profile, stepcache.DescribeHyca(profile))
		},
	}
	hyca.Flags().IntVar(&clusters, "clusters", 3, "channel clusters per unit, each with its own solver")
	hyca.Flags().IntVar(&interval, "interval", 4, "the schedule the solvers are chosen for: steps between full computations")
	hyca.Flags().IntVar(&warmup, "warmup", 2, "the schedule's first steps always computed")
	var threshold float64
	erta := &cobra.Command{
		Use:     "ertacache",
		Short:   "Profile which steps may reuse the stack's residual at one step count, and fit their error models, for ERTACache (saved next to the weights)",
		Example: `  cachet calibrate ertacache --steps 20   # once per step count it will serve`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepareCalibration(cf, runs, batch, steps, 3); err != nil {
				return err
			}
			if threshold <= 0 || threshold > 1 {
				return cachet.Errorf(cachet.CodeInvalidArgument, "--threshold must be in (0, 1]")
			}
			rec, err := recordCalibration(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance, cleanRenorm,
				func(depth int) *stepcache.ErtaRecorder { return stepcache.NewErtaRecorder(depth, threshold) })
			if err != nil {
				return err
			}
			record, err := rec.Record()
			if err != nil {
				return err
			}
			cals, err := stepcache.LoadCalibrations(stepcache.CalibrationPath(cf.cfg.Weights))
			if err != nil {
				return err
			}
			merged, err := stepcache.MergeErtaProfile(cals.Profiles["ertacache"], record)
			if err != nil {
				return err
			}
			return saveCalibration(cmd, cf.cfg.Weights, "ertacache", merged, fmt.Sprintf("%d of %d steps reuse the residual below ℓ1rel %g", rec.Reused(), steps, threshold))
		},
	}
	erta.Flags().Float64Var(&threshold, "threshold", 0.15, "ℓ1rel of the kept residual to a step's below which the step reuses it (λ)")
	bacCmd := &cobra.Command{
		Use:   "bac",
		Short: "Profile each unit's step-to-step output similarity and volatility, for BAC (saved next to the weights)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := prepareCalibration(cf, runs, batch, steps, 2); err != nil {
				return err
			}
			rec, err := recordCalibration(cmd.Context(), cf.cfg.Weights, runs, batch, steps, guidance, cleanRenorm,
				func(depth int) *stepcache.BacRecorder { return stepcache.NewBacRecorder(depth) })
			if err != nil {
				return err
			}
			profile, err := rec.Calibration()
			if err != nil {
				return err
			}
			return saveCalibration(cmd, cf.cfg.Weights, "bac", profile, fmt.Sprintf("similarities over %d steps", steps))
		},
	}
	for _, c := range []*cobra.Command{mag, tea, profiling, hyca, erta, bacCmd} {
		f := c.Flags()
		f.IntVar(&runs, "runs", 4, "calibration runs (each a batch of random prompts)")
		f.IntVar(&batch, "batch", 8, "images per run")
		f.IntVar(&steps, "steps", 50, "sampler steps (magcache: other step counts resample the profile)")
		f.Float64Var(&guidance, "guidance", cachet.DefaultGuidance, "guidance scale, as when generating")
		f.Float64Var(&cleanRenorm, "clean-renorm", cachet.DefaultCleanRenorm, cleanRenormHelp+", as when generating")
	}
	var report string
	speeds := &cobra.Command{
		Use:     "speeds",
		Short:   "Write the speed presets a service-path `cachet bench stepcache` measured next to the weights",
		Example: `  cachet calibrate speeds --report bench/reports/stepcache-service/stepcache.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := bench.LoadStepCacheServiceReport(report)
			if err != nil {
				return err
			}
			id, err := featurecache.WeightsID(cf.cfg.Weights)
			if err != nil {
				return err
			}
			if rep.WeightsID != "" && rep.WeightsID != id {
				return cachet.Errorf(cachet.CodeConflict, "%s measured weights %s, but --weights %s are %s; measure these weights first", report, rep.WeightsID, cf.cfg.Weights, id)
			}
			points := rep.SpeedPresets(report)
			path := stepcache.CalibrationPath(cf.cfg.Weights)
			cals, err := stepcache.LoadCalibrations(path)
			if err != nil {
				return err
			}
			cals.Speeds = points
			if err := cals.Save(path); err != nil {
				return err
			}
			for _, p := range cachet.SpeedPresets {
				if pt, ok := points[p.Name]; ok {
					fmt.Fprintf(cmd.OutOrStdout(), "%-8s ≥ %g dB: %d steps, %s (%.1f dB, %.2f×)\n", p.Name, p.MinPSNR, pt.Steps, pt.Cache, pt.PSNR, pt.SpeedUp)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", path)
			return nil
		},
	}
	speeds.Flags().StringVar(&report, "report", "bench/reports/stepcache-service/stepcache.json", "the service-path report (its JSON)")
	cmd.AddCommand(mag, tea, profiling, hyca, erta, bacCmd, speeds)
	return cmd
}

// prepareCalibration checks a calibration run's flags (at least minSteps steps) and sets libtorch's threads.
func prepareCalibration(cf *configFlags, runs, batch, steps, minSteps int) error {
	switch {
	case runs < 1 || batch < 1 || batch > 64:
		return cachet.Errorf(cachet.CodeInvalidArgument, "--runs must be ≥ 1 and --batch 1…64")
	case steps < minSteps || steps > model.MaxSteps:
		return cachet.Errorf(cachet.CodeInvalidArgument, "--steps must be between %d and %d", minSteps, model.MaxSteps)
	}
	return model.SetNumThreads(cf.cfg.TorchThreads)
}

// saveCalibration stores one policy's calibration in the file kept next to the weights.
func saveCalibration(cmd *cobra.Command, weights, policy string, values []float64, what string) error {
	path := stepcache.CalibrationPath(weights)
	cals, err := stepcache.LoadCalibrations(path)
	if err != nil {
		return err
	}
	cals.SetProfile(policy, values)
	if err := cals.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s: %s)\n", path, policy, what)
	return nil
}

// recordCalibration runs sampleCalibration through one recorder that sees every run.
func recordCalibration[R model.StepCache](ctx context.Context, weights string, runs, batch, steps int, guidance, cleanRenorm float64,
	newRecorder func(depth int) R) (R, error) {
	var rec R
	made := false
	err := sampleCalibration(ctx, weights, runs, batch, steps, guidance, cleanRenorm,
		func(depth int) model.StepCache {
			if !made {
				rec, made = newRecorder(depth), true
			}
			return rec
		}, func(model.StepCache) {})
	return rec, err
}

// sampleCalibration samples `runs` batches of random prompts (labels for label models) uncached, each
// through a fresh recorder, and hands each recorder to done.
func sampleCalibration(ctx context.Context, weights string, runs, batch, steps int, guidance, cleanRenorm float64,
	recorder func(depth int) model.StepCache, done func(model.StepCache)) error {
	w := model.NewWorker(false)
	defer w.Close()
	return w.Do(ctx, func() error {
		m, _, err := model.Load(weights, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		for r := range runs {
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			req := model.SampleRequest{Seed: int64(r), Steps: steps, Guidance: guidance, CleanRenorm: cleanRenorm}
			for range batch {
				if m.Cfg.Cond == model.CondText {
					req.Prompts = append(req.Prompts, scene.Format(scene.RandomScene(rng, rng.IntN(scene.NumClasses))))
				} else {
					req.Labels = append(req.Labels, rng.IntN(m.Cfg.NumClasses))
				}
			}
			rec := recorder(m.Cfg.Depth)
			req.Cache = rec
			if _, err := m.Sample(ctx, req); err != nil {
				return err
			}
			done(rec)
		}
		return nil
	})
}
