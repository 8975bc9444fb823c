package model

import (
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Tokens selects the same number K of tokens in every image row of a pass: a token-wise step cache
// (ToCa) asks a sublayer to compute these tokens alone and keeps its cached values for the rest.
type Tokens struct {
	idx *ts.Tensor // [B, K] int64
	sel [][]int64  // the same, in Go
}

// NewTokens builds a selection from per-row token indices (every row the same length), on like's device.
func NewTokens(rows [][]int64, like *Feature) (*Tokens, error) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, fmt.Errorf("model: a token selection needs at least one row and one token")
	}
	k := len(rows[0])
	flat := make([]int64, 0, len(rows)*k)
	for i, r := range rows {
		if len(r) != k {
			return nil, fmt.Errorf("model: token selection row %d has %d tokens, row 0 has %d", i, len(r), k)
		}
		flat = append(flat, r...)
	}
	dev, err := like.t.Device()
	if err != nil {
		return nil, fmt.Errorf("model: token selection: %w", err)
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&flat[0])), 8*len(flat))
	idx, err := fromBytes(raw, []int64{int64(len(rows)), int64(k)}, gotch.Int64, dev)
	if err != nil {
		return nil, fmt.Errorf("model: token selection: %w", err)
	}
	return &Tokens{idx: idx, sel: rows}, nil
}

// Rows returns the selected token indices of each row (not to be modified).
func (t *Tokens) Rows() [][]int64 { return t.sel }

// Drop frees the selection.
func (t *Tokens) Drop() {
	if t != nil && t.idx != nil {
		t.idx.Drop()
		t.idx = nil
	}
}

// SetTokens returns a copy of f [B, T, D] whose selected tokens are replaced by src [B, K, D].
func (f *Feature) SetTokens(sel *Tokens, src *Feature) (*Feature, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	idx := o.expandTokens(sel, o.size(f.t))
	out := o.keep(cop("scatter", func(p *lib.Ctensor) { lib.AtgScatter(p, ct(f.t), 1, ct(idx), ct(src.t)) }))
	if o.err != nil {
		return nil, fmt.Errorf("model: set tokens: %w", o.err)
	}
	return &Feature{t: s.Release(out)}, nil
}

// expandTokens is sel's index [B, K] broadcast over the last dimension of a [B, T, D] tensor: [B, K, D].
func (o *ops) expandTokens(sel *Tokens, size []int64) *ts.Tensor {
	if o.err != nil {
		return nil
	}
	if len(size) != 3 || size[0] != int64(len(sel.sel)) {
		o.err = fmt.Errorf("model: a %d-row token selection on a tensor of shape %v", len(sel.sel), size)
		return nil
	}
	col := o.unsqueeze(sel.idx, 2)
	shape := []int64{size[0], int64(len(sel.sel[0])), size[2]}
	return o.keep(cop("expand", func(p *lib.Ctensor) { lib.AtgExpand(p, ct(col), shape, len(shape), 0) }))
}

// gatherTokens is x [B, T, D] at the selected tokens: [B, K, D]. A nil selection is x itself.
func (o *ops) gatherTokens(x *ts.Tensor, sel *Tokens) *ts.Tensor {
	if sel == nil || !o.ok(x) {
		return x
	}
	idx := o.expandTokens(sel, o.size(x))
	if o.err != nil {
		return nil
	}
	return o.keep(cop("gather", func(p *lib.Ctensor) { lib.AtgGather(p, ct(x), 1, ct(idx), 0) }))
}
