package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// Metadata of adapter weights files: the format, the adapter config and (under MetaConfig) the config of
// the base model they were trained on.
const (
	metaAdapterConfig = "cachet.adapter_config"
	formatAdapters    = "dreamcache-adapters-v1"
)

// Save writes the adapters' parameters (fp32) with both configs in the metadata, atomically. extra adds
// metadata (the base model's id, the reference time, training facts).
func (a *Adapters) Save(path string, extra map[string]string) error {
	f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(a.VS, "", f.Tensors); err != nil {
		return err
	}
	ac, bc, err := a.configJSON()
	if err != nil {
		return err
	}
	for k, v := range extra {
		f.Metadata[k] = v
	}
	f.Metadata[MetaFormat] = formatAdapters
	f.Metadata[metaAdapterConfig] = ac
	f.Metadata[MetaConfig] = bc
	return writeSafetensors(path, f)
}

// LoadAdapters reads an adapter weights file strictly (every tensor present and shaped as its config
// says, nothing extra) for a base model of config base; a file made for another base shape is refused.
// The parameters are frozen (inference). It returns the file's metadata.
func LoadAdapters(path string, base Config, device gotch.Device) (*Adapters, map[string]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, cachet.Errorf(cachet.CodeNotFound, "adapter weights %s do not exist; train them with 'cachet train adapters'", path)
		}
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s are not a valid safetensors file: %v", path, err)
	}
	if f.Metadata[MetaFormat] != formatAdapters {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a Cachet adapter file (metadata %s = %q, want %q)", path, MetaFormat, f.Metadata[MetaFormat], formatAdapters)
	}
	var cfg AdapterConfig
	if err := json.Unmarshal([]byte(f.Metadata[metaAdapterConfig]), &cfg); err != nil {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s have an unreadable adapter config: %v", path, err)
	}
	var trainedOn Config
	if err := json.Unmarshal([]byte(f.Metadata[MetaConfig]), &trainedOn); err != nil {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s have an unreadable base config: %v", path, err)
	}
	if err := sameConfig(trainedOn, base); err != nil {
		return nil, nil, cachet.Errorf(cachet.CodeInvalidArgument, "adapter weights %s were trained on a %s, not this %s; retrain them with 'cachet train adapters'", path, trainedOn, base)
	}
	a, err := NewAdapters(base, cfg, device)
	if err != nil {
		return nil, nil, fmt.Errorf("adapter weights %s: %w", path, err)
	}
	if err := loadInto(a.VS, f.Tensors, ""); err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("adapter weights %s: %w", path, err)
	}
	return a, f.Metadata, nil
}

// Transplant starts these adapters from trained ones: every block both adapt takes src's cross-attention
// (queries, keys, values) and output projection, converted between the concat and additive forms where
// they differ — concat → additive keeps the reference half of the concat projection and its bias and drops
// its re-mixing of the self-attention output; additive → concat is exact, as [I | W]. Blocks only these
// adapters have stay as they are (a no-op when fresh). View embeddings carry over for the views both have
// (views are numbered alike whatever their count: the canonical, then small ones at featurecache's
// positions in order); the others stay zero. It returns the carried blocks; src's inner width and heads
// must match.
func (a *Adapters) Transplant(src *Adapters) ([]int, error) {
	if src.Cfg.Inner != a.Cfg.Inner || src.Cfg.Heads != a.Cfg.Heads {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the starting adapters are %d wide with %d heads; these are %d wide with %d heads",
			src.Cfg.Inner, src.Cfg.Heads, a.Cfg.Inner, a.Cfg.Heads)
	}
	if err := sameConfig(src.Base, a.Base); err != nil {
		return nil, err
	}
	if err := setTrainable(a.VS, false); err != nil {
		return nil, err
	}
	d, r := int64(a.Base.Width), int64(a.Cfg.Inner)
	var carried []int
	for _, blk := range a.Cfg.Blocks {
		from, ok := src.blocks[blk]
		if !ok {
			continue
		}
		to := a.blocks[blk]
		for _, p := range [][2]*Linear{{from.q, to.q}, {from.k, to.k}, {from.v, to.v}, {from.cat, to.cat}, {from.out, to.out}} {
			if p[0] != nil && p[1] != nil {
				if err := copyLinear(p[1], p[0]); err != nil {
					return nil, fmt.Errorf("model: transplanting block %d: %w", blk, err)
				}
			}
		}
		var err error
		switch {
		case from.cat != nil && to.out != nil:
			err = concatToAdditive(to.out, from.cat, d, r)
		case from.out != nil && to.cat != nil:
			err = additiveToConcat(to.cat, from.out, d, r)
		}
		if err == nil && from.view != nil && to.view != nil {
			err = copyRows(to.view, from.view, int64(min(src.Cfg.Views, a.Cfg.Views)))
		}
		if err != nil {
			return nil, fmt.Errorf("model: transplanting block %d: %w", blk, err)
		}
		carried = append(carried, blk)
	}
	return carried, nil
}

// copyRows sets the first n rows of dst to src's.
func copyRows(dst, src *ts.Tensor, n int64) error {
	d, err := dst.Narrow(0, 0, n, false)
	if err != nil {
		return err
	}
	defer d.Drop()
	s, err := src.Narrow(0, 0, n, false)
	if err != nil {
		return err
	}
	defer s.Drop()
	return copyTensor(d, s)
}

// copyLinear sets dst's weight and bias to src's.
func copyLinear(dst, src *Linear) error {
	if err := copyTensor(dst.Weight, src.Weight); err != nil {
		return err
	}
	return copyTensor(dst.Bias, src.Bias)
}

// concatToAdditive sets out [D, Inner] to the reference columns of cat [D, D+Inner], and out's bias to cat's.
func concatToAdditive(out, cat *Linear, d, r int64) error {
	refCols, err := cat.Weight.Narrow(1, d, r, false)
	if err != nil {
		return err
	}
	defer refCols.Drop()
	return copyLinear(out, &Linear{Weight: refCols, Bias: cat.Bias})
}

// additiveToConcat sets cat [D, D+Inner] to [I | out], and cat's bias to out's.
func additiveToConcat(cat, out *Linear, d, r int64) error {
	w, err := Float32s(out.Weight)
	if err != nil {
		return err
	}
	cw := make([]float32, d*(d+r))
	for i := range d {
		cw[i*(d+r)+i] = 1
		copy(cw[i*(d+r)+d:(i+1)*(d+r)], w[i*r:(i+1)*r])
	}
	if err := setTensor(cat.Weight, cw, []int64{d, d + r}); err != nil {
		return err
	}
	return copyTensor(cat.Bias, out.Bias)
}
