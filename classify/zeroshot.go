package classify

import (
	"context"
	"fmt"
	"slices"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
)

// BuiltinHead is the zero-shot head over the model's own classes (Fashion-MNIST's for the scene model),
// sampled once per model and kept in Postgres.
func (s *Service) BuiltinHead(ctx context.Context) (*Head, error) {
	s.mu.Lock()
	h := s.builtin
	s.mu.Unlock()
	if h != nil {
		return h, nil
	}
	if !slices.Equal(s.dit.Cfg.Vocabulary, scene.Vocabulary()) {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "this model has no built-in classes; classify against a collection")
	}
	labels := scene.ClassNames[:]
	var mean []float32
	var basis [][]float32
	if s.cfg.WhitenHead { // first: on a new model its one sampling pass stores the prototypes too
		var err error
		if mean, basis, err = s.headWhitening(ctx, labels); err != nil {
			return nil, err
		}
	}
	raw := make([][]float64, len(labels))
	for c, l := range labels {
		p, ok, err := s.prototype(ctx, l)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("classify: the model cannot draw its own class %q", l)
		}
		raw[c] = p
	}
	h, err := NewHead(labels, raw, s.cfg.Center)
	if err != nil {
		return nil, err
	}
	if basis != nil {
		if h, err = h.Whitened(mean, basis); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.builtin = h
	s.mu.Unlock()
	return h, nil
}

// headWhiteningRank is the built-in head's whitening rank: DefaultWhitenRank, or fewer directions when the
// head samples fewer than MinWhitenSamples images in all.
func headWhiteningRank(cfg HeadConfig, labels int) int {
	return min(DefaultWhitenRank, cfg.Samples*labels/whitenSamplesPerDirection)
}

// headWhitening returns the whitened space of the model's own samples of labels: from Postgres when this
// model fitted it before, else sampled (the prototypes' seeds: the same images) and stored, with each
// label's prototype from the same samples where none is stored yet.
func (s *Service) headWhitening(ctx context.Context, labels []string) ([]float32, [][]float32, error) {
	key, hk, rank := s.z.PrototypeKey(), s.cfg.Head.Key(), headWhiteningRank(s.cfg.Head, len(labels))
	if mean, basis, ok, err := s.st.whitening(ctx, key, hk, rank, WhitenPower); err != nil || ok {
		return mean, basis, err
	}
	s.protoMu.Lock()
	defer s.protoMu.Unlock()
	if mean, basis, ok, err := s.st.whitening(ctx, key, hk, rank, WhitenPower); err != nil || ok {
		return mean, basis, err
	}
	var all [][]float32
	for _, l := range labels {
		prompt, _ := LabelPrompt(s.dit.Cfg, l)
		fs, err := SampleFeatures(ctx, s.w, s.dit, s.z, prompt, s.cfg.Head)
		if err != nil {
			return nil, nil, err
		}
		if err := s.st.savePrototype(ctx, key, hk, l, prompt, Mean(fs)); err != nil {
			return nil, nil, err
		}
		all = append(all, fs...)
	}
	mean, basis, err := FitWhitening(all, rank, WhitenPower)
	if err != nil {
		return nil, nil, err
	}
	return mean, basis, s.st.saveWhitening(ctx, key, hk, WhitenPower, mean, basis)
}

// prototype returns the raw prototype of label (ok = false when the model cannot draw it): from Postgres
// when this model sampled it before, else sampled now and stored.
func (s *Service) prototype(ctx context.Context, label string) ([]float64, bool, error) {
	prompt, ok := LabelPrompt(s.dit.Cfg, label)
	if !ok {
		return nil, false, nil
	}
	key, hk := s.z.PrototypeKey(), s.cfg.Head.Key()
	if p, ok, err := s.st.prototype(ctx, key, hk, label); err != nil || ok {
		return p, ok, err
	}
	s.protoMu.Lock()
	defer s.protoMu.Unlock()
	if p, ok, err := s.st.prototype(ctx, key, hk, label); err != nil || ok {
		return p, ok, err
	}
	p, err := SamplePrototype(ctx, s.w, s.dit, s.z, prompt, s.cfg.Head)
	if err != nil {
		return nil, false, err
	}
	return p, true, s.st.savePrototype(ctx, key, hk, label, prompt, p)
}
