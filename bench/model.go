// Package bench measures Cachet's denoiser: step time, throughput and achieved GFLOP/s per preset and
// batch, against the fp32 matmul peak measured in the same process and, optionally, against a PyTorch
// eager reference of the same architecture (reference_step.py) timed interleaved with the Go steps.
package bench

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

//go:embed reference_step.py
var referenceScript []byte

// ModelOptions configures Model.
type ModelOptions struct {
	Presets   []string // model.Presets names, or "fmnist" (the default model's size)
	Batches   []int    // images per step (the forward runs 2× with guidance)
	Steps     int      // timed steps per preset and batch (and per side with Reference)
	Warmup    int      // untimed steps first (per side)
	Threads   int      // libtorch intra-op threads (0 = libtorch's default); PyTorch gets the same
	Guidance  float64  // > 1: CFG-batched steps (2·batch rows), as Sample runs them
	MatmulN   int      // size of the matmul-peak product
	Reference bool     // also time reference_step.py, interleaved step by step
	Python    string   // interpreter for the reference
	RefAttn   string   // reference attention: "matmul" (as Cachet) or "sdpa"
	Seed      int64
	// GOGC lists Go collector settings to time one after the other (GCOff, or a percentage), each after
	// its own warm-up; empty: leave the process's own. The PyTorch steps interleave with all of them.
	GOGC     []int
	Progress io.Writer // one line per measurement (nil: silent)
}

// DefaultModelOptions are `cachet bench model`'s defaults.
func DefaultModelOptions() ModelOptions {
	return ModelOptions{Presets: []string{"dit-s/2"}, Batches: []int{1, 4}, Steps: 20, Warmup: 3, Guidance: 4,
		MatmulN: 1024, Python: "python3", RefAttn: "matmul", Seed: 1}
}

// ModelResult is one preset × batch (× GOGC setting).
type ModelResult struct {
	Preset    string       `json:"preset"`
	GOGC      string       `json:"gogc"` // the Go collector's setting during these steps
	Config    model.Config `json:"config"`
	Params    int64        `json:"params"`
	Batch     int          `json:"batch"`
	Rows      int          `json:"rows"`
	StepGFLOP float64      `json:"step_gflop"`
	StepsMS   []float64    `json:"steps_ms"`
	MedianMS  float64      `json:"median_ms"`
	// CPUMedianMS is the median process CPU time per step (all threads, GC included): robust to other
	// processes taking the CPU away, which wall time is not on a shared machine.
	CPUMedianMS  float64    `json:"cpu_median_ms"`
	ImagesPerSec float64    `json:"images_per_s"`
	GFLOPs       float64    `json:"gflop_per_s"`
	PeakFraction float64    `json:"peak_fraction"`
	Ref          *RefResult `json:"reference,omitempty"`
	// GoOverRef is the Go/PyTorch median step-time ratio (> 1: Go is slower).
	GoOverRef float64 `json:"go_over_pytorch,omitempty"`
	// GoOverRefCPU is the same ratio of CPU times.
	GoOverRefCPU float64 `json:"go_over_pytorch_cpu,omitempty"`
}

// RefResult is the PyTorch side of one preset × batch.
type RefResult struct {
	Torch       string    `json:"torch"`
	Threads     int       `json:"threads"`
	Attn        string    `json:"attn"`
	Params      int64     `json:"params"`
	StepsMS     []float64 `json:"steps_ms"`
	MedianMS    float64   `json:"median_ms"`
	CPUMedianMS float64   `json:"cpu_median_ms"`
	GFLOPs      float64   `json:"gflop_per_s"`
}

// ModelReport is a whole run.
type ModelReport struct {
	Command    string        `json:"command,omitempty"`
	Start      time.Time     `json:"start"`
	GoVersion  string        `json:"go_version"`
	Threads    int           `json:"threads"`
	Guidance   float64       `json:"guidance"`
	Steps      int           `json:"steps"`
	Warmup     int           `json:"warmup"`
	MatmulN    int           `json:"matmul_n"`
	PeakGFLOPs []float64     `json:"matmul_peak_gflop_per_s"` // before and after the model timings
	Peak       float64       `json:"matmul_peak"`             // their maximum: the ceiling used
	Results    []ModelResult `json:"results"`
}

// PresetConfig resolves a preset name: model.Presets, or "fmnist" — the default model's architecture
// (32×32×1, patch 4, width 256, depth 6, heads 4, text-conditioned) as `cachet train base` builds it.
func PresetConfig(name string) (model.Config, error) {
	if strings.EqualFold(name, "fmnist") {
		return model.Config{ImageSize: scene.CanvasSide, Channels: 1, Patch: 4, Width: 256, Depth: 6, Heads: 4,
			MLPRatio: 4, Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: scene.Vocabulary(),
			MaxWords: 10, TextWidth: 128, TextDepth: 1}, nil
	}
	c, err := model.Preset(name)
	if err != nil {
		return model.Config{}, cachet.Errorf(cachet.CodeInvalidArgument, "unknown preset %q; use fmnist or one of: %s", name, strings.Join(model.PresetNames(), ", "))
	}
	return c, nil
}

func (o ModelOptions) validate() error {
	switch {
	case len(o.Presets) == 0:
		return cachet.Invalid("--preset: name at least one preset")
	case len(o.Batches) == 0:
		return cachet.Invalid("--batch: give at least one batch size")
	case o.Steps < 1 || o.Steps > 10000:
		return cachet.Invalid("--steps must be between 1 and 10000 (got %d)", o.Steps)
	case o.Warmup < 0 || o.Warmup > 1000:
		return cachet.Invalid("--warmup must be between 0 and 1000 (got %d)", o.Warmup)
	case o.Threads < 0 || o.Threads > 1024:
		return cachet.Invalid("--threads must be between 0 and 1024 (got %d)", o.Threads)
	case o.MatmulN < 64 || o.MatmulN > 8192:
		return cachet.Invalid("--matmul-n must be between 64 and 8192 (got %d)", o.MatmulN)
	case o.Guidance < 0 || o.Guidance > 50:
		return cachet.Invalid("--guidance must be between 0 and 50 (got %v)", o.Guidance)
	case o.RefAttn != "matmul" && o.RefAttn != "sdpa":
		return cachet.Invalid("--reference-attn %q: use matmul or sdpa", o.RefAttn)
	}
	for _, b := range o.Batches {
		if b < 1 || b > 1024 {
			return cachet.Invalid("--batch sizes must be between 1 and 1024 (got %d)", b)
		}
	}
	for _, p := range o.Presets {
		if _, err := PresetConfig(p); err != nil {
			return err
		}
	}
	return nil
}

// ParseBatches reads "1,4,16".
func ParseBatches(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "--batch %q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "--batch %q: want positive integers separated by commas", s)
	}
	return out, nil
}

// Model runs the benchmark. All model work runs on one Worker (a locked OS thread, gradients off).
func Model(ctx context.Context, o ModelOptions) (*ModelReport, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := &ModelReport{Start: time.Now().UTC(), GoVersion: runtime.Version(), Guidance: o.Guidance, Steps: o.Steps,
		Warmup: o.Warmup, MatmulN: o.MatmulN}
	w := model.NewWorker(false)
	defer w.Close()

	var script string
	if o.Reference {
		f, err := os.CreateTemp("", "cachet-reference-step-*.py")
		if err != nil {
			return nil, fmt.Errorf("bench: writing the reference script: %w", err)
		}
		script = f.Name()
		defer os.Remove(script)
		if _, err := f.Write(referenceScript); err != nil {
			f.Close()
			return nil, fmt.Errorf("bench: writing the reference script: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("bench: writing the reference script: %w", err)
		}
	}

	peak := func() error {
		return w.Do(ctx, func() error {
			g, err := model.MatmulPeak(o.MatmulN, o.Threads)
			if err != nil {
				return err
			}
			rep.PeakGFLOPs = append(rep.PeakGFLOPs, g)
			fmt.Fprintf(progress, "matmul %d² fp32: %.1f GFLOP/s\n", o.MatmulN, g)
			return nil
		})
	}
	err := w.Do(ctx, func() error {
		if err := model.SetNumThreads(o.Threads); err != nil {
			return err
		}
		rep.Threads = model.NumThreads()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := peak(); err != nil {
		return nil, err
	}
	for _, name := range o.Presets {
		cfg, _ := PresetConfig(name)
		for _, batch := range o.Batches {
			if err := ctx.Err(); err != nil {
				return nil, cachet.Wrap(cachet.CodeCanceled, err, "bench canceled")
			}
			res, err := runOne(ctx, w, o, rep.Threads, script, name, cfg, batch, progress)
			if err != nil {
				return nil, fmt.Errorf("bench: %s batch %d: %w", name, batch, err)
			}
			rep.Results = append(rep.Results, res...)
		}
	}
	if err := peak(); err != nil {
		return nil, err
	}
	rep.Peak = slices.Max(rep.PeakGFLOPs)
	for i := range rep.Results {
		rep.Results[i].PeakFraction = rep.Results[i].GFLOPs / rep.Peak
	}
	return rep, nil
}

func runOne(ctx context.Context, w *model.Worker, o ModelOptions, threads int, script, name string, cfg model.Config, batch int, progress io.Writer) ([]ModelResult, error) {
	var sb *model.StepBench
	var params int64
	err := w.Do(ctx, func() error {
		var err error
		if sb, err = model.NewStepBench(cfg, batch, o.Guidance, o.Seed); err == nil {
			params = sb.NumParams()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	defer w.Do(context.Background(), func() error { sb.Close(); return nil })
	base := ModelResult{Preset: name, Config: cfg, Params: params, Batch: batch, Rows: sb.Rows(), StepGFLOP: sb.StepFLOPs() / 1e9}
	if len(cfg.Vocabulary) > 0 {
		base.Config.Vocabulary = nil // keep the report short; the preset names it
	}

	var ref *refProc
	if script != "" {
		if ref, err = startRef(ctx, o, threads, script, cfg, batch); err != nil {
			return nil, err
		}
		defer ref.close()
		if ref.ready.Threads != threads {
			return nil, fmt.Errorf("the reference runs %d threads, Go %d", ref.ready.Threads, threads)
		}
	}
	gcs := o.GOGC
	if len(gcs) == 0 {
		gcs = []int{GCUnchanged}
	}
	goWall, goCPU := make([][]time.Duration, len(gcs)), make([][]time.Duration, len(gcs))
	var refWall, refCPU []time.Duration
	// A round is one Go step and one PyTorch step, so that both see the same machine state (other load,
	// clock, caches evicted by the other side). GC settings run one after the other, each in its own
	// steady state (the collector's cost is mostly page faults on memory it returned to the OS, so it
	// cannot be switched per step): its warm-up rounds, then its timed rounds.
	round := func(k int, record bool) error {
		var wall, cpu time.Duration
		err := w.Do(ctx, func() error {
			c0 := processCPU()
			var err error
			wall, err = sb.Step()
			cpu = processCPU() - c0
			return err
		})
		if err != nil {
			return err
		}
		if record {
			goWall[k], goCPU[k] = append(goWall[k], wall), append(goCPU[k], cpu)
		}
		if ref == nil {
			return nil
		}
		ws, cs, err := ref.steps(1)
		if err != nil {
			return err
		}
		if record {
			refWall, refCPU = append(refWall, ws...), append(refCPU, cs...)
		}
		return nil
	}
	for k, gc := range gcs {
		restore := setGC(gc)
		for range o.Warmup {
			if err := round(k, false); err != nil {
				restore()
				return nil, err
			}
		}
		for range o.Steps {
			if err := round(k, true); err != nil {
				restore()
				return nil, err
			}
		}
		restore()
	}
	var out []ModelResult
	for k, gc := range gcs {
		res := base
		res.GOGC = gcLabel(gc)
		med := median(goWall[k])
		res.StepsMS, res.MedianMS, res.CPUMedianMS = millis(goWall[k]), cachet.Millis(med), cachet.Millis(median(goCPU[k]))
		res.ImagesPerSec = float64(batch) / med.Seconds()
		res.GFLOPs = sb.StepFLOPs() / med.Seconds() / 1e9
		line := fmt.Sprintf("%s batch %d GOGC=%s: Go %.1f ms/step (CPU %.1f ms, %.1f GFLOP/s)", name, batch, res.GOGC, res.MedianMS, res.CPUMedianMS, res.GFLOPs)
		if ref != nil {
			rm := median(refWall)
			res.Ref = &RefResult{Torch: ref.ready.Torch, Threads: ref.ready.Threads, Attn: ref.ready.Attn, Params: ref.ready.Params,
				StepsMS: millis(refWall), MedianMS: cachet.Millis(rm), CPUMedianMS: cachet.Millis(median(refCPU)), GFLOPs: sb.StepFLOPs() / rm.Seconds() / 1e9}
			res.GoOverRef = med.Seconds() / rm.Seconds()
			res.GoOverRefCPU = res.CPUMedianMS / res.Ref.CPUMedianMS
			line += fmt.Sprintf(", PyTorch %.1f ms/step (CPU %.1f ms), Go/PyTorch %.2f (CPU %.2f)", res.Ref.MedianMS, res.Ref.CPUMedianMS, res.GoOverRef, res.GoOverRefCPU)
		}
		fmt.Fprintln(progress, line)
		out = append(out, res)
	}
	return out, nil
}

// GCUnchanged leaves the Go collector as the process runs it (GOGC, GOMEMLIMIT); GCOff turns it off
// under a memory limit (GOMEMLIMIT if set, else 1 GiB) for the step.
const (
	GCUnchanged = -2
	GCOff       = -1
)

// offLimit is the memory limit of GCOff steps when GOMEMLIMIT sets none.
const offLimit = 1 << 30

// setGC applies a GC setting and returns what restores the previous one. A collection runs first, so
// that the setting does not start with the garbage of the previous one.
func setGC(gc int) (restore func()) {
	if gc == GCUnchanged {
		return func() {}
	}
	runtime.GC()
	prevLimit := debug.SetMemoryLimit(-1)
	if gc == GCOff && prevLimit == math.MaxInt64 {
		debug.SetMemoryLimit(offLimit)
	}
	prev := debug.SetGCPercent(gc)
	return func() {
		debug.SetGCPercent(prev)
		debug.SetMemoryLimit(prevLimit)
	}
}

func gcLabel(gc int) string {
	switch gc {
	case GCUnchanged:
		if v := os.Getenv("GOGC"); v != "" {
			return v
		}
		return "100"
	case GCOff:
		return "off"
	}
	return strconv.Itoa(gc)
}

// ParseGOGC reads "100,off,400" (GCOff for "off").
func ParseGOGC(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(strings.ToLower(f))
		switch {
		case f == "":
			continue
		case f == "off":
			out = append(out, GCOff)
		default:
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || n > 100000 {
				return nil, cachet.Errorf(cachet.CodeInvalidArgument, "--gogc %q: want percentages (1…100000) or off, separated by commas", s)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = cachet.Millis(d)
	}
	return out
}
