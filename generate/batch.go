package generate

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/stepcache"
)

// batcher merges requests that wait for the model into one sampler batch: while a batch runs, arrivals
// queue; when it ends, the next batch takes the oldest request and every queued one of the same shape
// (steps, guidance, redraw), up to maxImages images. A request alone on an idle model runs at once. Each
// image keeps its own noise stream, so a request draws the images it would alone.
type batcher struct {
	s         *Service
	maxImages int

	mu      sync.Mutex
	queue   []*batchEntry
	running bool

	batches, requests atomic.Int64
}

// batchEntry is one waiting request.
type batchEntry struct {
	ctx    context.Context
	req    Request
	shape  batchShape
	queued time.Time
	done   chan batchAnswer
}

type batchAnswer struct {
	res *Result
	err error
}

// batchShape is what requests must share to ride one batch.
type batchShape struct {
	steps                        int // the draft's
	guidance, rescale, renorm    float64
	detailStrength, detailSettle float64
	redraws                      bool
}

// BatchStats counts the batches run and the requests they carried.
type BatchStats struct{ Batches, Requests int64 }

func (b *batcher) stats() BatchStats {
	return BatchStats{Batches: b.batches.Load(), Requests: b.requests.Load()}
}

// batchable says whether req can share a batch: plain text-to-image, uncached (a step-cache policy decides
// from the whole batch's features, so batching would change its decisions).
func (s *Service) batchable(req Request) bool {
	return s.batch != nil && s.dit.Cfg.Cond == model.CondText && req.Refs == nil && req.NegativePrompt == "" &&
		(req.Cache.Name == "" || req.Cache.Name == "none")
}

// generate queues a validated request for the next batch and waits for its images.
func (b *batcher) generate(ctx context.Context, req Request) (*Result, error) {
	detail := b.s.detailFor(req)
	_, redraws := redrawnScene(req.Prompt, detail)
	shape := batchShape{steps: req.Steps, guidance: req.Guidance, rescale: req.GuidanceRescale, renorm: req.CleanRenorm, redraws: redraws}
	if redraws {
		shape.steps, shape.detailStrength, shape.detailSettle = detail.DraftSteps(req.Steps), detail.Strength, detail.Settle
	}
	e := &batchEntry{ctx: ctx, req: req, shape: shape, queued: time.Now(), done: make(chan batchAnswer, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, e)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case a := <-e.done:
		return a.res, a.err
	case <-ctx.Done(): // the batch goes on for the others; this request's images are dropped
		return nil, cachet.Wrap(cachet.CodeCanceled, ctx.Err(), "generation canceled while it waited for its batch")
	}
}

// gatherWindow is how long the batcher waits after a batch before forming the next: the requests the
// last batch answered come back within it (clients that send one request after another), and join.
const gatherWindow = 15 * time.Millisecond

// loop runs batches until the queue is empty. The first batch after an idle spell starts at once.
func (b *batcher) loop() {
	for first := true; ; first = false {
		if !first {
			time.Sleep(gatherWindow)
		}
		group := b.next()
		if group == nil {
			return
		}
		b.run(group)
	}
}

// next takes the next batch off the queue (nil when it is empty, and the loop ends).
func (b *batcher) next() []*batchEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := b.queue[:0]
	for _, e := range b.queue {
		if e.ctx.Err() == nil {
			live = append(live, e)
		}
	}
	b.queue = live
	if len(b.queue) == 0 {
		b.running = false
		return nil
	}
	head := b.queue[0]
	group, rest, images := []*batchEntry{head}, []*batchEntry{}, head.req.N
	for _, e := range b.queue[1:] {
		if e.shape == head.shape && images+e.req.N <= b.maxImages {
			group, images = append(group, e), images+e.req.N
		} else {
			rest = append(rest, e)
		}
	}
	b.queue = rest
	return group
}

// run samples one batch on the model's worker and answers each of its requests.
func (b *batcher) run(group []*batchEntry) {
	// The batch stops only when every request in it has gone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	left := atomic.Int64{}
	left.Store(int64(len(group)))
	for _, e := range group {
		stop := context.AfterFunc(e.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	b.batches.Add(1)
	b.requests.Add(int64(len(group)))
	results, err := b.s.sampleBatch(ctx, group)
	for i, e := range group {
		if err != nil {
			e.done <- batchAnswer{err: err}
			continue
		}
		e.done <- batchAnswer{res: results[i]}
	}
}

// sampleBatch draws every request of group in one sampler batch (then one redraw batch).
func (s *Service) sampleBatch(ctx context.Context, group []*batchEntry) ([]*Result, error) {
	shape := group[0].shape
	var prompts []string
	var streams []model.NoiseStream
	var scenes []scene.Scene
	for _, e := range group {
		sc, _ := scene.Parse(e.req.Prompt) // validated: a scene model's prompts parse
		for j := range e.req.N {
			prompts = append(prompts, e.req.Prompt)
			streams = append(streams, model.NoiseStream{Seed: e.req.Seed, Index: j})
			scenes = append(scenes, sc)
		}
	}
	results := make([]*Result, len(group))
	err := s.worker.Do(ctx, func() error {
		policy, err := stepcache.New(stepcache.Config{Name: "none"}, s.dit.Cfg.Depth)
		if err != nil {
			return err
		}
		sreq := model.SampleRequest{Prompts: prompts, Streams: streams, Steps: shape.steps, Guidance: shape.guidance,
			GuidanceRescale: shape.rescale, CleanRenorm: shape.renorm, Cache: policy}
		reqs := make([]*Request, len(group))
		for i, e := range group {
			reqs[i] = &e.req
		}
		sreq.OnStep = stepProgress(reqs...)
		start := time.Now()
		out, err := s.dit.Sample(ctx, sreq)
		if err != nil {
			return err
		}
		if shape.redraws {
			imgs, err := scene.CanvasesFromModelUnits(out.Pixels)
			if err != nil {
				return err
			}
			sample := func(r model.SampleRequest) (*model.SampleResult, error) { return s.dit.Sample(ctx, r) }
			d := Detail{Strength: shape.detailStrength, Settle: shape.detailSettle}
			if err := RedrawSmall(sample, sreq, d, scenes, imgs, streams); err != nil {
				return err
			}
			for i := range imgs {
				scene.PutModelUnits(out.Pixels[i*scene.CanvasPixels:], imgs[i][:])
			}
		}
		sampling, stats := time.Since(start), policy.Stats()
		per, at := out.C*out.H*out.W, 0
		for i, e := range group {
			own := &model.SampleResult{N: e.req.N, C: out.C, H: out.H, W: out.W, StepTimes: out.StepTimes,
				Pixels: slices.Clone(out.Pixels[at*per : (at+e.req.N)*per])}
			at += e.req.N
			results[i] = &Result{SampleResult: own, Prompt: e.req.Prompt, Queue: start.Sub(e.queued), Sampling: sampling,
				Cache: stats, Detail: shape.detailStrength, BatchSize: len(group), Speed: e.req.Speed}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
