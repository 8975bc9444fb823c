package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
)

// BatchOptions configure the batching benchmark: Concurrency clients each sending one-image requests
// back to back through the generation service, with and without request batching.
type BatchOptions struct {
	Weights     string
	Requests    int // per round
	Rounds      int // rounds of each setting, interleaved (off, on, off, on, …) against drift
	Concurrency int
	Steps       int
	BatchImages int
	Threads     int
	Progress    io.Writer
}

// DefaultBatchOptions are the committed report's settings.
func DefaultBatchOptions() BatchOptions {
	return BatchOptions{Weights: "weights/base.safetensors", Requests: 48, Rounds: 2, Concurrency: 8, Steps: cachet.DefaultSteps, BatchImages: 16, Threads: 1}
}

// BatchPrompts are the requests' prompts, in turn: small scenes (drafted, then redrawn) and large ones.
var BatchPrompts = []string{"a small coat on the left", "a small sneaker on the right", "a small bag in the center",
	"a large coat", "a small dress at the top", "a large sneaker", "a small shirt at the bottom", "a small trouser on the left"}

// BatchSetting is one setting's measurement over every round.
type BatchSetting struct {
	BatchImages    int     `json:"batch_images"`
	Requests       int     `json:"requests"`
	Seconds        float64 `json:"seconds"`
	RequestsPerSec float64 `json:"requests_per_second"`
	P50MS          float64 `json:"p50_ms"`
	P95MS          float64 `json:"p95_ms"`
	MeanBatch      float64 `json:"mean_batch_requests"`
}

// BatchReport compares one request at a time with batching.
type BatchReport struct {
	Options BatchOptions `json:"options"`
	Alone   BatchSetting `json:"alone"`
	Batched BatchSetting `json:"batched"`
	Gain    float64      `json:"gain"` // batched requests/s ÷ alone
}

// Batching runs the benchmark.
func Batching(ctx context.Context, o BatchOptions) (*BatchReport, error) {
	if o.Requests < 1 || o.Rounds < 1 || o.Concurrency < 1 || o.Steps < 1 || o.BatchImages < 2 {
		return nil, cachet.Invalid("requests, rounds, concurrency and steps must be at least 1, batch images at least 2")
	}
	if err := model.SetNumThreads(o.Threads); err != nil {
		return nil, err
	}
	id, err := featurecache.WeightsID(o.Weights)
	if err != nil {
		return nil, err
	}
	w := model.NewWorker(false)
	defer w.Close()
	var dit *model.DiT
	if err := w.Do(ctx, func() error { dit, _, err = model.Load(o.Weights, model.CPU); return err }); err != nil {
		return nil, err
	}
	defer w.Do(context.Background(), func() error { dit.Close(); return nil }) //nolint:errcheck // closing
	base := generate.Options{ModelID: id, DefaultDetail: generate.Detail{Strength: cachet.DefaultDetail}}
	batched := base
	batched.BatchImages = o.BatchImages
	services := []*generate.Service{generate.New(w, dit, base), generate.New(w, dit, batched)}
	var lat [2][]time.Duration
	var secs [2]float64
	for round := range 2 * o.Rounds {
		which := round % 2
		took, l, err := batchRound(ctx, services[which], o, round)
		if err != nil {
			return nil, err
		}
		secs[which] += took.Seconds()
		lat[which] = append(lat[which], l...)
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "round %d (%s): %d requests in %.1f s\n", round+1, []string{"alone", "batched"}[which], o.Requests, took.Seconds())
		}
	}
	r := &BatchReport{Options: o}
	for i, s := range []*BatchSetting{&r.Alone, &r.Batched} {
		n := o.Requests * o.Rounds
		*s = BatchSetting{Requests: n, Seconds: secs[i], RequestsPerSec: float64(n) / secs[i], MeanBatch: 1}
		slices.Sort(lat[i])
		s.P50MS, s.P95MS = cachet.Millis(lat[i][len(lat[i])/2]), cachet.Millis(lat[i][len(lat[i])*95/100])
	}
	r.Batched.BatchImages = o.BatchImages
	if st := services[1].BatchStats(); st.Batches > 0 {
		r.Batched.MeanBatch = float64(st.Requests) / float64(st.Batches)
	}
	r.Gain = r.Batched.RequestsPerSec / r.Alone.RequestsPerSec
	return r, nil
}

// batchRound sends o.Requests requests from o.Concurrency clients and times them.
func batchRound(ctx context.Context, svc *generate.Service, o BatchOptions, round int) (time.Duration, []time.Duration, error) {
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range o.Requests {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var mu sync.Mutex
	var lat []time.Duration
	var first error
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for i := range next {
				t := time.Now()
				_, err := svc.Generate(ctx, generate.Request{Prompt: BatchPrompts[i%len(BatchPrompts)], N: 1, Seed: int64(round*o.Requests + i),
					Steps: o.Steps, Guidance: cachet.DefaultGuidance, CleanRenorm: cachet.DefaultCleanRenorm})
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				lat = append(lat, time.Since(t))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return time.Since(start), lat, first
}

// Write puts report.md and report.json in dir.
func (r *BatchReport) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "# Request batching\n\n")
	fmt.Fprintf(&b, "%d clients send one-image requests back to back (%d steps, the default guidance and redraw, prompts cycling over %d small and large scenes) "+
		"through the generation service on `%s`, %d libtorch thread(s); %d rounds of %d requests per setting, interleaved.\n\n",
		o.Concurrency, o.Steps, len(BatchPrompts), o.Weights, o.Threads, o.Rounds, o.Requests)
	fmt.Fprintf(&b, "| setting | requests/s | p50 ms | p95 ms | requests per batch |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| one request at a time | %.2f | %.0f | %.0f | 1 |\n", r.Alone.RequestsPerSec, r.Alone.P50MS, r.Alone.P95MS)
	fmt.Fprintf(&b, "| batched (≤ %d images) | %.2f | %.0f | %.0f | %.2f |\n\n", o.BatchImages, r.Batched.RequestsPerSec, r.Batched.P50MS, r.Batched.P95MS, r.Batched.MeanBatch)
	fmt.Fprintf(&b, "**Gain: %.2f× requests/s.** Reproduce: `cachet bench batch --clients %d --requests %d --rounds %d --torch-threads %d`.\n",
		r.Gain, o.Concurrency, o.Requests, o.Rounds, o.Threads)
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}
