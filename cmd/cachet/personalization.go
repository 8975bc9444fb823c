package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
	"github.com/cachetlab/cachet/storage"
	"github.com/cachetlab/cachet/subjects"
)

// adaptersPath is where a base model's adapters live: next to its weights (weights/base.safetensors →
// weights/adapters.safetensors), as they belong to that base, like its step-cache calibrations.
func adaptersPath(weights string) string {
	return filepath.Join(filepath.Dir(weights), filepath.Base(adapters.DefaultPath))
}

// personalization is the generation stack over one loaded model: the extraction pass, the generation
// service and, when their file exists, the adapters.
type personalization struct {
	modelID  string
	extract  *featurecache.Extractor
	gen      *generate.Service
	adapters *adapters.Set // nil: no adapters loaded
	worker   *model.Worker
}

// newPersonalization wires it for dit (on w), whose weights file is weightsPath. A missing adapters file
// is not an error: subjects can be uploaded, and personalized requests answer that adapters are missing.
// opts are the generation service's request defaults and bounds; its model's ID, calibrations and
// adapters are filled here.
func newPersonalization(ctx context.Context, w *model.Worker, dit *model.DiT, weightsPath, adaptersPath string, opts generate.Options) (*personalization, error) {
	id, err := featurecache.WeightsID(weightsPath)
	if err != nil {
		return nil, err
	}
	p := &personalization{modelID: id, worker: w}
	cfg := featurecache.DefaultConfig(dit)
	if _, err := os.Stat(adaptersPath); err == nil {
		err = w.Do(ctx, func() error {
			p.adapters, err = adapters.Load(adaptersPath, dit, id)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("adapters: %w", err)
		}
		cfg = p.adapters.CacheConfig(dit) // caches must be made the way the adapters were trained
		slog.Info("adapters loaded", "adapters", adaptersPath, "blocks", p.adapters.Blocks(), "views", p.adapters.Views(), "params", p.adapters.Params())
	} else if errors.Is(err, os.ErrNotExist) {
		slog.Warn("no adapters: subjects can be uploaded but not used for generation", "adapters", adaptersPath, "fix", "train them with 'cachet train adapters'")
	} else {
		return nil, fmt.Errorf("adapters: %w", err)
	}
	if p.extract, err = featurecache.NewExtractor(w, dit, id, cfg); err != nil {
		p.close()
		return nil, err
	}
	cals, err := stepcache.LoadCalibrations(stepcache.CalibrationPath(weightsPath))
	if err != nil {
		p.close()
		return nil, err
	}
	if _, err := stepcache.New(cals.Apply(opts.DefaultCache), dit.Cfg.Depth); err != nil {
		// A calibrated default (TeaCache) needs the profile next to these weights; without it, requests
		// that name no policy still work, uncached.
		slog.Warn("default step-cache policy unusable with these weights: generating uncached by default",
			"policy", opts.DefaultCache.String(), "err", err, "fix", "run 'cachet calibrate' for these weights or set --default-cache")
		opts.DefaultCache = stepcache.Config{Name: "none"}
	}
	opts.ModelID, opts.Calibrations = id, cals
	if p.adapters != nil {
		opts.Personalizer = p.adapters
	}
	p.gen = generate.New(w, dit, opts)
	return p, nil
}

// endpoints builds the services the API serves.
func (p *personalization) endpoints(db *storage.DB, objects *storage.Objects, opts subjects.Options) (*subjects.Service, *generate.Endpoint) {
	subs := subjects.New(db, objects, p.extract, opts)
	return subs, generate.NewEndpoint(p.gen, subs, db, objects)
}

func (p *personalization) close() {
	if p == nil || p.adapters == nil {
		return
	}
	_ = p.worker.Do(context.Background(), func() error { p.adapters.Close(); return nil })
}
