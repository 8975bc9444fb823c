package subjects_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// randomExtractor is the extraction pass of a random-weight model with the default architecture (so the
// pooled vectors have the indexed 1536 dimensions), under a model id of its own: the test database is
// shared, and similarity only compares subjects of one model.
func randomExtractor(t *testing.T) *featurecache.Extractor { return randomExtractors(t, 1)[0] }

// randomExtractors are extraction passes of one random-weight model under one id, the k-th seeing each
// reference in views[k] views (featurecache.Config.Views).
func randomExtractors(t *testing.T, views ...int) []*featurecache.Extractor {
	t.Helper()
	w := model.NewWorker(false)
	t.Cleanup(w.Close)
	var m *model.DiT
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(11); err != nil {
			return err
		}
		var err error
		if m, err = model.New(defaultArchitecture(), model.CPU); err != nil {
			return err
		}
		return m.Randomize(0.2)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Do(context.Background(), func() error { m.Close(); return nil }) })
	id := fmt.Sprintf("test-%d", time.Now().UnixNano())
	out := make([]*featurecache.Extractor, len(views))
	for k, v := range views {
		cfg := featurecache.DefaultConfig(m)
		cfg.Views = v
		if out[k], err = featurecache.NewExtractor(w, m, id, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// defaultArchitecture is train.BaseModelConfig (not imported: train pulls in the whole training stack).
func defaultArchitecture() model.Config {
	return model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 4, Width: 256, Depth: 6, Heads: 4,
		MLPRatio: 4, Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(),
		MaxWords: 10, TextWidth: 128, TextDepth: 1}
}
