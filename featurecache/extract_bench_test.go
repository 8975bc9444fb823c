package featurecache_test

import (
	"context"
	"os"
	"testing"

	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
)

// BenchmarkExtract times the classifier's feature pass (block 5's input at t = 10) on the shipped model
// at batch 32: the extractor, which stops before block 5, against a full forward that captures the same
// tokens (what the pass cost before).
//
//	OMP_NUM_THREADS=1 scripts/in-env.sh go test ./featurecache -run '^$' -bench Extract -benchtime 20x
func BenchmarkExtract(b *testing.B) {
	const weights, batch = "../weights/base.safetensors", 32
	if _, err := os.Stat(weights); err != nil {
		b.Skip("no shipped weights")
	}
	w := model.NewWorker(false)
	defer w.Close()
	var m *model.DiT
	if err := w.Do(context.Background(), func() (err error) { m, _, err = model.Load(weights, model.CPU); return err }); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Do(context.Background(), func() error { m.Close(); return nil }) }()
	cfg := featurecache.DefaultConfig(m)
	cfg.Blocks = []int{5}
	e, err := featurecache.NewExtractor(w, m, "bench", cfg)
	if err != nil {
		b.Fatal(err)
	}
	imgs := randomImages(batch, e.ImagePixels(), 1)
	x := make([]float32, 0, batch*e.ImagePixels())
	in := model.EvalInput{T: make([]float64, batch), Null: make([]bool, batch), Prompts: make([]string, batch)}
	for i, img := range imgs {
		x = append(x, img...)
		in.T[i], in.Null[i] = cfg.TRef, true
	}
	in.X = x
	passes := map[string]func() error{
		"extractor": func() error { _, err := e.Extract(context.Background(), imgs); return err },
		"full-forward": func() error {
			return w.Do(context.Background(), func() error {
				_, err := m.Evaluate(in, &model.Hooks{CaptureBlocks: cfg.Blocks, Capture: func(_ int, h *model.Feature) error {
					_, err := h.Values()
					return err
				}})
				return err
			})
		},
	}
	for _, name := range []string{"extractor", "full-forward"} {
		b.Run(name, func(b *testing.B) {
			run := passes[name]
			if err := run(); err != nil { // warm-up
				b.Fatal(err)
			}
			for b.Loop() {
				if err := run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
