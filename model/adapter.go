package model

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
)

// AdapterConfig describes DreamCache adapters on a base DiT (DreamCache's BasicTransformerBlock_Memory in
// adaLN form): in each adapted block, m = CrossAttn(h, K/V = LN(cached reference tokens of that block)), and
// the attention sublayer becomes either
//   - concat (DreamCache's form): Linear_{(D+Inner)→D}([SelfAttn(h) ‖ m]), initialised to [I | 0]. The
//     cross-attention has no output projection of its own: the concatenating linear is one (DreamCache's
//     to_out followed by linear_cat composes two linear maps); or
//   - additive: SelfAttn(h) + Linear_{Inner→D}(m), the projection initialised to 0. The same function class
//     less the D×D re-mixing of the self-attention output; its projection is a third the size of concat's
//     (two thirds of the block's adapter parameters at D = 256, Inner = 128), so more blocks fit a budget.
//
// Either way a fresh adapter is exactly the base block.
type AdapterConfig struct {
	Blocks   []int `json:"blocks"`             // adapted blocks, ascending
	Inner    int   `json:"inner"`              // width of the reference cross-attention's queries, keys and values
	Heads    int   `json:"heads"`              // its heads (Inner/Heads per head)
	Additive bool  `json:"additive,omitempty"` // additive output projection instead of concat
	// Views, when above 1, is how many views each reference's tokens hold (featurecache.Config.Views, a
	// reference's views consecutive, base.Tokens() tokens each): every block learns one embedding per
	// view, added to the normalised reference tokens before the keys and values, so the queries can tell
	// tokens of different views at the same position apart. 0: no view embedding.
	Views int `json:"views,omitempty"`
}

// Validate checks the config against the base model's.
func (c AdapterConfig) Validate(base Config) error {
	bad := func(f string, a ...any) error {
		return cachet.Errorf(cachet.CodeInvalidArgument, "adapter config: "+f, a...)
	}
	if len(c.Blocks) == 0 {
		return bad("no blocks")
	}
	for i, b := range c.Blocks {
		if b < 0 || b >= base.Depth {
			return bad("block %d outside the base model's 0…%d", b, base.Depth-1)
		}
		if i > 0 && b <= c.Blocks[i-1] {
			return bad("blocks must be ascending and distinct (got %v)", c.Blocks)
		}
	}
	if c.Inner <= 0 || c.Heads <= 0 || c.Inner%c.Heads != 0 {
		return bad("inner width %d must be a positive multiple of the head count %d", c.Inner, c.Heads)
	}
	if c.Views < 0 || c.Views > maxAdapterViews {
		return bad("%d view embeddings; 0 (none) to %d", c.Views, maxAdapterViews)
	}
	return nil
}

// maxAdapterViews bounds AdapterConfig.Views (a sanity limit on a file's config, not a design one).
const maxAdapterViews = 16

// Adapters are the trainable adapter parameters for one base model; the base stays frozen and separate.
type Adapters struct {
	Cfg    AdapterConfig
	Base   Config // the base model's config (the adapters only fit a model of this shape)
	VS     *nn.VarStore
	Device gotch.Device
	blocks map[int]*adapterBlock
}

type adapterBlock struct {
	q, k, v *Linear    // D → Inner
	cat     *Linear    // D + Inner → D (concat form)
	out     *Linear    // Inner → D (additive form)
	view    *ts.Tensor // [Views, D] view embeddings (Cfg.Views > 1), zero when fresh
}

// NewAdapters builds fresh adapters (a no-op until trained) for a base model of config base.
func NewAdapters(base Config, cfg AdapterConfig, device gotch.Device) (*Adapters, error) {
	if err := cfg.Validate(base); err != nil {
		return nil, err
	}
	vs := nn.NewVarStore(device)
	a := &Adapters{Cfg: cfg, Base: base, VS: vs, Device: device, blocks: map[int]*adapterBlock{}}
	d, r := int64(base.Width), int64(cfg.Inner)
	for _, i := range cfg.Blocks {
		p := vs.Root().Sub("blocks").Sub(fmt.Sprint(i))
		b := &adapterBlock{}
		var err error
		if b.q, err = newLinear(p.Sub("q"), d, r, initXavier); err != nil {
			vs.Destroy()
			return nil, err
		}
		if b.k, err = newLinear(p.Sub("k"), d, r, initXavier); err != nil {
			vs.Destroy()
			return nil, err
		}
		if b.v, err = newLinear(p.Sub("v"), d, r, initXavier); err != nil {
			vs.Destroy()
			return nil, err
		}
		if cfg.Additive {
			b.out, err = newLinear(p.Sub("out"), r, d, initZero)
		} else {
			b.cat, err = newLinear(p.Sub("cat"), d+r, d, initZero)
		}
		if err == nil && cfg.Views > 1 {
			b.view, err = p.NewVar("view", []int64{int64(cfg.Views), d}, nn.NewConstInit(0))
		}
		if err != nil {
			vs.Destroy()
			return nil, err
		}
		a.blocks[i] = b
	}
	if err := a.identityInit(); err != nil {
		vs.Destroy()
		return nil, err
	}
	return a, nil
}

// identityInit sets every concatenating linear to [I | 0], the adapter's no-op start.
func (a *Adapters) identityInit() error {
	if err := setTrainable(a.VS, false); err != nil {
		return err
	}
	d, r := a.Base.Width, a.Cfg.Inner
	w := make([]float32, d*(d+r))
	for i := range d {
		w[i*(d+r)+i] = 1
	}
	for _, b := range a.blocks {
		if b.cat == nil {
			continue
		}
		if err := setTensor(b.cat.Weight, w, []int64{int64(d), int64(d + r)}); err != nil {
			return fmt.Errorf("model: adapter init: %w", err)
		}
	}
	return nil
}

// Close frees the adapters' tensors.
func (a *Adapters) Close() { a.VS.Destroy() }

// NumParams counts the adapters' parameters.
func (a *Adapters) NumParams() int64 { return countParams(a.VS) }

// configJSON is the metadata form of the adapter and base configs.
func (a *Adapters) configJSON() (adapter, base string, err error) {
	x, err := json.Marshal(a.Cfg)
	if err != nil {
		return "", "", err
	}
	y, err := json.Marshal(a.Base)
	return string(x), string(y), err
}

// refKV is one adapted block's reference keys and values, split into heads: [R, H, Tr, hd], contiguous
// (made once per request, not at every step), with R = 1 (one reference shared by the batch) or one per
// conditional row (training, evaluations).
type refKV struct{ k, v *ts.Tensor }

// projectReference turns reference tokens [R, Tr, D] into a block's keys and values. It runs once per
// request: the reference does not change between steps.
func (a *Adapters) projectReference(o *ops, block int, ref *ts.Tensor) refKV {
	b := a.blocks[block]
	n := o.layerNorm(ref, a.Base.Width, nil, nil)
	if b.view != nil {
		n = a.addViewEmbedding(o, n, b.view)
	}
	return refKV{k: o.contiguous(a.splitHeads(o, o.linear(n, b.k))), v: o.contiguous(a.splitHeads(o, o.linear(n, b.v)))}
}

// addViewEmbedding adds view[v] to every token of view v of x [R, Tr, D], whose Tr tokens are whole
// references of Cfg.Views views of base.Tokens() tokens each.
func (a *Adapters) addViewEmbedding(o *ops, x, view *ts.Tensor) *ts.Tensor {
	sz := o.size(x)
	if sz == nil {
		return nil
	}
	nv, per := int64(a.Cfg.Views), int64(a.Base.Tokens())
	if sz[1]%(nv*per) != 0 {
		o.err = cachet.Errorf(cachet.CodeInvalidArgument, "the reference holds %d tokens, not whole references of %d views of %d tokens", sz[1], nv, per)
		return nil
	}
	refs := sz[1] / (nv * per)
	y := o.add(o.reshape(x, sz[0], refs, nv, per, sz[2]), o.reshape(view, 1, 1, nv, 1, sz[2]))
	return o.reshape(y, sz[0], sz[1], sz[2])
}

// splitHeads: [B, T, Inner] → [B, H, T, Inner/H].
func (a *Adapters) splitHeads(o *ops, x *ts.Tensor) *ts.Tensor {
	sz := o.size(x)
	if sz == nil {
		return nil
	}
	h := int64(a.Cfg.Heads)
	return o.permute(o.reshape(x, sz[0], sz[1], h, sz[2]/h), 0, 2, 1, 3)
}

// apply is the adapted attention sublayer of block for h, attn [B, T, D]. Only the first cond rows see the
// reference; the rest (guidance's unconditional branch) and the rows whose mask is 0 get m = 0, the null
// reference the adapters were trained with. mask, when set, is [B, 1, 1]: 1 (reference) or 0 (none).
func (a *Adapters) apply(o *ops, block int, h, attn *ts.Tensor, kv refKV, cond int, mask *ts.Tensor) *ts.Tensor {
	if !o.ok(h, attn, kv.k, kv.v) {
		return nil
	}
	b := a.blocks[block]
	sz, ksz := o.size(h), o.size(kv.k)
	if sz == nil || ksz == nil {
		return nil
	}
	rows, tokens, c := sz[0], sz[1], int64(cond)
	heads, inner := int64(a.Cfg.Heads), int64(a.Cfg.Inner)
	hd := inner / heads
	hc := h
	if c < rows {
		hc = o.narrow(h, 0, 0, c)
	}
	// The 1/√hd scale goes on q, the smaller side of the scores.
	q := o.scale(o.linear(hc, b.q), 1/math.Sqrt(float64(hd))) // [cond, T, Inner]
	var m *ts.Tensor
	if ksz[0] == 1 {
		// One shared reference: every row's tokens query the same keys, so the rows fold into the token axis
		// and each head is one matrix product instead of a batch of small ones.
		qh := o.permute(o.reshape(q, c*tokens, heads, hd), 1, 0, 2) // [H, cond·T, hd]
		k, v := o.reshape(kv.k, heads, ksz[2], hd), o.reshape(kv.v, heads, ksz[2], hd)
		m = o.matmul(o.softmax(o.matmul(qh, o.transpose(k, 1, 2)), -1), v) // [H, cond·T, hd]
		m = o.reshape(o.permute(m, 1, 0, 2), c, tokens, inner)
	} else {
		m = o.sdpa(a.splitHeads(o, q), kv.k, kv.v, a.Device) // [cond, H, T, hd]
		m = o.reshape(o.permute(m, 0, 2, 1, 3), c, tokens, inner)
	}
	if mask != nil {
		m = o.mul(m, mask)
	}
	if b.out != nil {
		// Rows without the reference get m = 0, whose projection is the bias alone: only the conditional
		// rows go through the matrix product.
		y := o.add(o.narrow(attn, 0, 0, c), o.linear(m, b.out))
		if c < rows {
			rest := o.narrow(attn, 0, c, rows-c)
			if b.out.Bias != nil {
				rest = o.add(rest, b.out.Bias)
			} else {
				rest = o.contiguous(rest)
			}
			y = o.cat(0, y, rest)
		}
		return y
	}
	if c < rows {
		zeros := o.keep(cZeros([]int64{rows - c, tokens, inner}, a.Device))
		m = o.cat(0, m, zeros)
	}
	return o.linear(o.cat(2, attn, m), b.cat)
}

// Injection is attention injection for one sampling request (DreamCache adapters with a subject's
// reference), applied in every forward pass next to the step-cache policy's hooks. Attention receives the
// block's modulated input h and self-attention output attn [B, T, D] (borrowed) and the number of leading
// rows that carry the request's condition (the rest are guidance's unconditional rows), and returns the
// attention sublayer's pre-gate output, owned by the caller.
type Injection struct {
	Blocks    []int
	Attention func(block, cond int, h, attn *Feature) (*Feature, error)
	// KeepPrompt gives guidance's unconditional rows the request's prompts instead of the null condition.
	KeepPrompt bool
}

// withInjection merges a request's injection into the hooks a step-cache policy passes for one forward.
// The policy's hooks are not modified (policies reuse theirs across steps).
func withInjection(h *Hooks, inj *Injection, cond int) (*Hooks, error) {
	if inj == nil {
		return h, nil
	}
	merged := &Hooks{}
	if h != nil {
		if h.InjectAttention != nil {
			return nil, fmt.Errorf("model: the step-cache policy and the request both inject attention")
		}
		*merged = *h
	}
	merged.InjectBlocks = inj.Blocks
	merged.InjectAttention = func(block int, hIn, attn *Feature) (*Feature, error) {
		return inj.Attention(block, cond, hIn, attn)
	}
	return merged, nil
}

// AdapterReference is one request's reference, projected to keys and values for every adapted block. Make
// it, sample with its Injection, then Close it, all on the model's worker.
type AdapterReference struct {
	a    *Adapters
	keep Scope
	kv   map[int]refKV
	rows int // 1: shared by every row; otherwise one per conditional row
	// twice holds per-row keys and values repeated for guidance's unconditional rows (KeepReference),
	// made on first use and kept with the reference.
	twice map[int]refKV
}

// NewReference projects reference tokens: data[i] holds tokens·Width values, the input hidden states of
// block blocks[i] (several reference images concatenated along tokens). Every adapted block must be there.
func (a *Adapters) NewReference(blocks []int, tokens int, data [][]float32) (*AdapterReference, error) {
	return a.NewRowReferences(blocks, 1, tokens, data)
}

// NewRowReferences is NewReference for a batch whose conditional rows each have their own reference
// (evaluations that batch several subjects): data[i] holds rows·tokens·Width values, row r's at
// [r·tokens·Width, (r+1)·tokens·Width). Requests sampled with it must have exactly rows images.
func (a *Adapters) NewRowReferences(blocks []int, rows, tokens int, data [][]float32) (*AdapterReference, error) {
	if len(blocks) != len(data) {
		return nil, fmt.Errorf("model: %d reference blocks for %d data slices", len(blocks), len(data))
	}
	if rows <= 0 {
		return nil, fmt.Errorf("model: %d reference rows", rows)
	}
	r := &AdapterReference{a: a, kv: map[int]refKV{}, rows: rows}
	o := newOps(&r.keep)
	for _, b := range a.Cfg.Blocks {
		k := slices.Index(blocks, b)
		if k < 0 {
			r.Close()
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the reference holds blocks %v; the adapters need block %d", blocks, b)
		}
		if tokens <= 0 || len(data[k]) != rows*tokens*a.Base.Width {
			r.Close()
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "reference block %d has %d values, want %d × %d tokens × %d", b, len(data[k]), rows, tokens, a.Base.Width)
		}
		ref := o.keep(FromFloat32s(data[k], []int64{int64(rows), int64(tokens), int64(a.Base.Width)}, a.Device))
		kv := a.projectReference(o, b, ref)
		if o.err != nil {
			r.Close()
			return nil, o.err
		}
		r.kv[b] = kv
	}
	return r, nil
}

// Close frees the reference's keys and values.
func (r *AdapterReference) Close() { r.keep.Drop() }

// ReferenceGuidance says which of classifier-free guidance's branches see a subject's reference.
type ReferenceGuidance int

const (
	// GuideReference shows the reference to the conditional rows only: guidance scales the subject's pull
	// together with the prompt's, v = v(∅, ∅) + g·(v(p, R) − v(∅, ∅)).
	GuideReference ReferenceGuidance = iota
	// KeepReference shows it to both branches: the subject enters once and guidance scales the prompt
	// alone, v = v(∅, R) + g·(v(p, R) − v(∅, R)). Same cost: the rows are there either way.
	KeepReference
	// GuideSubject keeps the prompt in both branches and the reference in the conditional one: guidance
	// scales the subject alone, v = v(p, ∅) + g·(v(p, R) − v(p, ∅)). Same cost.
	GuideSubject
)

// ReferenceGuidanceNames are the names ParseReferenceGuidance reads, in constant order.
var ReferenceGuidanceNames = []string{"joint", "prompt", "subject"}

// ParseReferenceGuidance reads "joint" (GuideReference), "prompt" (KeepReference) or "subject"
// (GuideSubject).
func ParseReferenceGuidance(name string) (ReferenceGuidance, error) {
	i := slices.Index(ReferenceGuidanceNames, name)
	if i < 0 {
		return 0, cachet.Errorf(cachet.CodeInvalidArgument, "reference guidance %q: want joint (guidance scales subject and prompt), prompt (it scales the prompt; the subject enters once) or subject (it scales the subject; the prompt enters once)", name)
	}
	return ReferenceGuidance(i), nil
}

// String is the guidance's name.
func (g ReferenceGuidance) String() string {
	if int(g) < 0 || int(g) >= len(ReferenceGuidanceNames) {
		return fmt.Sprintf("ReferenceGuidance(%d)", int(g))
	}
	return ReferenceGuidanceNames[g]
}

// Injection applies the adapters with this reference (set it as SampleRequest.Inject).
func (r *AdapterReference) Injection(g ReferenceGuidance) *Injection {
	return &Injection{Blocks: r.a.Cfg.Blocks, KeepPrompt: g == GuideSubject, Attention: func(block, cond int, h, attn *Feature) (*Feature, error) {
		kv, ok := r.kv[block]
		if !ok {
			return nil, fmt.Errorf("model: no adapter at block %d", block)
		}
		if r.rows > 1 && r.rows != cond {
			return nil, fmt.Errorf("model: %d per-row references for a request of %d images", r.rows, cond)
		}
		var s Scope
		defer s.Drop()
		o := newOps(&s)
		seeing := cond
		if g == KeepReference {
			if sz := o.size(h.t); sz != nil && int(sz[0]) > cond {
				seeing = int(sz[0])
				if r.rows > 1 {
					var err error
					if kv, err = r.repeated(block); err != nil {
						return nil, err
					}
				}
			}
		}
		out := r.a.apply(o, block, h.t, attn.t, kv, seeing, nil)
		if o.err != nil {
			return nil, o.err
		}
		return &Feature{t: s.Release(out)}, nil
	}}
}

// repeated is block's per-row keys and values twice over: guidance's unconditional rows repeat the
// conditional ones, so under KeepReference their references repeat too.
func (r *AdapterReference) repeated(block int) (refKV, error) {
	if kv, ok := r.twice[block]; ok {
		return kv, nil
	}
	kv := r.kv[block]
	o := newOps(&r.keep)
	twice := refKV{k: o.cat(0, kv.k, kv.k), v: o.cat(0, kv.v, kv.v)}
	if o.err != nil {
		return refKV{}, o.err
	}
	if r.twice == nil {
		r.twice = map[int]refKV{}
	}
	r.twice[block] = twice
	return twice, nil
}

// Randomize draws every adapter parameter from N(0, std²): tests and timing need adapters that act (fresh
// ones are a no-op).
func (a *Adapters) Randomize(std float64) error {
	if err := setTrainable(a.VS, false); err != nil {
		return err
	}
	for name, v := range a.VS.Variables() {
		if err := v.Normal_(0, std); err != nil {
			return fmt.Errorf("model: randomizing adapter %s: %w", name, err)
		}
	}
	return nil
}
