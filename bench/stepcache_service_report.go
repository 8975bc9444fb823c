package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/cachetlab/cachet/eval"
)

// The service path's groups.
const (
	GroupText    = "text-only"
	GroupSubject = "with subject"
)

// DefaultMinPSNR is the fidelity (vs the uncached 50-step service images) a default must keep in every
// group: about what 13 steps kept on the sampler path, where class accuracy held.
const DefaultMinPSNR = 35.0

// Report files of the service path (the plots, one per group: StepCacheServicePlot's %s is the group's slug).
const StepCacheServicePlot = "stepcache-pareto-%s.png"

// StepCacheServiceReport is the service-path run.
type StepCacheServiceReport struct {
	Command   string `json:"command"`
	Weights   string `json:"weights"`
	WeightsID string `json:"weights_id"`
	Adapters  string `json:"adapters,omitempty"`
	Model     string `json:"model"`
	Steps     int    `json:"steps"`
	Images    int    `json:"images_per_request"`
	Seed      int64  `json:"seed"`
	Repeats   int    `json:"repeats"`
	Threads   int    `json:"torch_threads"`
	// The served defaults the requests got: detail redraw strength, clean renorm, the policy of a request
	// that names none.
	Detail        float64        `json:"detail"`
	CleanRenorm   float64        `json:"clean_renorm"`
	ServedDefault string         `json:"served_default_cache"`
	Groups        []ServiceGroup `json:"groups"`
	Recommended   Recommendation `json:"recommended"`
	Seconds       float64        `json:"seconds"`
}

// ServiceGroup is one group's results: text-only or with a subject.
type ServiceGroup struct {
	Name     string   `json:"name"`
	Guidance float64  `json:"guidance"` // the served default for the group
	Prompts  []string `json:"prompts"`
	Subjects []int    `json:"subjects,omitempty"` // the test-split item of each prompt
	// Redrawn counts the reference's requests that got the detail redraw (small scenes without a subject).
	Redrawn   int            `json:"redrawn_requests"`
	Reference StepCacheRow   `json:"reference"`
	Rows      []StepCacheRow `json:"rows"`
}

// Recommendation is the setting a request naming neither steps nor policy should get.
type Recommendation struct {
	Label   string    `json:"label"`
	Setting Setting   `json:"setting"`
	MinPSNR float64   `json:"min_psnr_db"`
	SpeedUp []float64 `json:"speed_up"` // per group, in Groups' order
	PSNR    []float64 `json:"psnr_db"`
	Reason  string    `json:"reason"`
}

func (g ServiceGroup) view() *StepCacheReport {
	return &StepCacheReport{Reference: g.Reference, Rows: g.Rows}
}

// beats reports whether row i beats the fewer-steps baseline at its speed-up (a baseline beats itself
// trivially); known is false outside the baselines' range.
func (g ServiceGroup) beats(i int) (beats, known bool) {
	x := g.Rows[i]
	if x.Setting.Baseline() {
		return true, true
	}
	b := g.view().BaselineAt(x.SpeedUp)
	if math.IsNaN(b) {
		return false, false
	}
	return x.PSNR > b, true
}

// Recommend picks the default: the highest speed-up (the smaller of the groups') among the settings that
// keep at least minPSNR in every group and are either fewer-steps baselines or cached settings beating the
// baseline at their speed-up in every group (a cache must earn its place). The uncached reference when
// none qualifies.
func (r *StepCacheServiceReport) Recommend(minPSNR float64) Recommendation {
	if len(r.Groups) == 0 {
		return Recommendation{}
	}
	best, bestSpeed := -1, 1.0
	for i := range r.Groups[0].Rows {
		ok, speed := true, math.Inf(1)
		for _, g := range r.Groups {
			beats, known := g.beats(i)
			ok = ok && beats && known && g.Rows[i].PSNR >= minPSNR
			speed = min(speed, g.Rows[i].SpeedUp)
		}
		if ok && speed > bestSpeed {
			best, bestSpeed = i, speed
		}
	}
	rec := Recommendation{MinPSNR: minPSNR}
	pick := func(g ServiceGroup) StepCacheRow { return g.Reference }
	if best >= 0 {
		pick = func(g ServiceGroup) StepCacheRow { return g.Rows[best] }
	}
	for _, g := range r.Groups {
		rec.SpeedUp = append(rec.SpeedUp, pick(g).SpeedUp)
		rec.PSNR = append(rec.PSNR, pick(g).PSNR)
	}
	x := pick(r.Groups[0])
	rec.Label, rec.Setting = x.Label, x.Setting
	switch {
	case best < 0:
		rec.Reason = fmt.Sprintf("no setting keeps %g dB in every group while matching the fewer-steps baseline", minPSNR)
	case x.Setting.Baseline():
		rec.Reason = fmt.Sprintf("the fastest setting keeping %g dB in every group; no cached setting beats fewer steps there", minPSNR)
	default:
		rec.Reason = fmt.Sprintf("the fastest setting keeping %g dB in every group, and it beats fewer steps at its speed-up", minPSNR)
	}
	return rec
}

// Tables are the summary over both groups, then one table per group.
func (r *StepCacheServiceReport) Tables() []eval.Table {
	sum := eval.Table{Title: "Step caching on the service path: speed-up and PSNR vs the uncached service images"}
	sum.Columns = []string{"setting"}
	for _, g := range r.Groups {
		sum.Columns = append(sum.Columns, g.Name+": speed-up", "PSNR dB", "fewer steps at that speed-up")
	}
	for i := -1; len(r.Groups) > 0 && i < len(r.Groups[0].Rows); i++ {
		var cells []string
		for gi, g := range r.Groups {
			x, b := g.Reference, "—"
			if i >= 0 {
				x, b = g.Rows[i], baselineCell(g, i)
			}
			if gi == 0 {
				cells = append(cells, x.Label)
			}
			cells = append(cells, fmt.Sprintf("%.2f×", x.SpeedUp), fmt.Sprintf("%.1f", x.PSNR), b)
		}
		sum.Rows = append(sum.Rows, cells)
	}
	rec := r.Recommended
	sum.Notes = []string{
		fmt.Sprintf("Every image from generate.Service.Generate with the request POST /v1/generate makes of {prompt, n: %d, seed, steps, cache%s}: "+
			"guidance %s, clean renorm %g and the detail redraw (%g, small scenes without a subject) as served. The first row is the uncached %d-step reference.",
			r.Images, map[bool]string{true: ", subject_id", false: ""}[r.Adapters != ""], r.guidances(), r.CleanRenorm, r.Detail, r.Steps),
		fmt.Sprintf("Speed-up: median wall time over each group's requests of %d interleaved round(s) (settings reversed every other round), same process, libtorch threads %d.",
			r.Repeats, r.Threads),
		"\"N steps\" rows are the baseline every policy must beat; \"policy, N steps\" is the policy at N steps.",
		fmt.Sprintf("Served default today: %s. Recommended default: **%s** (%s).", r.ServedDefault, rec.Label, rec.Reason),
	}
	if r.Command != "" {
		sum.Notes = append(sum.Notes, "Command: `"+r.Command+"`")
	}
	tables := []eval.Table{sum, r.speedTable()}
	for _, g := range r.Groups {
		tables = append(tables, r.groupTable(g))
	}
	return tables
}

func (r *StepCacheServiceReport) guidances() string {
	var parts []string
	for _, g := range r.Groups {
		parts = append(parts, fmt.Sprintf("%g %s", g.Guidance, g.Name))
	}
	return strings.Join(parts, ", ")
}

func baselineCell(g ServiceGroup, i int) string {
	x := g.Rows[i]
	if x.Setting.Baseline() {
		return "—"
	}
	v := g.view().BaselineAt(x.SpeedUp)
	if math.IsNaN(v) {
		return "outside the baselines' range"
	}
	if x.PSNR > v {
		return fmt.Sprintf("%.1f (beaten)", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func (r *StepCacheServiceReport) groupTable(g ServiceGroup) eval.Table {
	t := eval.Table{
		Title: "Service path, " + g.Name,
		Columns: []string{"setting", "compute", "speed-up", "s/request", "PSNR dB", "baseline PSNR at that speed-up",
			"SSIM", "class acc.", "computed / reused / forecast", "extra MiB"},
	}
	for i := -1; i < len(g.Rows); i++ {
		x, b := g.Reference, "—"
		if i >= 0 {
			x, b = g.Rows[i], baselineCell(g, i)
		}
		t.Rows = append(t.Rows, []string{x.Label, fmt.Sprintf("%.2f", x.ComputeFraction), fmt.Sprintf("%.2f×", x.SpeedUp),
			fmt.Sprintf("%.2f", x.MedianSeconds), fmt.Sprintf("%.1f", x.PSNR), b, fmt.Sprintf("%.3f", x.SSIM),
			fmt.Sprintf("%.1f %%", 100*x.ClassAccuracy), fmt.Sprintf("%d / %d / %d", x.Computed, x.Reused, x.Forecast),
			fmt.Sprintf("%.2f", x.ExtraMiB)})
	}
	t.Notes = []string{
		fmt.Sprintf("%d prompts × %d images, guidance %g; %d of the reference's requests got the detail redraw.",
			len(g.Prompts), r.Images, g.Guidance, g.Redrawn),
		"Compute: the sampler's full-step equivalents (draft steps × the policy's compute share, plus the redraw's steps, which are never cached) over the reference's.",
	}
	return t
}

// Write puts the JSON, the markdown and one Pareto plot per group into dir.
func (r *StepCacheServiceReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := eval.WriteJSON(filepath.Join(dir, StepCacheJSON), r); err != nil {
		return err
	}
	if err := eval.WriteMarkdown(filepath.Join(dir, StepCacheMarkdown), r.Tables()...); err != nil {
		return err
	}
	for _, g := range r.Groups {
		pts := g.view().Points()
		if len(pts) == 0 {
			continue
		}
		img, err := eval.ParetoPlot(pts, "wall-clock speed-up (×)", "PSNR vs uncached (dB)",
			fmt.Sprintf("Step caching, service path, %s: speed-up vs fidelity", g.Name))
		if err != nil {
			return err
		}
		if err := eval.WritePNG(filepath.Join(dir, r.PlotFile(g)), img); err != nil {
			return err
		}
	}
	return nil
}

// PlotFile is a group's plot's file name.
func (r *StepCacheServiceReport) PlotFile(g ServiceGroup) string {
	return fmt.Sprintf(StepCacheServicePlot, strings.ReplaceAll(g.Name, " ", "-"))
}

// Summary is the report's tables for the terminal.
func (r *StepCacheServiceReport) Summary() string {
	return strings.TrimSpace(eval.Markdown(r.Tables()...))
}
