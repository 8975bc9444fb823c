package generate

import (
	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// Presets are the speed/quality choices offered to clients. Fewer steps beat every cached 50-step policy
// on this model (bench/reports/stepcache-service), so the presets are step budgets; the policies stay
// available on their own.
func Presets() []cachet.Preset {
	none := cachet.CachePolicy{Name: "none"}
	return []cachet.Preset{
		{Name: "quality", Label: "Best quality", Steps: 50, Cache: none, Note: "50 steps: the reference the others are measured against"},
		{Name: "balanced", Label: "Balanced", Steps: cachet.DefaultSteps, Cache: none, Note: "20 steps: about 2.2× faster than 50, 40 dB PSNR to them"},
		{Name: "fast", Label: "Fast", Steps: 10, Cache: none, Note: "10 steps: about 4.3× faster than 50, 31 dB PSNR to them"},
	}
}

// NewCatalog is the catalog of a server whose model is modelID ("" when it runs without one).
func NewCatalog(modelID string, maxImages, maxSteps int) cachet.Catalog {
	return cachet.Catalog{Model: modelID, Scene: scene.Grammar(), Presets: Presets(), DefaultPreset: "balanced",
		Policies: stepcache.Catalog(), MaxImages: maxImages, MaxSteps: maxSteps}
}

// Catalog is this service's catalog.
func (s *Service) Catalog() cachet.Catalog {
	return NewCatalog(s.opts.ModelID, s.opts.MaxImages, s.opts.MaxSteps)
}

// Catalog is the catalog of the endpoint's service.
func (e *Endpoint) Catalog() cachet.Catalog { return e.gen.Catalog() }
