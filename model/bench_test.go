package model

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The denoiser benchmarks: one Evaluate of B rows and one sampler step with CFG (2·B rows), per preset and
// batch size, with ms/step, images/s and achieved GFLOP/s (ForwardFLOPs) as custom metrics. Run them on a
// fixed thread count, e.g.
//
//	OMP_NUM_THREADS=1 scripts/in-env.sh go test -run '^$' -bench Denoiser -short ./model/
//
// (-short skips DiT-L/2 and DiT-XL/2). `cachet bench model` adds the matmul peak and a PyTorch reference.

func TestForwardFLOPsTinyHandCount(t *testing.T) {
	c := Presets["tiny"] // 8×8×1, patch 2 → T = 16 tokens; D = 32, depth 2, MLP 64, out 1 channel
	// Per row, 2 FLOPs per multiply-add:
	const (
		patch  = 2 * 16 * 4 * 32         // [16, 1·2·2] × [4, 32]               = 4096
		qkv    = 2 * 16 * 32 * 96        // [16, 32] × [32, 96]                 = 98304
		scores = 2 * 16 * 16 * 32        // 2 heads × [16, 16] × [16, 16]       = 16384
		values = 2 * 16 * 16 * 32        // 2 heads × [16, 16] × [16, 16]       = 16384
		proj   = 2 * 16 * 32 * 32        // = 32768
		mlp    = 2*16*32*64 + 2*16*64*32 // fc1 + fc2                           = 131072
		adaLN  = 2 * 32 * 192            // D → 6D, once per row                = 12288
		block  = qkv + scores + values + proj + mlp + adaLN
		final  = 2*32*64 + 2*16*32*4 // adaLN D → 2D + linear D → 2·2·1        = 8192
		tMLP   = 2*256*32 + 2*32*32  // timestep MLP                          = 18432
		perRow = patch + 2*block + final + tMLP
	)
	if perRow != 645120 {
		t.Fatalf("hand count arithmetic: %d", perRow)
	}
	for _, batch := range []int{1, 3} {
		if got, want := c.ForwardFLOPs(batch), float64(batch*perRow); got != want {
			t.Errorf("tiny ForwardFLOPs(%d) = %v, hand count %v", batch, got, want)
		}
	}
	f := c.FLOPBreakdown(1)
	if got, want := f.Step(), float64(perRow-2*adaLN-2*32*64-tMLP); got != want {
		t.Errorf("tiny step FLOPs = %v, want %v (no adaLN, no timestep MLP)", got, want)
	}
	if f.AttnScores != 2*scores || f.MLP != 2*mlp || f.QKV != 2*qkv {
		t.Errorf("breakdown %+v disagrees with the hand count", f)
	}
}

// The DiT paper's Table 4 "Gflops" (fvcore, one multiply-add = one flop) for the 256² models.
func TestForwardFLOPsMatchDiTPaper(t *testing.T) {
	for name, gmacs := range map[string]float64{"dit-s/2": 6.06, "dit-b/2": 23.01, "dit-l/2": 80.71, "dit-xl/2": 118.64} {
		got := Presets[name].ForwardFLOPs(1) / 2 / 1e9
		if math.Abs(got-gmacs)/gmacs > 0.01 {
			t.Errorf("%s: %.2f G multiply-adds, DiT paper %.2f", name, got, gmacs)
		}
	}
}

// benchConfigs are the presets plus "fmnist", the default model's size (text conditioning only changes the
// per-request conditioning, which a step does not recompute, so a label model of that size times the same).
func benchConfig(name string) Config {
	if name == "fmnist" {
		return Config{ImageSize: 32, Channels: 1, Patch: 4, Width: 256, Depth: 6, Heads: 4, MLPRatio: 4,
			Prediction: PredictFlow, Cond: CondLabel, NumClasses: 10}
	}
	return Presets[name]
}

func BenchmarkDenoiser(b *testing.B) {
	for _, name := range []string{"tiny", "fmnist", "dit-s/2", "dit-b/2", "dit-l/2", "dit-xl/2"} {
		for _, batch := range []int{1, 4} {
			label := fmt.Sprintf("%s/batch=%d", strings.ReplaceAll(name, "/", "_"), batch)
			b.Run(label+"/evaluate", func(b *testing.B) { benchDenoiser(b, name, batch, false) })
			b.Run(label+"/step-cfg", func(b *testing.B) { benchDenoiser(b, name, batch, true) })
		}
	}
}

func benchDenoiser(b *testing.B, preset string, batch int, step bool) {
	if testing.Short() && (preset == "dit-l/2" || preset == "dit-xl/2") {
		b.Skip("-short: DiT-L/2 and DiT-XL/2 skipped")
	}
	runtime.LockOSThread() // libtorch's grad mode is per OS thread
	defer runtime.UnlockOSThread()
	prev, err := ts.GradSetEnabled(false)
	if err != nil {
		b.Fatal(err)
	}
	defer ts.GradSetEnabled(prev)
	sb, err := NewStepBench(benchConfig(preset), batch, 4, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	run, flop := sb.Evaluate, sb.EvaluateFLOPs()
	if step {
		run, flop = sb.Step, sb.StepFLOPs()
	}
	if _, err := run(); err != nil { // warm-up (allocator, BLAS buffers)
		b.Fatal(err)
	}
	tensors := ts.TensorCount
	if _, err := run(); err != nil {
		b.Fatal(err)
	}
	tensors = ts.TensorCount - tensors // gotch tensors created (each with a 100 KB Go allocation)
	var total time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for b.Loop() {
		d, err := run()
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	sec := total.Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/step")
	// Process CPU time (all threads, GC included): steadier than wall time on a shared machine.
	b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/step")
	b.ReportMetric(float64(batch)/sec, "images/s")
	b.ReportMetric(flop/sec/1e9, "GFLOP/s")
	b.ReportMetric(float64(NumThreads()), "threads")
	b.ReportMetric(float64(tensors), "tensors/step")
	b.ReportMetric(0, "ns/op") // ms/step says it
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTensorOpOverhead is the fixed cost of one gotch op on a 1-element tensor (creating and dropping
// the result): libtorch's dispatch plus gotch's per-tensor bookkeeping (a 100 KB zeroed Go allocation, a
// global map entry with a formatted name, a finalizer). Compare with PyTorch eager's ~µs per op.
func BenchmarkTensorOpOverhead(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x, err := ts.Ones([]int64{1}, gotch.Float, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	defer x.Drop()
	b.ReportAllocs()
	for b.Loop() {
		y, err := x.Add(x, false)
		if err != nil {
			b.Fatal(err)
		}
		y.Drop()
	}
}
