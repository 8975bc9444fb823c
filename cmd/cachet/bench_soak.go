package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
)

func newBenchSoakCmd(cf *configFlags) *cobra.Command {
	o := bench.DefaultSoakOptions()
	var out string
	var growthPercent float64
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Load a running server with generate and classify requests; fail when its RSS or goroutines grow",
		Long: `Sends --generate POST /v1/generate (n = 1, --steps steps, prompts over every scene of every class) and
--classify POST /v1/classify requests (one Fashion-MNIST test image each, zero-shot), interleaved,
--concurrency at a time, to the server at --url. The server's RSS (/proc/PID/status of --pid, so the soak
runs on the server's machine) and goroutines (go_goroutines on /metrics) are read with no request in
flight after the first --warmup requests and at the end, and every --sample-every requests under load.
Failed requests are counted by kind, status and error code. Writes soak.json and soak.md into --out, and
exits non-zero when RSS grew more than --max-rss-growth % after warm-up, goroutines grew by more than
--goroutine-slack, or more than --max-errors requests failed.`,
		Example: `  ./cachet serve --addr 127.0.0.1:18080 &
  ./cachet bench soak --url http://127.0.0.1:18080 --pid $(pgrep -f 'cachet serve') --out bench/reports/soak`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.URL == "" {
				o.URL = "http://" + cf.cfg.Addr
			}
			o.URL = strings.TrimRight(o.URL, "/")
			o.MaxRSSGrowth = growthPercent / 100
			o.Progress = cmd.ErrOrStderr()
			rep, err := bench.Soak(cmd.Context(), o)
			if err != nil {
				return err
			}
			rep.Command = "cachet " + strings.Join(os.Args[1:], " ")
			if err := rep.Write(out); err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), eval.Markdown(rep.Tables()[:2]...))
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %s into %s (%.0f s)\n", bench.SoakJSON, bench.SoakMarkdown, out, rep.Seconds)
			return rep.Check()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "", "the server's base URL (default: http:// and --addr)")
	f.IntVar(&o.PID, "pid", 0, "the server's process id, on this machine (required)")
	f.StringVar(&o.Key, "key", "", "an admin API key (the server's /metrics needs one); CACHET_KEY")
	f.IntVar(&o.Generate, "generate", o.Generate, "generate requests, warm-up included")
	f.IntVar(&o.Classify, "classify", o.Classify, "classify requests, warm-up included")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "requests in flight at once")
	f.IntVar(&o.Warmup, "warmup", o.Warmup, "requests before the baseline RSS and goroutine reading")
	f.IntVar(&o.SampleEvery, "sample-every", o.SampleEvery, "requests between readings under load")
	f.IntVar(&o.Steps, "steps", o.Steps, "sampler steps of a generate request")
	f.StringVar(&o.DataDir, "data", dataset.DefaultDir, "Fashion-MNIST directory (the classify images come from its test split)")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "per-request timeout")
	f.Float64Var(&growthPercent, "max-rss-growth", 100*o.MaxRSSGrowth, "largest RSS growth after warm-up that passes, in %")
	f.IntVar(&o.GoroutineSlack, "goroutine-slack", o.GoroutineSlack, "goroutines the end may hold above the warm-up reading")
	f.IntVar(&o.MaxErrors, "max-errors", o.MaxErrors, "failed requests that still pass")
	f.StringVar(&out, "out", "var/bench/soak", "report directory")
	return cmd
}
