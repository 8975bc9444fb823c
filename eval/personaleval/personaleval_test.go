package personaleval_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/eval/personaleval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
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
		if s.Class != j%dataset.NumClasses || set.Label(s.Index) != s.Class || len(s.Scenes) != 3 {
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

// The oracle's identity is exact for large scenes and lower but high for small ones (the 16 px round
// trip); another item of the same class scores lower.
func TestIdentityOfOracleAndOtherItems(t *testing.T) {
	set := testSet(t)
	subjects, err := personaleval.Subjects(set, 10, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	ones := make([][]float64, len(subjects)) // a stand-in feature: the item itself
	var items, refs, others []*[dataset.ItemPixels]uint8
	var itemF, refF, otherF [][]float64
	for i := range subjects {
		s := &subjects[i]
		scene := dataset.Scene{Class: s.Class, Large: true, Inverted: i%2 == 0}
		img, err := dataset.Render(&s.Item, scene)
		if err != nil {
			t.Fatal(err)
		}
		back, err := dataset.Derender(&img, scene)
		if err != nil {
			t.Fatal(err)
		}
		other := subjects[(i+1)%len(subjects)].Item
		items, refs, others = append(items, &back), append(refs, &s.Item), append(others, &other)
		ones[i] = pixels(&s.Item)
		itemF, refF, otherF = append(itemF, pixels(&back)), append(refF, ones[i]), append(otherF, pixels(&other))
	}
	oracle := personaleval.IdentityOf(items, refs, itemF, refF)
	if math.Abs(oracle.Cosine-1) > 1e-9 || math.Abs(oracle.SSIM-1) > 1e-9 || oracle.N != 10 {
		t.Fatalf("large-scene oracle: %+v, want exactly 1", oracle)
	}
	other := personaleval.IdentityOf(others, refs, otherF, refF)
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

func pixels(p *[dataset.ItemPixels]uint8) []float64 {
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
	cfg := model.Config{ImageSize: dataset.CanvasSide, Channels: 1, Patch: 8, Width: 32, Depth: 2, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: dataset.Vocabulary(), MaxWords: 10, TextWidth: 16, TextDepth: 1}
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
