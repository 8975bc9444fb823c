package model

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// DiT is a diffusion transformer (Peebles & Xie): patchify → tokens + fixed 2-D sin-cos positions → N
// adaLN-Zero blocks (self-attention + MLP, modulated by timestep ⊕ condition) → final adaLN layer →
// unpatchify. Parameter names follow the original DiT state_dict, so converted checkpoints map 1:1.
type DiT struct {
	Cfg    Config
	VS     *nn.VarStore
	Device gotch.Device

	patchW, patchB *ts.Tensor // x_embedder.proj: conv [D, C, p, p], stride p
	pos            *ts.Tensor // [1, T, D] fixed sin-cos; not a parameter
	tMLP1, tMLP2   *Linear    // t_embedder.mlp.0 / .2
	labels         *ts.Tensor // y_embedder.embedding_table [classes+1, D] (label conditioning)
	text           *textEncoder
	blocks         []*ditBlock
	finalMod       *Linear // final_layer.adaLN_modulation.1: D → 2D
	finalOut       *Linear // final_layer.linear: D → p·p·outC
}

type ditBlock struct {
	attn *attentionLayer
	mlp  *mlpLayer
	mod  *Linear // adaLN_modulation.1: D → 6D
}

// timestepFreqDim is the sinusoidal embedding's size before the timestep MLP (DiT's frequency_embedding_size).
const timestepFreqDim = 256

// New builds a DiT with fresh parameters (DiT's initialisation: xavier linears, adaLN-Zero) on device.
func New(cfg Config, device gotch.Device) (*DiT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	vs := nn.NewVarStore(device)
	m := &DiT{Cfg: cfg, VS: vs, Device: device}
	root := vs.Root()
	d, c, p := int64(cfg.Width), int64(cfg.Channels), int64(cfg.Patch)
	var err error

	xe := root.Sub("x_embedder").Sub("proj")
	bound := math.Sqrt(6 / float64(c*p*p+d)) // xavier on the conv viewed as a [D, C·p·p] linear
	if m.patchW, err = xe.NewVar("weight", []int64{d, c, p, p}, nn.NewUniformInit(-bound, bound)); err != nil {
		return nil, fmt.Errorf("model: x_embedder: %w", err)
	}
	if m.patchB, err = xe.NewVar("bias", []int64{d}, nn.NewConstInit(0)); err != nil {
		return nil, fmt.Errorf("model: x_embedder: %w", err)
	}
	te := root.Sub("t_embedder").Sub("mlp")
	if m.tMLP1, err = newLinear(te.Sub("0"), timestepFreqDim, d, initNormal02); err != nil {
		return nil, err
	}
	if m.tMLP2, err = newLinear(te.Sub("2"), d, d, initNormal02); err != nil {
		return nil, err
	}
	switch cfg.Cond {
	case CondLabel:
		m.labels, err = root.Sub("y_embedder").NewVar("embedding_table", []int64{int64(cfg.NumClasses + 1), d}, nn.NewRandnInit(0, 0.02))
		if err != nil {
			return nil, fmt.Errorf("model: y_embedder: %w", err)
		}
	case CondText:
		if m.text, err = newTextEncoder(root.Sub("text"), cfg); err != nil {
			return nil, err
		}
	}
	for i := range cfg.Depth {
		bp := root.Sub("blocks").Sub(fmt.Sprint(i))
		b := &ditBlock{}
		if b.attn, err = newAttention(bp.Sub("attn"), cfg.Width, cfg.Heads, initXavier); err != nil {
			return nil, err
		}
		if b.mlp, err = newMLP(bp.Sub("mlp"), cfg.Width, cfg.MLPHidden(), initXavier); err != nil {
			return nil, err
		}
		if b.mod, err = newLinear(bp.Sub("adaLN_modulation").Sub("1"), d, 6*d, initZero); err != nil {
			return nil, err
		}
		m.blocks = append(m.blocks, b)
	}
	fl := root.Sub("final_layer")
	if m.finalMod, err = newLinear(fl.Sub("adaLN_modulation").Sub("1"), d, 2*d, initZero); err != nil {
		return nil, err
	}
	if m.finalOut, err = newLinear(fl.Sub("linear"), d, p*p*int64(cfg.OutChannels()), initZero); err != nil {
		return nil, err
	}
	if m.pos, err = sincosPosEmbed(cfg.Width, cfg.ImageSize/cfg.Patch, device); err != nil {
		return nil, err
	}
	return m, nil
}

// Close frees the model's tensors.
func (m *DiT) Close() {
	if m.pos != nil {
		m.pos.Drop()
		m.pos = nil
	}
	m.VS.Destroy()
}

// NumParams counts trainable parameters.
func (m *DiT) NumParams() int64 { return countParams(m.VS) }

// countParams counts the values of a VarStore's parameters.
func countParams(vs *nn.VarStore) int64 {
	var n int64
	for _, v := range vs.Variables() {
		sz, err := v.Size()
		if err != nil {
			continue
		}
		k := int64(1)
		for _, d := range sz {
			k *= d
		}
		n += k
	}
	return n
}

// sincosPosEmbed reproduces DiT's get_2d_sincos_pos_embed: for the token at row i, column j the first
// half of the channels encodes j and the second half i (DiT's meshgrid puts w first).
func sincosPosEmbed(width, grid int, device gotch.Device) (*ts.Tensor, error) {
	half := width / 2
	oneD := func(pos float64, out []float32) { // [sin(pos·ω) ‖ cos(pos·ω)], ω_k = 1/10000^(k/(half/2))
		q := half / 2
		for k := range q {
			omega := 1 / math.Pow(10000, float64(k)/float64(q))
			out[k] = float32(math.Sin(pos * omega))
			out[q+k] = float32(math.Cos(pos * omega))
		}
	}
	data := make([]float32, grid*grid*width)
	for i := range grid {
		for j := range grid {
			row := data[(i*grid+j)*width:]
			oneD(float64(j), row[:half])
			oneD(float64(i), row[half:width])
		}
	}
	return FromFloat32s(data, []int64{1, int64(grid * grid), int64(width)}, device)
}

// timestepEmbedding is DiT's sinusoidal embedding [cos(t·f) ‖ sin(t·f)], f_k = 10000^(−k/half), for
// model-time values t (0…1000).
func timestepEmbedding(t []float64, device gotch.Device) (*ts.Tensor, error) {
	half := timestepFreqDim / 2
	data := make([]float32, len(t)*timestepFreqDim)
	for b, tv := range t {
		for k := range half {
			arg := tv * math.Exp(-math.Log(10000)*float64(k)/float64(half))
			data[b*timestepFreqDim+k] = float32(math.Cos(arg))
			data[b*timestepFreqDim+half+k] = float32(math.Sin(arg))
		}
	}
	return FromFloat32s(data, []int64{int64(len(t)), timestepFreqDim}, device)
}
