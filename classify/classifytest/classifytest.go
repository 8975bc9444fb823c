// Package classifytest builds classification services on small random-weight models for tests.
package classifytest

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// ModelConfig is a tiny text model on 32×32 canvases that speaks the scene grammar (so it has built-in
// classes and can draw "a large coat").
func ModelConfig() model.Config {
	return model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 8, Width: 32, Depth: 3, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(), MaxWords: 10, TextWidth: 16, TextDepth: 1}
}

// Config is a fast service configuration for the test model: two pooled blocks over its 4×4 tokens, 2
// prototype images per class at 2 steps.
func Config() classify.Config {
	c := classify.DefaultConfig()
	c.Blocks, c.Grid = []int{1, 2}, 4
	c.Head = classify.HeadConfig{Samples: 2, Steps: 2, Guidance: 1, Seed: 1}
	c.MaxImages = 64
	return c
}

// Model is a random-weight model on its own worker, closed when the test ends.
func Model(t testing.TB) (*model.Worker, *model.DiT) {
	t.Helper()
	w := model.NewWorker(false)
	t.Cleanup(w.Close)
	return w, ModelOn(t, w, ModelConfig(), 7)
}

// ModelOn is a random-weight model of cfg on w, its weights drawn from seed; closed when the test ends.
func ModelOn(t testing.TB, w *model.Worker, cfg model.Config, seed int64) *model.DiT {
	t.Helper()
	var m *model.DiT
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(seed); err != nil {
			return err
		}
		var err error
		if m, err = model.New(cfg, model.CPU); err != nil {
			return err
		}
		return m.Randomize(0.2)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Do(context.Background(), func() error { m.Close(); return nil }) })
	return m
}

// Service is a classification service on a random model and the test database. Its model id is unique
// to the test, so prototypes cached by other tests (or other versions of this model) are never reused.
func Service(t testing.TB, cfg classify.Config) *classify.Service {
	t.Helper()
	db := testenv.DB(t)
	w, m := Model(t)
	svc, err := classify.New(db, w, m, fmt.Sprintf("test-%d", time.Now().UnixNano()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Name is a collection name no other test uses.
func Name(t testing.TB) string { return fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()) }

// Item is a random 28×28 "item": a bright blob on black at a seeded place, so items differ clearly.
func Item(seed uint64) *image.Gray {
	rng := rand.New(rand.NewPCG(seed, 3))
	img := image.NewGray(image.Rect(0, 0, scene.ItemSide, scene.ItemSide))
	cx, cy, r := 6+rng.IntN(16), 6+rng.IntN(16), 3+rng.IntN(6)
	for y := range scene.ItemSide {
		for x := range scene.ItemSide {
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
				img.Pix[y*img.Stride+x] = uint8(128 + rng.IntN(128))
			} else {
				img.Pix[y*img.Stride+x] = uint8(rng.IntN(40))
			}
		}
	}
	return img
}
