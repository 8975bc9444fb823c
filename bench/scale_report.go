package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteScaleReport puts report.md and report.json in dir.
func WriteScaleReport(dir string, o ScaleOptions, runs []ScaleRun) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]any{"options": o, "runs": runs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Scale on loopback\n\n")
	fmt.Fprintf(&b, "One API process (`cachet serve --worker none`) and worker processes (`cachet worker --torch-threads 1 --concurrency %d`), "+
		"one Postgres and one S3 server on the same machine; %d closed-loop clients submit %d jobs each run (async, then the job's event stream): "+
		"7 in 10 one-image generations over %d prompts, 1 a stored two-image generation, 1 a personalized generation, 1 a subject upload; %d steps. "+
		"Latency is from submission to the last event. Lost: not succeeded at the end; duplicated: a stored generation with more rows than images "+
		"or an upload with more than one subject; rerun: jobs a second worker took.\n\n",
		o.Concurrency, o.Clients, o.Jobs, len(BatchPrompts), o.Steps)
	fmt.Fprintf(&b, "| workers | SIGKILLs | jobs/s | vs 1 worker | p50 ms | p95 ms | succeeded | lost | duplicated | rerun | CPU s: API / workers / wall s |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	var one float64
	for _, r := range runs {
		if r.Workers == 1 && r.Kills == 0 {
			one = r.JobsPerSec
		}
	}
	for _, r := range runs {
		ratio := "–"
		if one > 0 {
			ratio = fmt.Sprintf("%.2f×", r.JobsPerSec/one)
		}
		fmt.Fprintf(&b, "| %d | %d | %.2f | %s | %.0f | %.0f | %d / %d | %d | %d | %d | %.0f / %.0f / %.0f |\n",
			r.Workers, r.Kills, r.JobsPerSec, ratio, r.P50MS, r.P95MS, r.Succeeded, r.Jobs, r.Lost, r.Duplicated, r.Rerun,
			r.APICPUSeconds, r.WorkerCPUSeconds, r.Seconds)
	}
	fmt.Fprintf(&b, "\nReproduce (services up, about %d minutes): `cachet bench scale --out bench/reports/scale`.\n", len(runs)*3)
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}
