// Package generatetest builds, for tests, the generation stack on a random-weight model with the default
// architecture (32×32×1, patch 4, width 256, depth 6, the scene vocabulary): its worker, the extraction
// pass, and adapters saved and loaded the way the server loads them.
package generatetest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// Stack is a random model on its own worker, closed when the test ends.
type Stack struct {
	Worker  *model.Worker
	DiT     *model.DiT
	ModelID string // unique per stack: the test database is shared, and caches name their model
	Extract *featurecache.Extractor
}

// Architecture is train.BaseModelConfig (not imported: train pulls in the whole training stack).
func Architecture() model.Config {
	return model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 4, Width: 256, Depth: 6, Heads: 4,
		MLPRatio: 4, Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(),
		MaxWords: 10, TextWidth: 128, TextDepth: 1}
}

// New builds the stack. Random adaLN-Zero gates are non-zero after Randomize, so blocks do work.
func New(t testing.TB) *Stack {
	t.Helper()
	s := &Stack{Worker: model.NewWorker(false), ModelID: fmt.Sprintf("test-%d", time.Now().UnixNano())}
	t.Cleanup(s.Worker.Close)
	err := s.Worker.Do(context.Background(), func() error {
		if err := model.SetSeed(21); err != nil {
			return err
		}
		var err error
		if s.DiT, err = model.New(Architecture(), model.CPU); err != nil {
			return err
		}
		return s.DiT.Randomize(0.2)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Worker.Do(context.Background(), func() error { s.DiT.Close(); return nil }) })
	if s.Extract, err = featurecache.NewExtractor(s.Worker, s.DiT, s.ModelID, featurecache.DefaultConfig(s.DiT)); err != nil {
		t.Fatal(err)
	}
	return s
}

// Adapters saves random (not no-op) adapters on blocks 1, 3, 5 for this model, loads them with
// adapters.Load as the server does, and closes them when the test ends.
func (s *Stack) Adapters(t testing.TB) *adapters.Set {
	t.Helper()
	path := filepath.Join(t.TempDir(), "adapters.safetensors")
	s.SaveAdapters(t, path, s.ModelID)
	var set *adapters.Set
	err := s.Worker.Do(context.Background(), func() error {
		var err error
		set, err = adapters.Load(path, s.DiT, s.ModelID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Worker.Do(context.Background(), func() error { set.Close(); return nil }) })
	return set
}

// SaveAdapters writes random adapters for this model, trained (as their metadata says) on base model
// baseID at the extractor's t_ref.
func (s *Stack) SaveAdapters(t testing.TB, path, baseID string) {
	t.Helper()
	err := s.Worker.Do(context.Background(), func() error {
		a, err := model.NewAdapters(s.DiT.Cfg, model.AdapterConfig{Blocks: []int{1, 3, 5}, Inner: 64, Heads: 4}, model.CPU)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		meta := map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: fmt.Sprint(s.Extract.Config().TRef)}
		return a.Save(path, meta)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// SaveWeights writes the model's weights to path.
func (s *Stack) SaveWeights(t testing.TB, path string) {
	t.Helper()
	if err := s.Worker.Do(context.Background(), func() error { return s.DiT.Save(path, nil) }); err != nil {
		t.Fatal(err)
	}
}

// Shipped is the stack on the shipped weights (weights/base.safetensors, path relative to the test's
// package directory), for tests whose numerics need a trained model: a random one amplifies float
// rounding into visible differences within a few steps.
func Shipped(t testing.TB, path string) *Stack {
	t.Helper()
	s := &Stack{Worker: model.NewWorker(false), ModelID: fmt.Sprintf("test-%d", time.Now().UnixNano())}
	t.Cleanup(s.Worker.Close)
	err := s.Worker.Do(context.Background(), func() error {
		var err error
		s.DiT, _, err = model.Load(path, model.CPU)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Worker.Do(context.Background(), func() error { s.DiT.Close(); return nil }) })
	return s
}
