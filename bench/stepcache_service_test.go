package bench_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/bench"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/stepcache"
)

func TestParseComposedSettings(t *testing.T) {
	tests := []struct {
		in, label string
		baseline  bool
		steps     int
		err       string
	}{
		{"teacache@20", "teacache, 20 steps", false, 20, ""},
		{"fora:interval=2 @ 13", "fora interval=2, 13 steps", false, 13, ""},
		{"none@20", "20 steps", true, 20, ""},
		{"steps=20", "20 steps", true, 20, ""},
		{"teacache", "teacache", false, 0, ""},
		{"teacache@0", "", false, 0, "steps must be an integer"},
		{"teacache@many", "", false, 0, "steps must be an integer"},
		{"magic@20", "", false, 0, "unknown cache policy"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := bench.ParseSettings(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got[0]; s.Label() != tc.label || s.Baseline() != tc.baseline || s.Steps != tc.steps {
				t.Errorf("%+v: label %q, baseline %v; want %q, %v, %d steps", s, s.Label(), s.Baseline(), tc.label, tc.baseline, tc.steps)
			}
		})
	}
	if _, err := bench.ParseSettings(bench.DefaultServiceSettings); err != nil {
		t.Fatalf("the default service settings do not parse: %v", err)
	}
}

// Recommend takes the fastest setting that keeps the floor in every group, and a cached one only where it
// beats fewer steps in every group.
func TestRecommend(t *testing.T) {
	row := func(spec string, speed, psnr float64) bench.StepCacheRow {
		s, err := bench.ParseSettings(spec)
		if err != nil {
			t.Fatal(err)
		}
		return bench.StepCacheRow{Label: s[0].Label(), Setting: s[0], SpeedUp: speed, PSNR: psnr}
	}
	baselines := []bench.StepCacheRow{row("steps=25", 2, 44), row("steps=13", 4, 36), row("steps=10", 5, 32)}
	group := func(extra ...bench.StepCacheRow) bench.ServiceGroup {
		return bench.ServiceGroup{Reference: row("none", 1, eval.MaxPSNR), Rows: append(append([]bench.StepCacheRow{}, baselines...), extra...)}
	}
	tests := []struct {
		name   string
		groups []bench.ServiceGroup
		want   string
	}{
		{"fewer steps win", []bench.ServiceGroup{group(row("teacache", 2.2, 27)), group(row("teacache", 2.3, 42))}, "13 steps"},
		{"a cache beating fewer steps in both groups",
			[]bench.ServiceGroup{group(row("teacache@20", 4.5, 37)), group(row("teacache@20", 4.4, 36))}, "teacache, 20 steps"},
		{"beaten in one group only", []bench.ServiceGroup{group(row("teacache@20", 4.5, 37)), group(row("teacache@20", 4.5, 33))}, "13 steps"},
		{"faster than every baseline: not comparable", []bench.ServiceGroup{group(row("fora:interval=9", 9, 40)), group(row("fora:interval=9", 9, 40))}, "13 steps"},
		{"nothing keeps the floor", []bench.ServiceGroup{{Reference: row("none", 1, eval.MaxPSNR), Rows: []bench.StepCacheRow{row("steps=10", 5, 30)}}}, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &bench.StepCacheServiceReport{Groups: tc.groups}
			rec := r.Recommend(35)
			if rec.Label != tc.want || len(rec.SpeedUp) != len(tc.groups) || rec.Reason == "" {
				t.Errorf("recommended %+v, want %q", rec, tc.want)
			}
		})
	}
}

// The service path on the shipped weights and adapters, small: text-only prompts (small scenes redrawn, a
// large one not) and a subject's, every setting through generate.Service, scored against the uncached run.
func TestStepCacheServicePath(t *testing.T) {
	o := bench.DefaultStepCacheServiceOptions()
	o.Weights, o.Adapters, o.Evaluator = "../weights/base.safetensors", "../weights/adapters.safetensors", "../weights/evaluator.safetensors"
	o.DataDir = datasettest.Dir(t)
	o.Prompts, o.Subjects, o.SubjectPrompts, o.Images, o.Steps, o.Repeats = 3, 1, 2, 1, 6, 2
	var err error
	if o.Settings, err = bench.ParseSettings("steps=3;teacache;fora:interval=2@4"); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.StepCacheService(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Name != bench.GroupText || rep.Groups[1].Name != bench.GroupSubject {
		t.Fatalf("groups %+v", rep.Groups)
	}
	text, subj := rep.Groups[0], rep.Groups[1]
	// SpreadPrompts(3): a large scene, then two small ones; subjects are never redrawn.
	if text.Redrawn != 2 || subj.Redrawn != 0 || len(subj.Subjects) != 2 || text.Guidance != 6 || subj.Guidance != 4 {
		t.Errorf("text: %d redrawn, guidance %g; subject: %d redrawn, guidance %g, subjects %v",
			text.Redrawn, text.Guidance, subj.Redrawn, subj.Guidance, subj.Subjects)
	}
	tests := []struct {
		group   bench.ServiceGroup
		row     int
		compute float64
	}{
		// 6 steps: a small scene's 3-step draft + 2-step redraw; at 3 steps a 1-step draft + 1-step redraw.
		{text, 0, (3.0 + 2 + 2) / (6 + 5 + 5)},
		{subj, 0, 3.0 / 6},
		// FORA interval 2 over 4 steps computes steps 0 and 2: half of 4 of 6 steps.
		{subj, 2, 0.5 * 4 / 6},
	}
	for _, tc := range tests {
		if got := tc.group.Rows[tc.row].ComputeFraction; math.Abs(got-tc.compute) > 1e-9 {
			t.Errorf("%s, %s: compute %v, want %v", tc.group.Name, tc.group.Rows[tc.row].Label, got, tc.compute)
		}
	}
	for _, g := range rep.Groups {
		if ref := g.Reference; ref.PSNR != eval.MaxPSNR || ref.SSIM < 0.9999 || ref.SpeedUp != 1 || ref.ComputeFraction != 1 {
			t.Errorf("%s: reference row %+v, want exact and 1×", g.Name, ref)
		}
		if fora := g.Rows[2]; fora.Label != "fora interval=2, 4 steps" || fora.Reused == 0 {
			t.Errorf("%s: the composed setting's row %+v", g.Name, fora)
		}
		for _, r := range g.Rows {
			if !(r.PSNR > 0 && r.PSNR <= eval.MaxPSNR) || r.MedianSeconds <= 0 || r.SpeedUp <= 0 || r.ClassAccuracy < 0 || r.ClassAccuracy > 1 {
				t.Errorf("%s, %s: %+v", g.Name, r.Label, r)
			}
		}
		// TeaCache's calibration was fitted on 50-step trajectories; 6-step ones change more per step than
		// it covers, so it computes every step rather than reusing on a guess.
		if tea := g.Rows[1]; tea.Label != "teacache" || tea.Reused != 0 || tea.PSNR != eval.MaxPSNR {
			t.Errorf("%s: teacache outside its calibration %+v, want every step computed", g.Name, tea)
		}
	}
	if rep.ServedDefault != cachet.DefaultCachePolicy || rep.Recommended.Label == "" || len(rep.Recommended.PSNR) != 2 {
		t.Errorf("served %q, recommended %+v", rep.ServedDefault, rep.Recommended)
	}
	out := filepath.Join(t.TempDir(), "report")
	if err := rep.Write(out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bench.StepCacheJSON, bench.StepCacheMarkdown, rep.PlotFile(text), rep.PlotFile(subj)} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if md := rep.Summary(); !strings.Contains(md, "with subject: speed-up") || !strings.Contains(md, "Recommended default") {
		t.Errorf("summary:\n%s", md)
	}
}

func TestStepCacheServiceRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*bench.StepCacheServiceOptions)
		err  string
	}{
		{"no prompts at all", func(o *bench.StepCacheServiceOptions) { o.Prompts, o.Subjects = 0, 0 }, "nothing to generate"},
		{"too many images", func(o *bench.StepCacheServiceOptions) { o.Images = 17 }, "--images"},
		{"more steps than the reference", func(o *bench.StepCacheServiceOptions) {
			o.Settings = []bench.Setting{{Cache: stepcache.Config{Name: "fora"}, Steps: 60}}
		}, "more steps"},
		{"missing weights", func(o *bench.StepCacheServiceOptions) { o.Weights = "nowhere.safetensors" }, "cannot read weights"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := bench.DefaultStepCacheServiceOptions()
			tc.edit(&o)
			if _, err := bench.StepCacheService(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}
