package generate_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/generate/generatetest"
)

// Requests that wait for a busy model share a batch, and each gets the images it would get alone:
// small scenes (drafted, then redrawn) and large ones, several images each, different seeds.
func TestBatchedRequestsDrawTheirOwnImages(t *testing.T) {
	s := generatetest.Shipped(t, "../weights/base.safetensors")
	opts := generate.Options{ModelID: s.ModelID, DefaultDetail: generate.Detail{Strength: 0.65}}
	alone := generate.New(s.Worker, s.DiT, opts)
	opts.BatchImages = 16
	batched := generate.New(s.Worker, s.DiT, opts)

	reqs := []generate.Request{
		{Prompt: "a small coat on the left", N: 2, Seed: 1, Steps: 6, Guidance: 4},
		{Prompt: "a small sneaker on the right", N: 1, Seed: 2, Steps: 6, Guidance: 4},
		{Prompt: "a small bag in the center", N: 3, Seed: 3, Steps: 6, Guidance: 4},
		{Prompt: "a large coat", N: 2, Seed: 4, Steps: 6, Guidance: 4},
		{Prompt: "a large sneaker", N: 1, Seed: 5, Steps: 6, Guidance: 4},
	}
	// Hold the model so the requests queue behind it, then let them go together.
	release := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = s.Worker.Do(context.Background(), func() error { close(held); <-release; return nil })
	}()
	<-held
	got := make([]*generate.Result, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { got[i], errs[i] = batched.Generate(context.Background(), r) })
	}
	time.Sleep(300 * time.Millisecond)
	close(release)
	wg.Wait()
	st := batched.BatchStats()
	// The first request takes the model alone; the small scenes (drafted, then redrawn) and the large ones
	// (sampled whole) batch apart.
	if st.Requests != int64(len(reqs)) || st.Batches > 3 {
		t.Fatalf("%d requests ran in %d batches; want them to share", st.Requests, st.Batches)
	}
	for i, r := range reqs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		want, err := alone.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if got[i].N != r.N {
			t.Errorf("request %d: %d images, want %d", i, got[i].N, r.N)
		}
		// The same noise through a larger batch: equal up to float summation order, which can tip a redrawn
		// scene's 8-bit canvas by one gray level (2/255 in model units).
		worst := 0.0
		for p := range want.Pixels {
			worst = math.Max(worst, math.Abs(float64(got[i].Pixels[p]-want.Pixels[p])))
		}
		if worst > 2.5/255 {
			t.Errorf("request %d (%q): batched pixels differ from its own by up to %g", i, r.Prompt, worst)
		}
	}
}
