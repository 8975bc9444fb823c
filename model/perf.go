package model

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
)

// FLOPs is the analytic floating-point operation count of one denoiser evaluation, by part. Only the
// matrix products are counted (2 FLOPs per multiply-add; biases, normalisations, softmax, GELU, modulate and
// residual adds are O(T·D) and left out), the convention of the DiT paper's Gflops (which counts one
// multiply-add as one: DiT-XL/2 ≈ 118.6 G multiply-adds per image at 256², i.e. ≈ 237 GFLOP here).
type FLOPs struct {
	PatchEmbed float64 // patchify conv, as a [T, C·p²] × [C·p², D] product
	QKV        float64 // fused q/k/v projection, every block
	AttnScores float64 // q·kᵀ over all heads
	AttnValues float64 // softmax(scores)·v
	Proj       float64 // attention output projection
	MLP        float64 // fc1 + fc2
	AdaLN      float64 // every block's D → 6D modulation and the final layer's D → 2D
	Final      float64 // final linear D → p²·outC
	// Conditioning: timestep MLP (256 → D → D) and, for text models, the prompt encoder. Like AdaLN it
	// depends only on (t, condition): the sampler computes it once per request, not per step.
	Conditioning float64
}

// Total is one full evaluation (what Evaluate computes).
func (f FLOPs) Total() float64 {
	return f.PatchEmbed + f.QKV + f.AttnScores + f.AttnValues + f.Proj + f.MLP + f.AdaLN + f.Final + f.Conditioning
}

// Step is what a sampler step recomputes: Total less the per-request modulation and conditioning.
func (f FLOPs) Step() float64 { return f.Total() - f.AdaLN - f.Conditioning }

// FLOPBreakdown counts one evaluation of batch rows by part.
func (c Config) FLOPBreakdown(batch int) FLOPs {
	b := float64(batch)
	t, d := float64(c.Tokens()), float64(c.Width)
	p2 := float64(c.Patch * c.Patch)
	depth := float64(c.Depth)
	mm := func(m, k, n float64) float64 { return 2 * m * k * n } // [m,k]×[k,n]
	f := FLOPs{
		PatchEmbed: b * mm(t, float64(c.Channels)*p2, d),
		QKV:        b * depth * mm(t, d, 3*d),
		AttnScores: b * depth * mm(t, d, t), // heads × [T, hd]×[hd, T], heads·hd = D
		AttnValues: b * depth * mm(t, t, d),
		Proj:       b * depth * mm(t, d, d),
		MLP:        b * depth * 2 * mm(t, d, float64(c.MLPHidden())),
		AdaLN:      b * (depth*mm(1, d, 6*d) + mm(1, d, 2*d)),
		Final:      b * mm(t, d, p2*float64(c.OutChannels())),
	}
	f.Conditioning = b * (mm(1, timestepFreqDim, d) + mm(1, d, d))
	if c.Cond == CondText {
		l, dt := float64(c.MaxWords), float64(c.TextWidth)
		layer := mm(l, dt, 3*dt) + mm(l, dt, l) + mm(l, l, dt) + mm(l, dt, dt) + 2*mm(l, dt, 2*dt)
		f.Conditioning += b * (float64(c.TextDepth)*layer + mm(1, dt, d))
	}
	return f
}

// ForwardFLOPs is the FLOP count of one denoiser evaluation of batch rows (see FLOPs).
func (c Config) ForwardFLOPs(batch int) float64 { return c.FLOPBreakdown(batch).Total() }

// MatmulPeak measures fp32 n×n matmul throughput in GFLOP/s (2n³ per product) in this process: the best of
// several timed products after a warm-up, the ceiling a model's GFLOP/s is judged against. threads > 0 sets
// libtorch's intra-op thread count for the measurement (and restores it).
func MatmulPeak(n int, threads int) (gflops float64, err error) {
	if n <= 0 || n > 16384 {
		return 0, cachet.Errorf(cachet.CodeInvalidArgument, "matmul size must be between 1 and 16384 (got %d)", n)
	}
	if threads > 0 {
		prev := NumThreads()
		if err := SetNumThreads(threads); err != nil {
			return 0, err
		}
		defer func() { _ = SetNumThreads(prev) }()
	}
	var s Scope
	defer s.Drop()
	a, err := s.Track(ts.Randn([]int64{int64(n), int64(n)}, gotch.Float, gotch.CPU))
	if err != nil {
		return 0, err
	}
	b, err := s.Track(ts.Randn([]int64{int64(n), int64(n)}, gotch.Float, gotch.CPU))
	if err != nil {
		return 0, err
	}
	out, err := s.Track(ts.Zeros([]int64{int64(n), int64(n)}, gotch.Float, gotch.CPU))
	if err != nil {
		return 0, err
	}
	flop := 2 * math.Pow(float64(n), 3)
	one := func() (time.Duration, error) {
		start := time.Now()
		r, err := a.MmOut(out, b, false) // into a preallocated output: times the GEMM, not the allocator
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("model: matmul peak: %w", err)
		}
		return d, r.Drop()
	}
	for range 2 {
		if _, err := one(); err != nil {
			return 0, err
		}
	}
	best := time.Duration(math.MaxInt64)
	var spent time.Duration
	for i := 0; i < 5 || (spent < 300*time.Millisecond && i < 200); i++ {
		d, err := one()
		if err != nil {
			return 0, err
		}
		spent += d
		best = min(best, d)
	}
	return flop / best.Seconds() / 1e9, nil
}

// StepBench times the denoiser on a model with random weights (every parameter N(0, 0.02), so that no
// adaLN-Zero gate short-circuits anything numerically): one sampler step exactly as Sample runs it, or one
// Evaluate call. Create, use and close it on one Worker.
type StepBench struct {
	m      *DiT
	req    SampleRequest
	sched  Schedule
	keep   Scope
	x      *ts.Tensor
	mod    *modulation
	n      int
	guided bool
	in     EvalInput
}

// NewStepBench builds a random model of cfg for batch images; guidance > 1 makes each step a CFG-batched
// forward of 2·batch rows, as in Sample.
func NewStepBench(cfg Config, batch int, guidance float64, seed int64) (*StepBench, error) {
	if batch <= 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "batch must be positive (got %d)", batch)
	}
	if err := SetSeed(seed); err != nil {
		return nil, err
	}
	m, err := New(cfg, gotch.CPU)
	if err != nil {
		return nil, err
	}
	b := &StepBench{m: m, n: batch, guided: guidance > 1}
	if err := b.init(guidance, seed); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *StepBench) init(guidance float64, seed int64) error {
	m, cfg := b.m, b.m.Cfg
	if err := m.Randomize(0.02); err != nil {
		return err
	}
	steps := 20 // any count that divides 1000; the bench always times step 0
	b.sched = m.schedule(steps, 0)
	b.req = SampleRequest{Steps: steps, Guidance: guidance, Seed: seed}
	b.in = EvalInput{T: make([]float64, b.n), Null: make([]bool, b.n)}
	for i := range b.n {
		b.in.T[i] = b.sched.Times[0]
		if cfg.Cond == CondText {
			b.req.Prompts = append(b.req.Prompts, cfg.Vocabulary[i%len(cfg.Vocabulary)])
		} else {
			b.req.Labels = append(b.req.Labels, i%cfg.NumClasses)
		}
	}
	b.in.Prompts, b.in.Labels = b.req.Prompts, b.req.Labels
	if err := m.validate(&b.req); err != nil {
		return err
	}
	b.in.X = m.initialNoise(seed, b.n)
	o := newOps(&b.keep)
	b.mod = m.stepModulations(o, &b.req, b.sched, b.guided)[0]
	b.x = o.keep(FromFloat32s(b.in.X, []int64{int64(b.n), int64(cfg.Channels), int64(cfg.ImageSize), int64(cfg.ImageSize)}, m.Device))
	return o.err
}

// Rows is the number of rows each step's forward runs (2·batch with guidance).
func (b *StepBench) Rows() int {
	if b.guided {
		return 2 * b.n
	}
	return b.n
}

// StepFLOPs is what one Step computes (the per-request modulation excluded, as in Sample).
func (b *StepBench) StepFLOPs() float64 { return b.m.Cfg.FLOPBreakdown(b.Rows()).Step() }

// EvaluateFLOPs is what one Evaluate of batch rows computes.
func (b *StepBench) EvaluateFLOPs() float64 { return b.m.Cfg.ForwardFLOPs(b.n) }

// NumParams is the model's parameter count.
func (b *StepBench) NumParams() int64 { return b.m.NumParams() }

// Step runs one sampler step (always from the same x, so that random weights cannot drift the sample into
// infinities or denormals) and returns its wall time, freeing the result included as Sample does.
func (b *StepBench) Step() (time.Duration, error) {
	start := time.Now()
	next, err := b.m.step(&b.req, b.sched, 0, b.x, branches{mod: b.mod, guided: b.guided}, b.n)
	if err != nil {
		return 0, err
	}
	err = next.Drop()
	return time.Since(start), err
}

// Evaluate runs one Evaluate of batch rows (Go slices in and out, conditioning and modulation included).
func (b *StepBench) Evaluate() (time.Duration, error) {
	start := time.Now()
	_, err := b.m.Evaluate(b.in, nil)
	return time.Since(start), err
}

// Close frees the model and what the bench holds.
func (b *StepBench) Close() {
	_ = b.keep.Drop()
	b.m.Close()
}

// Randomize sets every parameter to N(0, std) (from libtorch's generator: SetSeed first) and freezes the
// model. Unlike DiT's initialisation — adaLN-Zero makes every block an identity — random weights exercise
// every path: for benchmarks and for tests of what sits on the seams.
func (m *DiT) Randomize(std float64) error {
	if err := setTrainable(m.VS, false); err != nil {
		return err
	}
	vars := m.VS.Variables()
	for _, name := range slices.Sorted(maps.Keys(vars)) { // a fixed order: the seeded RNG gives the same weights every run
		v := vars[name]
		if err := v.Normal_(0, std); err != nil {
			return fmt.Errorf("model: randomizing %s: %w", name, err)
		}
	}
	return nil
}
