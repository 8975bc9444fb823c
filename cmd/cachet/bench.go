package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/bench"
)

func newBenchCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure Cachet's models",
	}
	cmd.AddCommand(newBenchModelCmd(cf), newBenchStepCacheCmd(cf), newBenchSoakCmd(cf), newBenchBatchCmd(cf), newBenchScaleCmd(cf))
	return cmd
}

func newBenchModelCmd(cf *configFlags) *cobra.Command {
	o := bench.DefaultModelOptions()
	var presets, batches, jsonPath, gogc string
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Time one denoiser step per preset and batch: ms/step, images/s, GFLOP/s vs the matmul peak, optionally vs PyTorch",
		Long: `Time one sampler step (CFG-batched: 2×batch rows when --guidance > 1) of a DiT with random weights,
per preset and batch: the median over --steps timed steps after --warmup, images/s, achieved GFLOP/s
(analytic count) and its fraction of the fp32 matmul peak measured in the same run. With --reference,
bench/reference_step.py (PyTorch eager, same architecture, same batch and threads) is timed step by step
interleaved with the Go steps, and the Go/PyTorch step-time ratio is reported.

Presets: dit-s/2, dit-b/2, dit-l/2, dit-xl/2, tiny, and fmnist (the default model's size).
Fix the thread count for comparable numbers: OMP_NUM_THREADS=1 ./cachet bench model --threads 1 …`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Presets = nil
			for _, p := range strings.Split(presets, ",") {
				if p = strings.TrimSpace(p); p != "" {
					o.Presets = append(o.Presets, p)
				}
			}
			bs, err := bench.ParseBatches(batches)
			if err != nil {
				return err
			}
			o.Batches = bs
			if o.GOGC, err = bench.ParseGOGC(gogc); err != nil {
				return err
			}
			if o.Threads == 0 {
				o.Threads = cf.cfg.TorchThreads
			}
			if o.Threads < 0 {
				return cachet.Errorf(cachet.CodeInvalidArgument, "--threads must be ≥ 0 (got %d)", o.Threads)
			}
			o.Progress = cmd.ErrOrStderr()
			rep, err := bench.Model(cmd.Context(), o)
			if err != nil {
				return err
			}
			rep.Command = "cachet " + strings.Join(os.Args[1:], " ")
			if err := rep.Markdown(cmd.OutOrStdout()); err != nil {
				return err
			}
			if jsonPath != "" {
				if err := rep.WriteJSON(jsonPath); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", jsonPath)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&presets, "preset", "dit-s/2", "comma-separated presets (dit-s/2, dit-b/2, dit-l/2, dit-xl/2, tiny, fmnist)")
	f.StringVar(&batches, "batch", "1,4", "comma-separated batch sizes (images per step)")
	f.IntVar(&o.Steps, "steps", o.Steps, "timed steps per preset and batch")
	f.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed warm-up steps")
	f.IntVar(&o.Threads, "threads", 0, "libtorch intra-op threads for Go and PyTorch (0: --torch-threads, else libtorch's default)")
	f.Float64Var(&o.Guidance, "guidance", o.Guidance, "CFG scale; > 1 batches the unconditional rows (2×batch rows per step)")
	f.IntVar(&o.MatmulN, "matmul-n", o.MatmulN, "size of the fp32 matmul-peak product")
	f.BoolVar(&o.Reference, "reference", false, "also time the PyTorch eager reference (bench/reference_step.py), interleaved")
	f.StringVar(&o.Python, "python", o.Python, "Python interpreter for --reference (needs torch: scripts/reference-env.sh)")
	f.StringVar(&o.RefAttn, "reference-attn", o.RefAttn, "reference attention: matmul (as Cachet's) or sdpa (fused)")
	f.Int64Var(&o.Seed, "seed", o.Seed, "seed of the random weights and inputs")
	f.StringVar(&gogc, "gogc", "", "Go GC settings to time one after the other, e.g. 100,off (off: no GC under a 1 GiB limit unless GOMEMLIMIT); default: the process's GOGC")
	f.StringVar(&jsonPath, "json", "", "also write the report as JSON to this path")
	return cmd
}

func newBenchBatchCmd(cf *configFlags) *cobra.Command {
	o := bench.DefaultBatchOptions()
	var out string
	cmd := &cobra.Command{
		Use:   "batch",
		Short: "Requests/s of the generation service with and without request batching, at a given concurrency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Weights, o.Threads, o.Progress = cf.cfg.Weights, cf.cfg.TorchThreads, cmd.ErrOrStderr()
			rep, err := bench.Batching(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "alone %.2f req/s, batched %.2f req/s (%.2f requests a batch): %.2f×\n",
				rep.Alone.RequestsPerSec, rep.Batched.RequestsPerSec, rep.Batched.MeanBatch, rep.Gain)
			if out == "" {
				return nil
			}
			return rep.Write(out)
		},
	}
	cmd.Flags().IntVar(&o.Requests, "requests", o.Requests, "requests per round")
	cmd.Flags().IntVar(&o.Rounds, "rounds", o.Rounds, "rounds of each setting, interleaved")
	cmd.Flags().IntVar(&o.Concurrency, "clients", o.Concurrency, "clients sending requests back to back")
	cmd.Flags().IntVar(&o.Steps, "steps", o.Steps, "sampler steps per request")
	cmd.Flags().IntVar(&o.BatchImages, "max-batch", o.BatchImages, "images a batch may hold")
	cmd.Flags().StringVar(&out, "out", "", "write report.md and report.json here (e.g. bench/reports/batch)")
	return cmd
}

func newBenchScaleCmd(cf *configFlags) *cobra.Command {
	o := bench.DefaultScaleOptions()
	var out string
	var workers []int
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Throughput, latency, lost and duplicated jobs with 1…N worker processes, then with workers killed mid-run",
		Long: `Starts one API process (serve --worker none) and worker processes of this binary on a scratch database next
to --database-url and a scratch bucket, and drives them over HTTP with closed-loop clients: one run per
--workers count, then a run with --kill-workers workers of which one, chosen at random, is SIGKILLed and
replaced --kills times. Each run reports jobs/s, p50/p95 latency, and from the database the jobs lost and
the results duplicated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Weights, o.DatabaseURL, o.S3, o.Progress, o.Workers = cf.cfg.Weights, cf.cfg.DatabaseURL, cf.cfg.S3, cmd.ErrOrStderr(), workers
			if out != "" {
				o.LogDir = filepath.Join(os.TempDir(), "cachet-scale-logs")
			}
			runs, err := bench.Scale(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), bench.ScaleSummary(runs))
			if out == "" {
				return nil
			}
			return bench.WriteScaleReport(out, o, runs)
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&workers, "workers", o.Workers, "worker counts, one run each")
	f.IntVar(&o.KillWorkers, "kill-workers", o.KillWorkers, "workers in the kill run (0: none)")
	f.IntVar(&o.Kills, "kills", o.Kills, "SIGKILLs during the kill run")
	f.IntVar(&o.Jobs, "jobs", o.Jobs, "jobs per run")
	f.IntVar(&o.Clients, "clients", o.Clients, "jobs in flight")
	f.IntVar(&o.Steps, "steps", o.Steps, "sampler steps per generation")
	f.StringVar(&o.Examples, "examples", o.Examples, "reference images for uploads")
	f.DurationVar(&o.Timeout, "run-timeout", o.Timeout, "limit per run")
	f.StringVar(&out, "out", "", "write report.md and report.json here (e.g. bench/reports/scale)")
	return cmd
}
