package model

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkTrainStep times one optimizer step of the default model's size (flow loss, backward, AdamW,
// EMA) at small and training batch sizes: the difference between them separates the per-step fixed cost
// (op dispatch, optimizer and EMA loops) from the work that scales with the batch.
//
//	OMP_NUM_THREADS=1 scripts/in-env.sh go test -run '^$' -bench TrainStep ./model/
func BenchmarkTrainStep(b *testing.B) {
	cfg := benchConfig("fmnist")
	for _, batch := range []int{4, 64} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			m, err := New(cfg, CPU)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			tr, err := NewTrainer(m, TrainerConfig{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, EMADecay: 0.999})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			per := cfg.ImageSize * cfg.ImageSize * cfg.Channels
			tb := TrainBatch{Images: make([]float32, batch*per), Noise: make([]float32, batch*per),
				Labels: make([]int, batch), Null: make([]bool, batch), T: make([]float64, batch)}
			for i := range tb.Images {
				tb.Images[i], tb.Noise[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			for i := range batch {
				tb.Labels[i], tb.T[i] = i%10, rng.Float64()
			}
			for b.Loop() {
				if _, err := tr.Step(tb, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
		})
	}
}
