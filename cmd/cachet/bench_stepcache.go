package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/model"
)

func newBenchStepCacheCmd(cf *configFlags) *cobra.Command {
	o := bench.DefaultStepCacheOptions()
	so := bench.DefaultStepCacheServiceOptions()
	var path, settings, out string
	var prompts int
	cmd := &cobra.Command{
		Use:   "stepcache",
		Short: "Rank the step-cache policies on the service path (or the bare sampler's): speed-up and PSNR vs uncached, vs fewer steps",
		Long: `--path service (the default) measures what POST /v1/generate runs: every image comes from the generation
service with the served defaults — guidance 6 (4 with a subject), clean renorm, the detail redraw of small
scenes without a subject — for --prompts text-only prompts spread over every class (small and large scenes)
and --subjects test-split items made subjects (their reference caches extracted in-process with --adapters),
each under --subject-prompts scenes of its class; --images per request. Per setting and group: wall-clock
speed-up against the uncached --steps run (median of --repeats interleaved rounds, same process), PSNR and
SSIM against its images, the evaluator's class accuracy, and the recommended default: the fastest setting
keeping 35 dB in both groups among the fewer-steps baselines and the cached settings that beat them.

--path sampler samples --prompts prompts at --steps steps uncached — the reference — with one sampler call
per --batch, then under every setting: PSNR, SSIM, class accuracy, the Fréchet distance to real scenes and
the policy's compute; then --repeats interleaved rounds of one --timing-images request per setting.

Settings are separated by ';': a policy with its parameters ("taylorseer:interval=4,order=2"), "steps=N"
(the baseline every policy must beat: plain sampling with fewer steps) or a policy at fewer steps
("teacache@20"). MagCache and TeaCache read the calibration next to the weights ('cachet calibrate').
Writes stepcache.json, stepcache.md and the Pareto plots into --out.`,
		Example: `  ./cachet bench stepcache --torch-threads 2 --out bench/reports/stepcache-service
  ./cachet bench stepcache --path sampler --torch-threads 2 --out bench/reports/stepcache
  ./cachet bench stepcache --prompts 4 --subjects 2 --repeats 1 --settings "steps=20;teacache;teacache@20"
  ./cachet bench stepcache --preset dit-s/2 --timing-images 1 --settings "fora:interval=3;taylorseer:interval=4,order=2;steps=17"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if o.Preset != "" && !f.Changed("path") {
				path = bench.PathSampler // random weights: the sampler's timing
			}
			if err := checkStepCachePath(cmd, path, o.Preset); err != nil {
				return err
			}
			if settings != "" {
				s, err := bench.ParseSettings(settings)
				if err != nil {
					return err
				}
				o.Settings, so.Settings = s, s
			}
			if f.Changed("prompts") {
				o.Prompts, so.Prompts = prompts, prompts
			}
			so.Weights = o.Weights
			if !f.Changed("adapters") {
				so.Adapters = adaptersPath(so.Weights)
			}
			if !f.Changed("out") && path == bench.PathService {
				out += "-service"
			}
			so.Evaluator, so.DataDir, so.Seed, so.Steps, so.Repeats = o.Evaluator, o.DataDir, o.Seed, o.Steps, o.Repeats
			if !f.Changed("seed") {
				so.Seed = bench.DefaultStepCacheServiceOptions().Seed
			}
			if err := model.SetNumThreads(cf.cfg.TorchThreads); err != nil {
				return err
			}
			o.Threads, so.Threads = model.NumThreads(), model.NumThreads()
			o.Progress, so.Progress = cmd.ErrOrStderr(), cmd.ErrOrStderr()
			command := "cachet " + strings.Join(os.Args[1:], " ")
			if path == bench.PathService {
				rep, err := bench.StepCacheService(cmd.Context(), so)
				if err != nil {
					return err
				}
				rep.Command = command
				if err := rep.Write(out); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), rep.Summary())
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s, %s and the plots into %s (%.0f s)\n", bench.StepCacheJSON, bench.StepCacheMarkdown, out, rep.Seconds)
				return nil
			}
			rep, err := bench.StepCache(cmd.Context(), o)
			if err != nil {
				return err
			}
			rep.Command = command
			if err := rep.Write(out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.Summary())
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s, %s and %s into %s (%.0f s)\n", bench.StepCacheJSON, bench.StepCacheMarkdown, bench.StepCachePlot, out, rep.Seconds)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "path", bench.PathService, "what to measure: service (generation as POST /v1/generate runs it) or sampler (one sampler call, the sampling flags as given)")
	f.StringVar(&o.Weights, "weights", o.Weights, "denoiser weights: a text-conditioned 32×32×1 model ('cachet train base')")
	f.StringVar(&so.Adapters, "adapters", "", "service path: adapter weights trained on --weights (default: adapters.safetensors next to them)")
	f.StringVar(&o.Evaluator, "evaluator", o.Evaluator, "evaluator classifier weights ('cachet train evaluator')")
	f.StringVar(&o.DataDir, "data", dataset.DefaultDir, "Fashion-MNIST directory")
	f.StringVar(&out, "out", "var/bench/stepcache", "report directory (service path: with -service appended unless given)")
	f.IntVar(&prompts, "prompts", so.Prompts, fmt.Sprintf("prompts, spread evenly over the evaluation set (service path: text-only; sampler path default %d)", o.Prompts))
	f.IntVar(&so.Subjects, "subjects", so.Subjects, "service path: test-split subjects (0: no subject group)")
	f.IntVar(&so.SubjectPrompts, "subject-prompts", so.SubjectPrompts, "service path: scenes of its class per subject")
	f.IntVar(&so.Images, "images", so.Images, "service path: n of every request")
	f.Int64Var(&o.Seed, "seed", o.Seed, "seed of the starting noise (service path: of the first request; default 1)")
	f.IntVar(&o.Steps, "steps", o.Steps, "reference steps")
	f.IntVar(&o.Repeats, "repeats", o.Repeats, "interleaved timing rounds")
	f.Float64Var(&o.Guidance, "guidance", o.Guidance, "sampler path: classifier-free guidance scale")
	f.Float64Var(&o.CleanRenorm, "clean-renorm", o.CleanRenorm, "sampler path: "+cleanRenormHelp)
	f.IntVar(&o.Batch, "batch", o.Batch, "sampler path: images per sampler request in the quality pass")
	f.IntVar(&o.TimingImages, "timing-images", o.TimingImages, "sampler path: images per timed request")
	f.StringVar(&o.Preset, "preset", "", "sampler path, timing only, on random weights of a preset (dit-s/2, dit-b/2, dit-l/2, dit-xl/2, fmnist): no quality pass")
	f.StringVar(&settings, "settings", "", "settings to measure, ';'-separated (default: the fewer-steps baselines, and the policies — on the service path also composed with fewer steps)")
	return cmd
}

// checkStepCachePath refuses a path it does not know and, on the service path, the sampler's flags: the
// service samples with the served defaults, and a flag silently ignored would mislead.
func checkStepCachePath(cmd *cobra.Command, path, preset string) error {
	switch path {
	case bench.PathSampler:
		return nil
	case bench.PathService:
	default:
		return cachet.Errorf(cachet.CodeInvalidArgument, "--path must be %q or %q (got %q)", bench.PathService, bench.PathSampler, path)
	}
	if preset != "" {
		return cachet.Errorf(cachet.CodeInvalidArgument, "--preset times random weights on the sampler path; leave --path out or give --path sampler")
	}
	for _, name := range []string{"guidance", "clean-renorm", "batch", "timing-images"} {
		if cmd.Flags().Changed(name) {
			return cachet.Errorf(cachet.CodeInvalidArgument, "--%s applies to --path sampler; the service path samples with the served defaults", name)
		}
	}
	return nil
}
