package model

import (
	"fmt"
	"math"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
)

// textEncoder turns a prompt over a fixed vocabulary into the condition vector added to the timestep
// embedding: word + position embeddings → pre-LN transformer layers → mean over the words → projection.
// The null condition (for classifier-free guidance) is a learned vector of its own.
type textEncoder struct {
	index    map[string]int
	words    []string
	maxWords int
	width    int
	tok, pos *ts.Tensor // [V+1, Dt] (row V pads), [maxWords, Dt]
	layers   []*textLayer
	lnFinal  *LayerNorm
	proj     *Linear    // Dt → D
	null     *ts.Tensor // [D]
	query    *ts.Tensor // [Dt, 1] attention pooling's query (nil: mean pooling)
}

type textLayer struct {
	ln1, ln2 *LayerNorm
	attn     *attentionLayer
	mlp      *mlpLayer
}

// textHeads is the text encoder's attention head count (its width is small).
const textHeads = 4

func newTextEncoder(p *nn.Path, cfg Config) (*textEncoder, error) {
	e := &textEncoder{index: map[string]int{}, words: cfg.Vocabulary, maxWords: cfg.MaxWords, width: cfg.TextWidth}
	for i, w := range cfg.Vocabulary {
		e.index[w] = i
	}
	dt := int64(cfg.TextWidth)
	var err error
	if e.tok, err = p.NewVar("token_embedding", []int64{int64(len(cfg.Vocabulary) + 1), dt}, nn.NewRandnInit(0, 0.02)); err != nil {
		return nil, fmt.Errorf("model: text.token_embedding: %w", err)
	}
	if e.pos, err = p.NewVar("position_embedding", []int64{int64(cfg.MaxWords), dt}, nn.NewRandnInit(0, 0.02)); err != nil {
		return nil, fmt.Errorf("model: text.position_embedding: %w", err)
	}
	heads := textHeads
	if cfg.TextWidth%heads != 0 {
		heads = 1
	}
	for i := range cfg.TextDepth {
		lp := p.Sub("layers").Sub(fmt.Sprint(i))
		l := &textLayer{}
		if l.ln1, err = newLayerNorm(lp.Sub("ln1"), cfg.TextWidth); err != nil {
			return nil, err
		}
		if l.ln2, err = newLayerNorm(lp.Sub("ln2"), cfg.TextWidth); err != nil {
			return nil, err
		}
		if l.attn, err = newAttention(lp.Sub("attn"), cfg.TextWidth, heads, initXavier); err != nil {
			return nil, err
		}
		if l.mlp, err = newMLP(lp.Sub("mlp"), cfg.TextWidth, 2*cfg.TextWidth, initXavier); err != nil {
			return nil, err
		}
		e.layers = append(e.layers, l)
	}
	if e.lnFinal, err = newLayerNorm(p.Sub("ln_final"), cfg.TextWidth); err != nil {
		return nil, err
	}
	if e.proj, err = newLinear(p.Sub("proj"), dt, int64(cfg.Width), initXavier); err != nil {
		return nil, err
	}
	if e.null, err = p.NewVar("null_embedding", []int64{int64(cfg.Width)}, nn.NewRandnInit(0, 0.02)); err != nil {
		return nil, fmt.Errorf("model: text.null_embedding: %w", err)
	}
	if cfg.TextPool == TextPoolAttention {
		if e.query, err = p.NewVar(poolQueryName, []int64{dt, 1}, nn.NewConstInit(0)); err != nil {
			return nil, fmt.Errorf("model: text.%s: %w", poolQueryName, err)
		}
	}
	return e, nil
}

// poolQueryName is attention pooling's parameter (under "text.").
const poolQueryName = "pool_query"

// pool reduces the words x [B, L, Dt] to [B, Dt] over the mask [B, L, 1]: their mean, or with attention
// pooling their softmax(√Dt·x·q)-weighted sum (q = 0 is the mean). Null rows (no words) pool to 0. The
// query is scaled up by √Dt, not down: it starts at zero, and AdamW moves each coordinate by about the
// learning rate a step, so unscaled it would take tens of thousands of steps to weigh the words at all.
func (e *textEncoder) pool(o *ops, x, mask *ts.Tensor) *ts.Tensor {
	if e.query == nil {
		count := o.clampMin(o.sumDim(mask, 1), 1) // [B,1]: words per prompt (0 for null rows → 1)
		return o.div(o.sumDim(o.mul(x, mask), 1), count)
	}
	scores := o.scale(o.matmul(x, e.query), math.Sqrt(float64(e.width))) // [B, L, 1]
	scores = o.add(scores, o.scale(o.addScalar(mask, -1), 1e4))          // padding: −10⁴, softmax weight 0
	weights := o.mul(o.softmax(scores, 1), mask)                         // null rows: all padding → 0
	return o.sumDim(o.mul(x, weights), 1)
}

// PromptWords normalises a prompt into words: lower case, commas and full stops dropped.
func PromptWords(prompt string) []string {
	clean := strings.NewReplacer(",", " ", ".", " ", ";", " ").Replace(strings.ToLower(prompt))
	return strings.Fields(clean)
}

// CheckWords reports whether a text model can read prompt (known words, not too many), so a request can
// be refused before it queues for the worker. Label models read no prompts.
func (m *DiT) CheckWords(prompt string) error {
	if m.text == nil {
		return cachet.Errorf(cachet.CodeInvalidArgument, "this model is label-conditioned and reads no prompts")
	}
	_, err := m.text.tokenize(prompt)
	return err
}

// tokenize maps a prompt to word ids; an unknown word is an error that names it and lists the vocabulary.
func (e *textEncoder) tokenize(prompt string) ([]int64, error) {
	words := PromptWords(prompt)
	if len(words) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the prompt is empty")
	}
	if len(words) > e.maxWords {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the prompt has %d words; this model reads at most %d", len(words), e.maxWords)
	}
	ids := make([]int64, len(words))
	for i, w := range words {
		id, ok := e.index[w]
		if !ok {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "unknown word %q in prompt %q; the model knows: %s", w, prompt, strings.Join(e.words, ", "))
		}
		ids[i] = int64(id)
	}
	return ids, nil
}

// encode returns [B, D] condition vectors; rows with null[i] set get the null condition (their prompt
// is ignored).
func (e *textEncoder) encode(o *ops, prompts []string, null []bool, device gotch.Device) *ts.Tensor {
	if o.err != nil {
		return nil
	}
	b, l := len(prompts), e.maxWords
	pad := int64(len(e.words))
	ids := make([]int64, b*l)
	mask := make([]float32, b*l)
	isNull := make([]float32, b)
	for i, p := range prompts {
		for j := range l {
			ids[i*l+j] = pad
		}
		if null[i] {
			isNull[i] = 1
			continue
		}
		toks, err := e.tokenize(p)
		if err != nil {
			o.err = err
			return nil
		}
		for j, t := range toks {
			ids[i*l+j] = t
			mask[i*l+j] = 1
		}
	}
	idT := o.keep(ts.NewTensorFromData(ids, []int64{int64(b), int64(l)}))
	if idT != nil && device != gotch.CPU {
		idT = o.keep(cTo(idT, device))
	}
	maskT := o.keep(FromFloat32s(mask, []int64{int64(b), int64(l), 1}, device))
	nullT := o.keep(FromFloat32s(isNull, []int64{int64(b), 1}, device))
	if !o.ok(idT, maskT, nullT) {
		return nil
	}
	x := o.add(o.keep(cEmbedding(e.tok, idT)), e.pos)
	for _, lay := range e.layers {
		x = o.add(x, lay.attn.forward(o, o.layerNorm(x, e.width, lay.ln1.Weight, lay.ln1.Bias)))
		x = o.add(x, lay.mlp.forward(o, o.layerNorm(x, e.width, lay.ln2.Weight, lay.ln2.Bias)))
	}
	x = o.layerNorm(x, e.width, e.lnFinal.Weight, e.lnFinal.Bias)
	pooled := o.linear(e.pool(o, x, maskT), e.proj) // [B, D]
	// Null rows take the learned null vector: out = pooled·(1−n) + null·n.
	keepRows := o.addScalar(o.scale(nullT, -1), 1)
	return o.add(o.mul(pooled, keepRows), o.mul(nullT, e.null))
}
