package generate_test

import (
	"context"
	"testing"

	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/generate/generatetest"
	"github.com/cachetlab/cachet/model"
)

// A served request must not leave C heap behind (gotch's own op wrappers leak 32 bytes an op: a request
// of the default architecture ran about a thousand of them). Small scenes take the detail redraw too.
func TestRequestsLeaveNoCHeap(t *testing.T) {
	s := generatetest.New(t)
	svc := generate.New(s.Worker, s.DiT, generate.Options{ModelID: s.ModelID, DefaultDetail: generate.Detail{Strength: 0.5}})
	run := func(n int) {
		for i := range n {
			prompt := []string{"a small bag on the left", "a large coat"}[i%2]
			if _, err := svc.Generate(context.Background(), generate.Request{Prompt: prompt, N: 1, Seed: int64(i), Steps: 4, Guidance: 3}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(10) // warm-up: allocator pools, lazily built kernels
	var before, after int64
	_ = s.Worker.Do(context.Background(), func() error { before = model.CHeapInUse(); return nil })
	const requests = 100
	run(requests)
	_ = s.Worker.Do(context.Background(), func() error { after = model.CHeapInUse(); return nil })
	per := float64(after-before) / requests
	t.Logf("C heap %+.0f bytes a request", per)
	if per > 2048 {
		t.Errorf("the C heap grew by %.0f bytes a request", per)
	}
}
