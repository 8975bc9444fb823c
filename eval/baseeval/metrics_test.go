package baseeval_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/scene"
)

func TestPromptsAreEverySceneOnce(t *testing.T) {
	ps := baseeval.Prompts(0)
	if len(ps) != baseeval.NumPrompts || baseeval.NumPrompts != 240 {
		t.Fatalf("%d prompts, NumPrompts %d; want 240", len(ps), baseeval.NumPrompts)
	}
	seen := map[string]bool{}
	for _, s := range ps {
		p := scene.Format(s)
		if seen[p] {
			t.Fatalf("prompt %q twice", p)
		}
		seen[p] = true
		back, err := scene.Parse(p)
		if err != nil || back != s {
			t.Fatalf("%q parses to %+v, %v; want %+v", p, back, err, s)
		}
	}
	if got := baseeval.Prompts(7); len(got) != 7 || got[6] != ps[6] {
		t.Errorf("Prompts(7) = %d scenes, not the first 7", len(got))
	}
	if got := baseeval.Prompts(1000); len(got) != 240 {
		t.Errorf("Prompts(1000) = %d scenes, want all 240", len(got))
	}
}

func TestClassFilter(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		want    []int
		wantErr bool
	}{
		{names: nil, want: nil},
		{names: []string{"shirt", "pullover"}, want: []int{2, 6}}, // dataset order, whatever the order given
		{names: []string{"coat", "coat"}, want: []int{4}},
		{names: []string{"jumper"}, wantErr: true},
		{names: []string{"shirt", ""}, wantErr: true},
	} {
		t.Run(strings.Join(tc.names, ","), func(t *testing.T) {
			got, err := baseeval.ClassFilter(tc.names)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if tc.wantErr && !strings.Contains(err.Error(), "pullover") {
				t.Errorf("the error %q does not list the classes", err)
			}
		})
	}
	ps := baseeval.Prompts(0, 2, 6)
	if len(ps) != 48 || ps[0].Class != 2 || ps[47].Class != 6 {
		t.Errorf("Prompts(0, 2, 6) = %d scenes from class %d to %d; want 48 from 2 to 6", len(ps), ps[0].Class, ps[len(ps)-1].Class)
	}
}

// Real renders are the ceiling: image moments must read size, position and inversion back essentially
// perfectly, and the mirror detector must be far above chance.
func TestRealScenesScoreAlmostPerfectly(t *testing.T) {
	js := realJudgements(t, 2, baseeval.RealStream)
	for i := range js {
		js[i].Class = js[i].Scene.Class // no evaluator here: class plumbing only
	}
	m := baseeval.Tally(js)
	t.Logf("real: size %.4f position %.4f inversion %.4f mirror %.4f (%d) all %.4f, N %d",
		m.Size.Accuracy, m.Position.Accuracy, m.Inversion.Accuracy, m.Mirror.Accuracy, m.Mirror.Total, m.All.Accuracy, m.N)
	if m.N != 480 || m.Empty != 0 {
		t.Fatalf("N %d empty %d; want 480, 0", m.N, m.Empty)
	}
	for _, e := range []eval.CounterEntry{m.Size, m.Position, m.Inversion} {
		if e.Accuracy < 0.99 {
			t.Errorf("%s accuracy on real scenes %.4f < 0.99", e.Name, e.Accuracy)
		}
	}
	if m.Size.Total != 480 || m.Position.Total != 400 || m.Class.Accuracy != 1 {
		t.Errorf("totals: size %d (want 480), position %d (want 400: small scenes only), class %.2f (want 1)",
			m.Size.Total, m.Position.Total, m.Class.Accuracy)
	}
	if m.ClassLarge.Total != 80 || m.ClassSmall.Total != 400 || m.ClassLarge.Correct+m.ClassSmall.Correct != m.Class.Correct {
		t.Errorf("class by size: large %d/%d, small %d/%d; want totals 80 and 400 adding up to class's %d",
			m.ClassLarge.Correct, m.ClassLarge.Total, m.ClassSmall.Correct, m.ClassSmall.Total, m.Class.Correct)
	}
	if m.Brightness < 60 || m.Brightness > 220 { // real items' foreground averages about 130-150
		t.Errorf("item brightness of real scenes %.1f, want a mid-grey foreground mean", m.Brightness)
	}
	if m.Mirror.Total != 3*24*2 {
		t.Errorf("mirror scored on %d images; want %d (sandal, sneaker, boot)", m.Mirror.Total, 3*24*2)
	}
	if m.Mirror.Accuracy < 0.9 {
		t.Errorf("mirror detector on real scenes: %.3f; want ≥ 0.9 (chance 0.5)", m.Mirror.Accuracy)
	}
	if len(m.PerClass) != scene.NumClasses {
		t.Fatalf("%d per-class rows", len(m.PerClass))
	}
	for c, cm := range m.PerClass {
		if cm.Large.Total != 8 || cm.Small.Total != 40 {
			t.Errorf("%s: %d large and %d small items, want 8 and 40", cm.Name, cm.Large.Total, cm.Small.Total)
		}
		if (cm.Mirror != nil) != baseeval.IsMirrorClass(c) {
			t.Errorf("%s: mirror row present %v", cm.Name, cm.Mirror != nil)
		}
	}
}

// The detector, over the whole test split under every scene: the mirror classes' means are clearly
// asymmetric and their orientation is read far above chance; the other classes' are not.
func TestMirrorDetectorOnTestSplit(t *testing.T) {
	test, det := data(t)
	for c := range scene.NumClasses {
		a := det.Asymmetry(c)
		if baseeval.IsMirrorClass(c) != (a > 0.2) {
			t.Errorf("%s: asymmetry %.3f, mirror class %v", scene.ClassNames[c], a, baseeval.IsMirrorClass(c))
		}
	}
	for _, c := range baseeval.MirrorClasses {
		right, total := 0, 0
		for i := 0; i < test.Len(); i += 5 { // every fifth item: 200 per class
			if test.Label(i) != c {
				continue
			}
			for _, mir := range []bool{false, true} {
				s := scene.Scene{Class: c, Mirrored: mir, Position: scene.Left}
				img, err := scene.Render(test.Image(i), s)
				if err != nil {
					t.Fatal(err)
				}
				j, err := baseeval.Judge(&img, s, det)
				if err != nil {
					t.Fatal(err)
				}
				total++
				if j.Mirror {
					right++
				}
			}
		}
		acc := float64(right) / float64(total)
		t.Logf("%s: asymmetry %.3f, detector %.3f on %d small renders", scene.ClassNames[c], det.Asymmetry(c), acc, total)
		if acc < 0.85 {
			t.Errorf("%s: detector accuracy %.3f < 0.85", scene.ClassNames[c], acc)
		}
	}
}

func TestEmptyImageIsWrongForEverything(t *testing.T) {
	_, det := data(t)
	var blank [scene.CanvasPixels]uint8
	for _, s := range []scene.Scene{{Class: 7, Large: true}, {Class: 9, Position: scene.Center, Mirrored: false}} {
		j, err := baseeval.Judge(&blank, s, det)
		if err != nil {
			t.Fatal(err)
		}
		j.Class = s.Class // even a lucky evaluator guess does not count
		if !j.Observed.Empty || j.Size || j.Position || j.Inversion || j.Mirror || j.ClassCorrect() {
			t.Errorf("blank canvas for %q judged %+v", scene.Format(s), j)
		}
		m := baseeval.Tally([]baseeval.Judgement{j})
		if m.Empty != 1 || m.Class.Accuracy != 0 || m.All.Accuracy != 0 {
			t.Errorf("tally of a blank image: %+v", m)
		}
	}
}

func TestReportWritesValidFiles(t *testing.T) {
	real := realJudgements(t, 1, baseeval.RealStream)
	gen := realJudgements(t, 1, baseeval.BaselineStream) // stands in for generated images
	for i := range gen {
		gen[i].Class = gen[i].Scene.Class
		if i%3 == 0 {
			gen[i].Class = (gen[i].Scene.Class + 1) % scene.NumClasses
		}
		real[i].Class = real[i].Scene.Class
	}
	fdv, rr := 12.5, 0.75
	cfg := baseeval.RunConfig{Weights: "w.safetensors", WeightsSHA256: strings.Repeat("ab", 32), Model: "DiT test",
		Evaluator: "e.safetensors", Steps: 50, Guidance: 4, GuidanceRescale: 0.7, Seeds: 1, Prompts: 240, N: 240, Batch: 40}
	r := baseeval.NewReport(cfg, baseeval.Tally(gen), baseeval.Tally(real), baseeval.Frechet{GeneratedVsReal: &fdv, RealVsReal: &rr, N: 240, Dims: 256})
	dir := filepath.Join(t.TempDir(), "nested", "out")
	if err := r.Write(dir, baseeval.SampleGrid(gen, real, 240)); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, baseeval.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back baseeval.Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if back.Generated.Class.Total != 240 || math.Abs(back.Generated.Class.Accuracy-2.0/3) > 1e-9 ||
		back.Config.WeightsSHA256 != cfg.WeightsSHA256 || back.Config.GuidanceRescale != 0.7 || *back.Frechet.GeneratedVsReal != fdv || back.Bars.ClassMet {
		t.Errorf("report.json round trip: %+v", back)
	}
	if len(back.MirrorClasses) != 3 || len(back.Real.PerClass) != 10 {
		t.Errorf("mirror classes %v, %d per-class rows", back.MirrorClasses, len(back.Real.PerClass))
	}

	md, err := os.ReadFile(filepath.Join(dir, baseeval.MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| metric", "| generated", "| real ceiling", "| bar", "66.7 % (160/240)", "≥ 85 %: **not met**",
		"≥ 95 %: met", "12.50 (vs real)", "0.75 (real vs real split)", "| sneaker", "### Per class",
		"50 steps, guidance 4, rescale φ 0.7"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	if string(md) != r.Markdown() {
		t.Error("report.md differs from Markdown()")
	}

	f, err := os.ReadFile(filepath.Join(dir, baseeval.SamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatalf("samples.png: %v", err)
	}
	// 40 generated + 40 real tiles, 10 a row, 128 px each plus gaps and labels.
	if b := img.Bounds(); b.Dx() != 2+10*130 || b.Dy() < 8*130 {
		t.Errorf("samples.png is %v", b)
	}
}
