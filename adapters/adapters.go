// Package adapters serves Cachet's trained DreamCache adapters: it loads the adapter weights made for the
// running base model and turns a subject's reference feature cache into the attention injection of one
// sampling request. Training lives in train (cachet train adapters), the modules in model.
package adapters

import (
	"fmt"
	"strconv"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
)

// Metadata that ties adapter weights to their base model and reference pass.
const (
	MetaBase = "adapters.base_model" // featurecache.WeightsID of the base weights they were trained on
	MetaTRef = "adapters.t_ref"      // model time of the reference pass they were trained on
	// MetaViews is how many views of each reference they were trained to read (featurecache.Config.Views);
	// absent: 1.
	MetaViews = "adapters.ref_views"
)

// DefaultPath is where `cachet train adapters` writes the shipped adapters.
const DefaultPath = "weights/adapters.safetensors"

// Set is loaded adapters for one base model. Its methods create tensors, so they run on that model's
// worker, as sampling does.
type Set struct {
	a      *model.Adapters
	baseID string
	tref   float64
	views  int
	meta   map[string]string
}

// Load reads adapter weights strictly for base, whose weights are named baseID (featurecache.WeightsID).
// Adapters trained on another base model, or on another shape of model, are refused.
func Load(path string, base *model.DiT, baseID string) (*Set, error) {
	a, meta, err := model.LoadAdapters(path, base.Cfg, base.Device)
	if err != nil {
		return nil, err
	}
	s := &Set{a: a, baseID: baseID, meta: meta}
	switch trained := meta[MetaBase]; {
	case trained == "":
		a.Close()
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s do not name their base model (metadata %s); retrain them with 'cachet train adapters'", path, MetaBase)
	case trained != baseID:
		a.Close()
		return nil, cachet.Errorf(cachet.CodeConflict, "adapter weights %s were trained on base model %s, but the loaded base is %s; retrain them with 'cachet train adapters --weights <base>'", path, trained, baseID)
	}
	if s.tref, err = strconv.ParseFloat(meta[MetaTRef], 64); err != nil {
		a.Close()
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s have no valid reference time (metadata %s = %q)", path, MetaTRef, meta[MetaTRef])
	}
	s.views = 1
	if v, ok := meta[MetaViews]; ok {
		if s.views, err = strconv.Atoi(v); err != nil || s.views < 1 || s.views > featurecache.MaxViews {
			a.Close()
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s have no valid view count (metadata %s = %q)", path, MetaViews, v)
		}
	}
	if e := a.Cfg.Views; e > 1 && e != s.views {
		a.Close()
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s embed %d views but read %d (metadata %s); retrain them with 'cachet train adapters'", path, e, s.views, MetaViews)
	}
	return s, nil
}

// Close frees the adapters (on the model's worker).
func (s *Set) Close() { s.a.Close() }

// Config is the adapters' architecture.
func (s *Set) Config() model.AdapterConfig { return s.a.Cfg }

// Blocks are the blocks a subject's cache must hold for these adapters.
func (s *Set) Blocks() []int { return s.a.Cfg.Blocks }

// TRef is the reference-pass time the adapters were trained with; a cache made at another time is refused.
func (s *Set) TRef() float64 { return s.tref }

// Views is how many views of each reference the adapters read (featurecache.Config.Views): subjects'
// caches must be extracted with it.
func (s *Set) Views() int { return s.views }

// CacheConfig is the extraction a subject's cache needs for these adapters: every block of base (so a
// cache outlives a change of adapted blocks), at the adapters' t_ref and views.
func (s *Set) CacheConfig(base *model.DiT) featurecache.Config {
	c := featurecache.DefaultConfig(base)
	c.TRef, c.Views = s.tref, s.views
	return c
}

// BaseID names the base model the adapters belong to.
func (s *Set) BaseID() string { return s.baseID }

// Params counts the adapters' parameters.
func (s *Set) Params() int64 { return s.a.NumParams() }

// Metadata is the weights file's metadata (training facts).
func (s *Set) Metadata() map[string]string { return s.meta }

// Hooks checks a subject's cache (one reference, or several joined by featurecache.Concat) against the
// adapters and projects it once into every adapted block's keys and values. Set inj as the request's
// SampleRequest.Inject; call release when the request is done. g says which of guidance's branches see the
// subject. Run on the model's worker.
func (s *Set) Hooks(refs *featurecache.Features, g model.ReferenceGuidance) (inj *model.Injection, release func(), err error) {
	if err := s.check(refs); err != nil {
		return nil, nil, err
	}
	r, err := s.a.NewReference(refs.Blocks, refs.Tokens, refs.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("adapters: %w", err)
	}
	return r.Injection(g), r.Close, nil
}

// RowHooks is Hooks for a request whose images each have their own subject (evaluations batch several):
// image i sees refs[i]. The caches must have the same token count.
func (s *Set) RowHooks(refs []*featurecache.Features, g model.ReferenceGuidance) (inj *model.Injection, release func(), err error) {
	if len(refs) == 0 {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "no reference features given")
	}
	blocks := s.a.Cfg.Blocks
	data := make([][]float32, len(blocks))
	for i, f := range refs {
		if err := s.check(f); err != nil {
			return nil, nil, fmt.Errorf("reference %d: %w", i, err)
		}
		if f.Tokens != refs[0].Tokens {
			return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "reference %d has %d tokens, reference 0 %d: per-row references must match", i, f.Tokens, refs[0].Tokens)
		}
		for k, b := range blocks {
			data[k] = append(data[k], f.Block(b)...)
		}
	}
	r, err := s.a.NewRowReferences(blocks, len(refs), refs[0].Tokens, data)
	if err != nil {
		return nil, nil, fmt.Errorf("adapters: %w", err)
	}
	return r.Injection(g), r.Close, nil
}

func (s *Set) check(f *featurecache.Features) error {
	switch {
	case f == nil:
		return cachet.Errorf(cachet.CodeInvalidArgument, "no reference features given")
	case f.Model != s.baseID:
		return cachet.Errorf(cachet.CodeConflict, "the subject's feature cache was made by model %s, but the server runs %s; extract the subject again", f.Model, s.baseID)
	case f.TRef != s.tref:
		return cachet.Errorf(cachet.CodeConflict, "the subject's feature cache was made at t_ref %v, the adapters were trained at %v; extract the subject again (POST /v1/subjects/{id}/retry)", f.TRef, s.tref)
	case f.NumViews() != s.views:
		return cachet.Errorf(cachet.CodeConflict, "the subject's feature cache holds %d view(s) of each reference, the adapters read %d; extract the subject again (POST /v1/subjects/{id}/retry)", f.NumViews(), s.views)
	case f.Width != s.a.Base.Width || f.Tokens <= 0 || len(f.Data) != len(f.Blocks):
		return cachet.Errorf(cachet.CodeInvalidArgument, "the feature cache holds %d blocks of %d tokens × %d, not features of this model (width %d)", len(f.Blocks), f.Tokens, f.Width, s.a.Base.Width)
	}
	for _, b := range s.a.Cfg.Blocks {
		if f.Block(b) == nil {
			return cachet.Errorf(cachet.CodeConflict, "the subject's feature cache holds blocks %v; the adapters need block %d; extract the subject again", f.Blocks, b)
		}
	}
	return nil
}
