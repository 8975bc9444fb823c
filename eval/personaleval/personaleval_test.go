package personaleval_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/eval/personaleval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

func testSet(t *testing.T) *dataset.Set {
	t.Helper()
	set, err := dataset.Load(datasettest.Dir(t), dataset.Test)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestSubjectsAreReproducibleAndCoverClasses(t *testing.T) {
	set := testSet(t)
	a, err := personaleval.Subjects(set, 20, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := personaleval.Subjects(set, 20, 3, 1)
	c, _ := personaleval.Subjects(set, 20, 3, 2)
	seen := map[int]bool{}
	for j, s := range a {
		if s.Class != j%scene.NumClasses || set.Label(s.Index) != s.Class || len(s.Scenes) != 3 {
			t.Fatalf("subject %d: class %d (item label %d), %d scenes", j, s.Class, set.Label(s.Index), len(s.Scenes))
		}
		if s.Index != b[j].Index || s.Scenes[2] != b[j].Scenes[2] {
			t.Fatalf("subject %d differs between two runs with the same seed", j)
		}
		if seen[s.Index] {
			t.Fatalf("item %d chosen twice", s.Index)
		}
		seen[s.Index] = true
		for _, sc := range s.Scenes {
			if sc.Class != s.Class {
				t.Fatalf("subject %d has a scene of class %d", j, sc.Class)
			}
		}
	}
	same := 0
	for j := range a {
		if a[j].Index == c[j].Index {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("another seed chose the same subjects")
	}
	if _, err := personaleval.Subjects(set, 0, 1, 1); err == nil {
		t.Fatal("accepted zero subjects")
	}
}

// oracleAndOthers renders 10 subjects under large scenes (every other one inverted) and de-renders them:
// the oracle, exact; others are each the next subject's item. A stand-in feature: the item's pixels.
func oracleAndOthers(t *testing.T) (scenes []scene.Scene, refs, oracle, others personaleval.Scored) {
	t.Helper()
	subjects, err := personaleval.Subjects(testSet(t), 10, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range subjects {
		s := &subjects[i]
		sc := scene.Scene{Class: s.Class, Large: true, Inverted: i%2 == 0}
		img, err := scene.Render(&s.Item, sc)
		if err != nil {
			t.Fatal(err)
		}
		back, err := scene.Derender(&img, sc)
		if err != nil {
			t.Fatal(err)
		}
		other := subjects[(i+1)%len(subjects)].Item
		scenes = append(scenes, sc)
		refs.Items, refs.Features = append(refs.Items, &s.Item), append(refs.Features, pixels(&s.Item))
		oracle.Items, oracle.Features = append(oracle.Items, &back), append(oracle.Features, pixels(&back))
		others.Items, others.Features = append(others.Items, &other), append(others.Features, pixels(&other))
	}
	return scenes, refs, oracle, others
}

// The oracle's identity is exact for large scenes; another item of the same class scores lower.
func TestIdentityOfOracleAndOtherItems(t *testing.T) {
	_, refs, o, others := oracleAndOthers(t)
	oracle := personaleval.IdentityOf(o.Items, refs.Items, o.Features, refs.Features)
	if math.Abs(oracle.Cosine-1) > 1e-9 || math.Abs(oracle.SSIM-1) > 1e-9 || oracle.N != 10 {
		t.Fatalf("large-scene oracle: %+v, want exactly 1", oracle)
	}
	other := personaleval.IdentityOf(others.Items, refs.Items, others.Features, refs.Features)
	if !(other.Cosine < 0.95 && other.SSIM < 0.6) {
		t.Fatalf("other items scored %+v", other)
	}
	if g := personaleval.GapClosed(0.8, 0.6, 1.0); math.Abs(g-0.5) > 1e-12 {
		t.Fatalf("gap closed %v, want 0.5", g)
	}
	if g := personaleval.GapClosed(0.8, 0.6, 0.6); !math.IsNaN(g) {
		t.Fatalf("gap closed with no gap: %v", g)
	}
}

// Identity by scene splits the images by scene kind: "adapted" images that are the oracle on inverted
// scenes and another item elsewhere close the whole gap on inverted scenes and none of it elsewhere.
func TestIdentityByScene(t *testing.T) {
	scenes, refs, oracle, others := oracleAndOthers(t)
	adapted := personaleval.Scored{}
	for i, s := range scenes {
		src := others
		if s.Inverted {
			src = oracle
		}
		adapted.Items, adapted.Features = append(adapted.Items, src.Items[i]), append(adapted.Features, src.Features[i])
	}
	got := map[string]personaleval.SceneIdentity{}
	for _, s := range personaleval.IdentityByScene(scenes, refs, adapted, others, oracle) {
		got[s.Kind] = s
	}
	for _, tc := range []struct {
		kind string
		n    int
		gap  float64
	}{{"large", 10, math.NaN()}, {"inverted", 5, 1}, {"not inverted", 5, 0}, {"not mirrored", 10, math.NaN()}} {
		t.Run(tc.kind, func(t *testing.T) {
			s, ok := got[tc.kind]
			if !ok || s.Adapted.N != tc.n || s.Oracle.N != tc.n {
				t.Fatalf("%+v, want %d images", s, tc.n)
			}
			if math.IsNaN(tc.gap) {
				return
			}
			for _, g := range []personaleval.Num{s.GapClosedCosine, s.GapClosedSSIM} {
				if math.Abs(float64(g)-tc.gap) > 1e-9 {
					t.Errorf("gap closed %v, want %v", g, tc.gap)
				}
			}
		})
	}
	for _, absent := range []string{"small", "small, centred", "small, off-centre", "mirrored"} {
		if _, ok := got[absent]; ok {
			t.Errorf("kind %q reported with no images", absent)
		}
	}
}

func pixels(p *[scene.ItemPixels]uint8) []float64 {
	out := make([]float64, len(p))
	for i, v := range p {
		out[i] = float64(v)
	}
	return out
}

// One tiny run end to end on random weights: a scene-vocabulary base, adapters saved for it, the
// repository's evaluator.
func TestRunEndToEndTinyModel(t *testing.T) {
	evaluator := filepath.Join("..", "..", "weights", "evaluator.safetensors")
	if _, err := os.Stat(evaluator); err != nil {
		t.Skip("weights/evaluator.safetensors is not in this checkout")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.safetensors")
	cfg := model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 8, Width: 32, Depth: 2, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(), MaxWords: 10, TextWidth: 16, TextDepth: 1}
	w := model.NewWorker(false)
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(2); err != nil {
			return err
		}
		m, err := model.New(cfg, model.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Randomize(0.1); err != nil {
			return err
		}
		return m.Save(base, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	id, err := featurecache.WeightsID(base)
	if err != nil {
		t.Fatal(err)
	}
	ad := filepath.Join(dir, "adapters.safetensors")
	err = w.Do(context.Background(), func() error {
		a, err := model.NewAdapters(cfg, model.AdapterConfig{Blocks: []int{1}, Inner: 16, Heads: 2}, model.CPU)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := a.Randomize(0.1); err != nil {
			return err
		}
		return a.Save(ad, map[string]string{adapters.MetaBase: id, adapters.MetaTRef: "10"})
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := personaleval.DefaultConfig()
	c.Weights, c.Adapters, c.Evaluator, c.DataDir = base, ad, evaluator, datasettest.Dir(t)
	c.Out, c.Subjects, c.Prompts, c.Steps, c.Batch = filepath.Join(dir, "report"), 3, 2, 2, 4
	var progress strings.Builder
	c.Progress = &progress
	r, err := personaleval.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s\n%s", progress.String(), r.Markdown())
	if r.Config.N != 6 || r.Adapted.N != 6 || r.Extraction.N != 3 || r.AdaptedSeconds <= 0 || r.PlainSeconds <= 0 || r.CacheBytesPerSubject <= 0 {
		t.Fatalf("report: %+v", r)
	}
	if math.Abs(r.Oracle.Cosine-1) < 1e-9 {
		t.Error("oracle identity exactly 1 although some scenes are small (the 16 px round trip loses detail)")
	}
	for _, f := range []string{personaleval.JSONFile, personaleval.MarkdownFile, personaleval.GridFile} {
		if st, err := os.Stat(filepath.Join(c.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(c.Out, personaleval.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if _, ok := back["gap_closed_cosine"]; !ok {
		t.Errorf("report.json lacks gap_closed_cosine: %s", raw[:200])
	}

	// Adapters trained on another base are refused before any work.
	c.Weights = ad
	if _, err := personaleval.Run(context.Background(), c); err == nil {
		t.Error("ran with adapters as the base")
	}
}

func TestRunRejectsBadSampling(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*personaleval.Config)
		want string
	}{
		{"guidance −1", func(c *personaleval.Config) { c.Guidance = -1 }, "guidance: "},
		{"clean renorm 1.5", func(c *personaleval.Config) { c.CleanRenorm = 1.5 }, "clean_renorm: "},
		{"clean renorm NaN", func(c *personaleval.Config) { c.CleanRenorm = math.NaN() }, "clean_renorm: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := personaleval.DefaultConfig()
			cfg.Out = t.TempDir()
			tc.edit(&cfg)
			_, err := personaleval.Run(context.Background(), cfg)
			if cachet.CodeOf(err) != cachet.CodeInvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an invalid argument naming %s", err, tc.want)
			}
		})
	}
}
