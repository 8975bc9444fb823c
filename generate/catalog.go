package generate

import (
	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// NewCatalog is the catalog of a server whose model is modelID ("" when it runs without one) with these
// measured speed presets.
func NewCatalog(modelID string, speeds map[string]stepcache.SpeedPoint, maxImages, maxSteps int) cachet.Catalog {
	return cachet.Catalog{Model: modelID, Scene: scene.Grammar(), Presets: SpeedPresets(speeds), DefaultPreset: cachet.DefaultSpeed,
		Policies: stepcache.Catalog(), MaxImages: maxImages, MaxSteps: maxSteps}
}

// Catalog is this service's catalog.
func (s *Service) Catalog() cachet.Catalog {
	return NewCatalog(s.opts.ModelID, s.opts.Calibrations.Speeds, s.opts.MaxImages, s.opts.MaxSteps)
}

// Catalog is the catalog of the endpoint's service.
func (e *Endpoint) Catalog() cachet.Catalog { return e.gen.Catalog() }
