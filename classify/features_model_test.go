package classify_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/internal/testenv"
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
