// Package model is Cachet's only user of gotch (libtorch): the denoiser, its weights and sampler, and
// the runtime helpers (seeding, threads, tensor lifetime) everything else builds on.
package model

/*
#include <stdint.h>
// Defined by gotch's libtch (torch_api.cpp) but not wrapped in Go.
void at_manual_seed(int64_t);
int at_get_num_threads();
void at_set_num_threads(int n_threads);
*/
import "C"

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

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
