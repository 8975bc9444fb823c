package classify_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// With a feature model of its own, the service extracts on it (its features are that model's), keys its
// feature space by both weights, and still samples the zero-shot head on the model.
func TestFeatureModelRunsTheFeaturePass(t *testing.T) {
	ctx := context.Background()
	db := testenv.DB(t)
	w, m := classifytest.Model(t)
	features := classifytest.ModelOn(t, w, classifytest.ModelConfig(), 11)
	id := fmt.Sprintf("test-%d", time.Now().UnixNano())
	cfg := classifytest.Config()
	plain, err := classify.New(db, w, m, id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	split, err := classify.NewWithFeatures(db, w, m, id, features, id+"-features", cfg)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := classify.New(db, w, features, id+"-features", cfg)
	if err != nil {
		t.Fatal(err)
	}
	item := classifytest.Item(5)
	canvas, err := classify.ItemCanvas((*[scene.ItemPixels]uint8)(item.Pix))
	if err != nil {
		t.Fatal(err)
	}
	feats := map[string][]float32{}
	for name, svc := range map[string]*classify.Service{"plain": plain, "split": split, "direct": direct} {
		f, err := svc.Featurizer().Canvases(ctx, [][]uint8{canvas})
		if err != nil {
			t.Fatal(err)
		}
		feats[name] = f[0]
	}
	if !slices.Equal(feats["split"], feats["direct"]) || slices.Equal(feats["split"], feats["plain"]) {
		t.Errorf("the split service's features are not the feature model's")
	}
	if k := split.Featurizer().Key(); !strings.HasPrefix(k, id+"-features/") || !strings.Contains(k, "/samples-"+id) || k == direct.Featurizer().Key() {
		t.Errorf("feature key %q (the feature model's own: %q)", k, direct.Featurizer().Key())
	}
	if _, scores, err := split.ClassifyFeatures(ctx, "", [][]float32{feats["split"]}, 1); err != nil || len(scores) != 1 {
		t.Fatalf("zero-shot through the feature model: %v", err)
	}

	wider := classifytest.ModelConfig()
	wider.Width = 48
	_, err = classify.NewWithFeatures(db, w, m, id, classifytest.ModelOn(t, w, wider, 11), "wider", cfg)
	if e := (*cachet.Error)(nil); !errors.As(err, &e) || e.Code != cachet.CodeInvalidArgument {
		t.Errorf("a feature model of another architecture: %v", err)
	}
}

// The feature weights a setting resolves to: an explicit file or "none" as given; by default the
// features beside the weights only when they were distilled from exactly those weights.
func TestResolveFeatureWeights(t *testing.T) {
	w, m := classifytest.Model(t)
	other := classifytest.ModelOn(t, w, classifytest.ModelConfig(), 11)
	dir := t.TempDir()
	weights, otherWeights := filepath.Join(dir, "base.safetensors"), filepath.Join(t.TempDir(), "other.safetensors")
	save := func(m *model.DiT, path string, meta map[string]string) {
		t.Helper()
		if err := w.Do(context.Background(), func() error { return m.Save(path, meta) }); err != nil {
			t.Fatal(err)
		}
	}
	save(m, weights, nil)
	save(other, otherWeights, nil)
	id, err := featurecache.WeightsID(weights)
	if err != nil {
		t.Fatal(err)
	}
	beside := filepath.Join(dir, classify.FeaturesFile)
	cases := []struct {
		name, setting string
		besideMeta    map[string]string // nil: no file beside the weights
		garbage       bool
		want          string
		wantErr       cachet.Code
	}{
		{name: "explicit file", setting: otherWeights, want: otherWeights},
		{name: "none", setting: classify.NoFeatureWeights, besideMeta: map[string]string{classify.TeacherKey: id}, want: ""},
		{name: "nothing beside", want: ""},
		{name: "distilled from these weights", besideMeta: map[string]string{classify.TeacherKey: id}, want: beside},
		{name: "distilled from other weights", besideMeta: map[string]string{classify.TeacherKey: "0123456789abcdef"}, want: ""},
		{name: "no teacher recorded", besideMeta: map[string]string{}, want: ""},
		{name: "unreadable file beside", garbage: true, wantErr: cachet.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(beside)
			switch {
			case tc.garbage:
				if err := os.WriteFile(beside, []byte("not safetensors"), 0o644); err != nil {
					t.Fatal(err)
				}
			case tc.besideMeta != nil:
				save(other, beside, tc.besideMeta)
			}
			got, err := classify.ResolveFeatureWeights(weights, id, tc.setting)
			if tc.wantErr != "" {
				var e *cachet.Error
				if !errors.As(err, &e) || e.Code != tc.wantErr || !strings.Contains(e.Message, classify.NoFeatureWeights) {
					t.Fatalf("err = %v, want %s naming the way out", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
