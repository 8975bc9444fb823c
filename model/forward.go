package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// modulation holds the adaLN vectors of one batch at one timestep; they depend only on (t, condition), so
// a sampler computes them once per request schedule and reuses them across steps.
type modulation struct {
	// shift, 1+scale, gate for attention, then for the MLP; each [B, 1, D]. The scales are stored as 1+scale
	// so that modulating is one fused multiply-add per step.
	blocks [][6]*ts.Tensor
	final  [2]*ts.Tensor // shift, 1+scale of the final layer; [B, 1, D]
}

// conditionVector is c = MLP(sinusoid(t)) + y for model-time values t and condition vectors y [B, D].
func (m *DiT) conditionVector(o *ops, t []float64, y *ts.Tensor) *ts.Tensor {
	if o.err != nil {
		return nil
	}
	freq := o.keep(timestepEmbedding(t, m.Device))
	temb := o.linear(o.silu(o.linear(freq, m.tMLP1)), m.tMLP2)
	return o.add(temb, y)
}

// modulate computes every block's and the final layer's adaLN vectors from c [B, D].
func (m *DiT) modulate(o *ops, c *ts.Tensor) *modulation {
	d := int64(m.Cfg.Width)
	sc := o.silu(c)
	mod := &modulation{blocks: make([][6]*ts.Tensor, len(m.blocks))}
	for i, b := range m.blocks {
		all := o.unsqueeze(o.linear(sc, b.mod), 1) // [B, 1, 6D]
		for k := range 6 {
			v := o.narrow(all, 2, int64(k)*d, d)
			if k == 1 || k == 4 {
				v = o.addScalar(v, 1)
			}
			mod.blocks[i][k] = o.contiguous(v)
		}
	}
	fin := o.unsqueeze(o.linear(sc, m.finalMod), 1)
	mod.final = [2]*ts.Tensor{o.contiguous(o.narrow(fin, 2, 0, d)), o.addScalar(o.narrow(fin, 2, d, d), 1)}
	return mod
}

// patchify: [B, C, H, W] → tokens [B, T, D] with positions added.
func (m *DiT) patchify(o *ops, x *ts.Tensor) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	p := int64(m.Cfg.Patch)
	conv := o.keep(ts.Conv2d(x, m.patchW, m.patchB, []int64{p, p}, []int64{0, 0}, []int64{1, 1}, 1))
	sz := o.size(conv)
	if sz == nil {
		return nil
	}
	tokens := o.transpose(o.reshape(conv, sz[0], sz[1], sz[2]*sz[3]), 1, 2)
	return o.add(tokens, m.pos)
}

// unpatchify: [B, T, p·p·C] → [B, C, H, W] (DiT's einsum nhwpqc → nchpwq).
func (m *DiT) unpatchify(o *ops, x *ts.Tensor, batch int64) *ts.Tensor {
	p, c := int64(m.Cfg.Patch), int64(m.Cfg.OutChannels())
	g := int64(m.Cfg.ImageSize / m.Cfg.Patch)
	y := o.permute(o.reshape(x, batch, g, g, p, p, c), 0, 5, 1, 3, 2, 4)
	return o.reshape(y, batch, c, g*p, g*p)
}

// block runs block i on x with the step's modulation, through the hooks' seams.
func (m *DiT) block(o *ops, i int, x *ts.Tensor, mod *modulation, h *Hooks) *ts.Tensor {
	if o.err != nil {
		return nil
	}
	b, v := m.blocks[i], mod.blocks[i]
	if h != nil && h.Capture != nil && containsInt(h.CaptureBlocks, i) {
		if err := h.Capture(i, &Feature{t: x}); err != nil {
			o.err = fmt.Errorf("model: capture at block %d: %w", i, err)
			return nil
		}
	}
	d := m.Cfg.Width
	attn := func(sel *Tokens) *ts.Tensor {
		hIn := o.modulate(o.layerNorm(x, d, nil, nil), v[0], v[1])
		hSel := o.gatherTokens(hIn, sel) // hIn itself without a selection
		var a *ts.Tensor
		switch {
		case h != nil && containsInt(h.IdentityAttention, i):
			a = b.attn.identity(o, hSel)
		case sel == nil && h != nil && h.AttentionReceived != nil:
			var received *ts.Tensor
			a, received = b.attn.forwardReceived(o, hIn)
			if o.ok(received) {
				if err := h.AttentionReceived(i, &Feature{t: received}); err != nil {
					o.err = fmt.Errorf("model: attention received at block %d: %w", i, err)
					return nil
				}
			}
		case sel == nil && h != nil && h.Reduce != nil:
			q, kv, restore, err := h.Reduce(i, &Feature{t: hIn})
			if err != nil {
				o.err = fmt.Errorf("model: token reduction at block %d: %w", i, err)
				return nil
			}
			a = b.attn.forwardReduced(o, hIn, q, kv, restore)
		case h != nil && h.KeysValues != nil:
			a = b.attn.forwardTokens(o, hIn, hSel, sel, func(computed *ts.Tensor) *ts.Tensor {
				if !o.ok(computed) {
					return nil
				}
				kv, err := h.KeysValues(i, sel, &Feature{t: computed})
				if err != nil {
					o.err = fmt.Errorf("model: keys and values at block %d: %w", i, err)
					return nil
				}
				return o.s.Keep(kv.t)
			})
		default:
			a = b.attn.forwardTokens(o, hIn, hSel, sel, nil)
		}
		if h != nil && h.InjectAttention != nil && containsInt(h.InjectBlocks, i) && o.ok(a) {
			out, err := h.InjectAttention(i, &Feature{t: hSel}, &Feature{t: a})
			if err != nil {
				o.err = fmt.Errorf("model: inject at block %d: %w", i, err)
				return nil
			}
			a = o.s.Keep(out.t)
		}
		return a
	}
	x = o.gatedAdd(x, v[2], m.sublayer(o, i, SublayerAttention, h, attn))
	mlp := func(sel *Tokens) *ts.Tensor {
		return b.mlp.forward(o, o.modulate(o.layerNorm(o.gatherTokens(x, sel), d, nil, nil), v[3], v[4]))
	}
	return o.gatedAdd(x, v[5], m.sublayer(o, i, SublayerMLP, h, mlp))
}

// sublayer computes a pre-gate sublayer output, or lets the Sublayer hook supply it.
func (m *DiT) sublayer(o *ops, i int, kind Sublayer, h *Hooks, compute func(sel *Tokens) *ts.Tensor) *ts.Tensor {
	if h == nil || h.Sublayer == nil {
		return compute(nil)
	}
	out, err := h.Sublayer(i, kind, func(sel *Tokens) (*Feature, error) {
		t := compute(sel)
		if o.err != nil {
			return nil, o.err
		}
		return &Feature{t: t}, nil
	})
	if err != nil {
		if o.err == nil {
			o.err = fmt.Errorf("model: %s policy at block %d: %w", kind, i, err)
		}
		return nil
	}
	return o.s.Keep(out.t)
}

// runBlocks computes blocks [from, to).
func (m *DiT) runBlocks(o *ops, from, to int, x *ts.Tensor, mod *modulation, h *Hooks) *ts.Tensor {
	for i := from; i < to; i++ {
		x = m.block(o, i, x, mod, h)
	}
	return x
}

// forward is one denoiser evaluation of x [B, C, H, W] under the step's modulation. The result is owned
// by o's scope.
func (m *DiT) forward(o *ops, x *ts.Tensor, mod *modulation, h *Hooks) *ts.Tensor {
	sz := o.size(x)
	if sz == nil {
		return nil
	}
	tokens := m.patchify(o, x)
	if h != nil && h.Probe != nil && o.ok(tokens) {
		v := mod.blocks[0]
		if err := h.Probe(&Feature{t: o.modulate(o.layerNorm(tokens, m.Cfg.Width, nil, nil), v[0], v[1])}); err != nil {
			o.err = fmt.Errorf("model: probe: %w", err)
			return nil
		}
	}
	if h != nil && h.Stack != nil && o.ok(tokens) {
		run := func(from, to int, in *Feature) (*Feature, error) {
			if from < 0 || to > len(m.blocks) || from > to {
				return nil, fmt.Errorf("model: block range [%d, %d) outside [0, %d)", from, to, len(m.blocks))
			}
			out := m.runBlocks(o, from, to, in.t, mod, h)
			if o.err != nil {
				return nil, o.err
			}
			return &Feature{t: out}, nil
		}
		out, err := h.Stack(&Feature{t: tokens}, run)
		if err != nil {
			if o.err == nil {
				o.err = fmt.Errorf("model: block-stack policy: %w", err)
			}
			return nil
		}
		tokens = o.s.Keep(out.t)
	} else {
		tokens = m.runBlocks(o, 0, len(m.blocks), tokens, mod, h)
	}
	y := o.linear(o.modulate(o.layerNorm(tokens, m.Cfg.Width, nil, nil), mod.final[0], mod.final[1]), m.finalOut)
	return m.unpatchify(o, y, sz[0])
}
