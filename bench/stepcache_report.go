package bench

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cachetlab/cachet/eval"
)

// Report files `cachet bench stepcache` writes into its output directory.
const (
	StepCacheJSON     = "stepcache.json"
	StepCacheMarkdown = "stepcache.md"
	StepCachePlot     = "stepcache-pareto.png"
)

// BaselineAt is the fewer-steps baseline's PSNR at speed-up x (NaN outside the baselines' range): the bar
// a policy must clear at equal speed-up. The bar is the fewer-steps frontier — the baselines no other is
// both faster and truer than, in order of speed-up — interpolated linearly between neighbours on it.
func (r *StepCacheReport) BaselineAt(x float64) float64 {
	type pt struct{ x, y float64 }
	var pts []pt
	for _, row := range r.Rows {
		if row.Setting.Baseline() {
			pts = append(pts, pt{row.SpeedUp, row.PSNR})
		}
	}
	var front []pt
	for _, p := range pts {
		dominated := false
		for _, q := range pts {
			dominated = dominated || (q.x >= p.x && q.y >= p.y && (q.x > p.x || q.y > p.y))
		}
		if !dominated {
			front = append(front, p)
		}
	}
	slices.SortFunc(front, func(a, b pt) int { return cmp.Compare(a.x, b.x) })
	for i, p := range front {
		switch {
		case p.x == x:
			return p.y
		case i > 0 && front[i-1].x < x && x < p.x:
			a := front[i-1]
			return a.y + (p.y-a.y)*(x-a.x)/(p.x-a.x)
		}
	}
	return math.NaN()
}

func fdCell(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", *v)
}

// Table is the report as one table, sorted as measured.
func (r *StepCacheReport) Table() eval.Table {
	t := eval.Table{
		Title: "Step caching on the default model",
		Columns: []string{"setting", "compute", "speed-up", "s/request", "PSNR dB", "baseline PSNR at that speed-up",
			"SSIM", "class acc.", "FD", "computed / reused / forecast", "extra MiB"},
	}
	row := func(x StepCacheRow, baseline string) []string {
		return []string{x.Label, fmt.Sprintf("%.2f", x.ComputeFraction), fmt.Sprintf("%.2f×", x.SpeedUp),
			fmt.Sprintf("%.2f", x.MedianSeconds), fmt.Sprintf("%.1f", x.PSNR), baseline, fmt.Sprintf("%.3f", x.SSIM),
			fmt.Sprintf("%.1f %%", 100*x.ClassAccuracy), fdCell(x.Frechet),
			fmt.Sprintf("%d / %d / %d", x.Computed, x.Reused, x.Forecast), fmt.Sprintf("%.2f", x.ExtraMiB)}
	}
	if r.Preset != "" {
		return r.timingTable()
	}
	t.Rows = append(t.Rows, row(r.Reference, "—"))
	for _, x := range r.Rows {
		b := "—"
		if !x.Setting.Baseline() {
			if v := r.BaselineAt(x.SpeedUp); !math.IsNaN(v) {
				b = fmt.Sprintf("%.1f", v)
				if x.PSNR > v {
					b += " (beaten)"
				}
			} else {
				b = "outside the baselines' range"
			}
		}
		t.Rows = append(t.Rows, row(x, b))
	}
	t.Notes = []string{
		fmt.Sprintf("%d prompts spread over every class, %d steps, guidance %g, clean renorm %g, libtorch threads %d; the first row is the uncached reference (PSNR capped at %g dB).",
			r.Images, r.Steps, r.Guidance, r.CleanRenorm, r.Threads, eval.MaxPSNR),
		fmt.Sprintf("Speed-up: median wall time of %d interleaved rounds of one %d-image request per setting, same process.", r.Repeats, r.TimingImages),
		fmt.Sprintf("Real scenes of the same prompts: class accuracy %.1f %%, real-vs-real FD %s.", 100*r.RealAccuracy, fdCell(r.RealFrechet)),
		"\"N steps\" rows are the baseline every policy must beat: plain sampling with fewer steps.",
	}
	if r.Command != "" {
		t.Notes = append(t.Notes, "Command: `"+r.Command+"`")
	}
	return t
}

// timingTable is the timing-only run's table (random weights: no fidelity columns).
func (r *StepCacheReport) timingTable() eval.Table {
	t := eval.Table{
		Title:   fmt.Sprintf("Step caching: timing on %s with random weights", r.Preset),
		Columns: []string{"setting", "compute", "speed-up", "s/request", "computed / reused / forecast", "extra MiB"},
	}
	for _, x := range append([]StepCacheRow{r.Reference}, r.Rows...) {
		t.Rows = append(t.Rows, []string{x.Label, fmt.Sprintf("%.2f", x.ComputeFraction), fmt.Sprintf("%.2f×", x.SpeedUp),
			fmt.Sprintf("%.2f", x.MedianSeconds), fmt.Sprintf("%d / %d / %d", x.Computed, x.Reused, x.Forecast), fmt.Sprintf("%.1f", x.ExtraMiB)})
	}
	t.Notes = []string{
		fmt.Sprintf("%s (%s), %d steps, guidance %g, libtorch threads %d; %d-image requests, median of %d interleaved rounds.",
			r.Preset, r.Model, r.Steps, r.Guidance, r.Threads, r.TimingImages, r.Repeats),
		"Random weights: only timing and compute are meaningful (data-dependent policies skip on random features as they would not on a trained model).",
	}
	if r.Command != "" {
		t.Notes = append(t.Notes, "Command: `"+r.Command+"`")
	}
	return t
}

// Points are the settings on the speed-up vs PSNR plane.
func (r *StepCacheReport) Points() []eval.Point {
	var pts []eval.Point
	for _, x := range r.Rows {
		if !math.IsNaN(x.PSNR) && !math.IsInf(x.PSNR, 0) {
			pts = append(pts, eval.Point{Label: x.Label, X: x.SpeedUp, Y: x.PSNR})
		}
	}
	return pts
}

// Write puts the JSON, markdown and Pareto plot into dir.
func (r *StepCacheReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := eval.WriteJSON(filepath.Join(dir, StepCacheJSON), r); err != nil {
		return err
	}
	if err := eval.WriteMarkdown(filepath.Join(dir, StepCacheMarkdown), r.Table()); err != nil {
		return err
	}
	pts := r.Points()
	if len(pts) == 0 || r.Preset != "" {
		return nil
	}
	img, err := eval.ParetoPlot(pts, "wall-clock speed-up (×)", "PSNR vs uncached (dB)",
		fmt.Sprintf("Step caching, %d steps: speed-up vs fidelity", r.Steps))
	if err != nil {
		return err
	}
	return eval.WritePNG(filepath.Join(dir, StepCachePlot), img)
}

// Summary is one line per setting for the terminal.
func (r *StepCacheReport) Summary() string {
	return strings.TrimSpace(r.Table().Markdown())
}
