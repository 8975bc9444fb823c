// Package model is Cachet's only user of gotch (libtorch): the denoiser, its weights and sampler, and
// the runtime helpers (seeding, threads, tensor lifetime) everything else builds on.
package model

/*
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#include <pmmintrin.h>
// Flush denormals to zero (FTZ/DAZ), as torch.set_flush_denormal(True) does. adaLN-Zero starts its gates
// at zero, so early and lightly trained models are full of tiny products whose denormal slow path made
// steps an order of magnitude slower. Set at load (before any thread exists, so every thread created
// later inherits it) and again on each model worker thread.
static void cachet_flush_denormals(void) { _mm_setcsr(_mm_getcsr() | _MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON); }
__attribute__((constructor)) static void cachet_flush_denormals_at_load(void) { cachet_flush_denormals(); }
#else
static void cachet_flush_denormals(void) {}
#endif
#include <malloc.h>
// Bytes the C heap has handed out and not taken back (glibc); leaks in C code show up here, not in Go's heap.
static size_t cachet_malloc_in_use(void) { struct mallinfo2 m = mallinfo2(); return m.uordblks + m.hblkhd; }
// Defined by gotch's libtch (torch_api.cpp) but not wrapped in Go.
void at_manual_seed(int64_t);
int at_get_num_threads();
void at_set_num_threads(int n_threads);
int at_grad_set_enabled(int b);
*/
import "C"

import (
	"fmt"
	"github.com/cachetlab/cachet"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// setGradEnabled switches libtorch's (per-thread) grad mode and returns the previous mode. gotch's own
// GradSetEnabled reads the C int result as a Go int (8 bytes), so its "previous" value is garbage.
func setGradEnabled(on bool) (bool, error) {
	b := C.int(0)
	if on {
		b = 1
	}
	prev := C.at_grad_set_enabled(b)
	if err := ts.TorchErr(); err != nil {
		return false, err
	}
	return prev == 1, nil
}

// flushDenormals sets FTZ/DAZ on the calling OS thread.
func flushDenormals() { C.cachet_flush_denormals() }

// SetSeed seeds libtorch's global generator (CPU and CUDA): same seed, same random tensors.
func SetSeed(seed int64) error {
	C.at_manual_seed(C.int64_t(seed))
	return ts.TorchErr()
}

// NumThreads reports libtorch's intra-op thread count.
func NumThreads() int { return int(C.at_get_num_threads()) }

// SetNumThreads sets libtorch's intra-op thread count; n ≤ 0 leaves libtorch's default.
func SetNumThreads(n int) error {
	if n <= 0 {
		return nil
	}
	C.at_set_num_threads(C.int(n))
	if got := NumThreads(); got != n {
		return fmt.Errorf("model: asked libtorch for %d threads, it runs %d", n, got)
	}
	return nil
}

// CHeapInUse is the bytes the C heap holds (glibc's mallinfo2): libtorch's tensors and whatever C code
// leaks, which Go's heap statistics do not see. Tests and the soak read it.
func CHeapInUse() int64 { return int64(C.cachet_malloc_in_use()) }

// LiveTensors counts the C tensors gotch holds that have not been dropped. Only meaningful when no other
// goroutine is creating tensors at the same time (tests and benchmarks).
func LiveTensors() int { return len(ts.ExistingTensors) }

// RuntimeInfo describes the linked libtorch runtime, for /readyz and `cachet version`.
type RuntimeInfo struct {
	Device        string `json:"device"`
	Threads       int    `json:"threads"`
	CUDAAvailable bool   `json:"cuda_available"`
}

// Runtime reports the runtime's device and thread count.
func Runtime() RuntimeInfo {
	cuda := gotch.CPU.CudaIfAvailable() != gotch.CPU
	dev := "cpu"
	if cuda {
		dev = "cuda"
	}
	return RuntimeInfo{Device: dev, Threads: NumThreads(), CUDAAvailable: cuda}
}

// setTrainable switches gradient tracking of every parameter of vs on or off. (gotch v0.9.1's
// VarStore.Unfreeze returns an error after unfreezing a single variable, and TrainableVariables lists only
// the parameters currently tracking gradients.) The flag lives in the shared tensor implementation, so
// setting it through Variables()' handle copies reaches the VarStore's own.
func setTrainable(vs *nn.VarStore, on bool) error {
	for _, t := range vs.Variables() {
		if err := t.RequiresGrad_(on); err != nil {
			return fmt.Errorf("model: setting requires_grad=%v: %w", on, err)
		}
	}
	return nil
}

// Device is where a model's tensors live (libtorch's device, re-exported so callers need not import gotch).
type Device = gotch.Device

// CPU is the host device.
var CPU = gotch.CPU

// ParseDevice maps a --device value to a Device: "cpu", "cuda" (the first GPU; an error when the linked
// libtorch has none) or "auto" (CUDA when available).
func ParseDevice(name string) (Device, error) {
	cuda := gotch.CPU.CudaIfAvailable()
	switch name {
	case "cpu":
		return gotch.CPU, nil
	case "auto", "":
		return cuda, nil
	case "cuda":
		if cuda == gotch.CPU {
			return gotch.CPU, cachet.InvalidField("device", "cuda: the linked libtorch has no CUDA device; use cpu or auto")
		}
		return cuda, nil
	}
	return gotch.CPU, cachet.InvalidField("device", "%q: use auto, cpu or cuda", name)
}
