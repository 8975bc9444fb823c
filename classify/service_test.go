package classify_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/images/imagestest"
)

func samples(t *testing.T, n int, seed uint64, labels ...string) []cachet.Sample {
	out := make([]cachet.Sample, n)
	for i := range out {
		out[i].Image = imagestest.PNG(t, classifytest.Item(seed+uint64(i)))
		if len(labels) > 0 {
			out[i].Label = labels[i%len(labels)]
		}
	}
	return out
}

func TestBuildClassifyAndAtomicRebuild(t *testing.T) {
	svc := classifytest.Service(t, classifytest.Config())
	ctx := context.Background()
	// A large α and a sharp β make the labelled keys decide (random-model features are all alike): an image
	// that is itself a key must get that key's label.
	alpha, beta := 1000.0, 500.0
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: classifytest.Name(t), Labels: []string{"coat", "bag"}, Alpha: &alpha, Beta: &beta})
	if err != nil {
		t.Fatal(err)
	}
	labelled := samples(t, 8, 100, "coat", "bag")
	if _, err := svc.AddSamples(ctx, col.ID, labelled); err != nil {
		t.Fatal(err)
	}
	if col, err = svc.AddSamples(ctx, col.ID, samples(t, 24, 500)); err != nil {
		t.Fatal(err)
	}
	if col.Samples != 32 || col.Labelled != 8 || col.Model != nil {
		t.Fatalf("collection after uploads: %+v", col)
	}

	build := func(method classify.Method) *cachet.Collection {
		t.Helper()
		c, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: string(method)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tip := build("") // labelled samples → Tip-Adapter
	if tip.Model == nil || tip.Model.Method != "tip-adapter" || tip.Model.Entries != 8 || tip.Model.PerClass != 4 {
		t.Fatalf("tip-adapter build: %+v", tip.Model)
	}
	imgs := make([][]byte, len(labelled))
	for i, s := range labelled {
		imgs[i] = s.Image
	}
	res, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: imgs, TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "tip-adapter" || res.CacheEntries != 8 || res.Neighbours != 8 || len(res.Predictions) != 8 {
		t.Fatalf("classify: %+v", res)
	}
	for i, p := range res.Predictions {
		if len(p.Top) != 2 || p.Top[0].Label != labelled[i].Label || p.Top[0].Cache <= p.Top[1].Cache {
			t.Errorf("labelled sample %d (%s) → %+v", i, labelled[i].Label, p.Top)
		}
	}

	// The same keys with solved votes: stored and read back with the model, and each labelled sample
	// still gets its own label.
	solved, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tip-adapter", Values: "solved"})
	if err != nil {
		t.Fatal(err)
	}
	if solved.Model.Values != "solved" || solved.Model.Lambda != classify.DefaultLambda || solved.Model.Entries != 8 {
		t.Fatalf("solved build: %+v", solved.Model)
	}
	if m, err := svc.ActiveModel(ctx, col.ID); err != nil || m.Values != classify.ValuesSolved || len(m.Entries) != 8 || len(m.Entries[0].Values) != 2 {
		t.Fatalf("solved model read back: %+v, %v", m, err)
	}
	if res, err = svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: imgs, TopK: 2}); err != nil {
		t.Fatal(err)
	}
	for i, p := range res.Predictions {
		if p.Top[0].Label != labelled[i].Label {
			t.Errorf("solved values: labelled sample %d (%s) → %+v", i, labelled[i].Label, p.Top)
		}
	}

	// Tuned at build: α, β and λ come from the grid by leave-one-out, and the model reports them.
	tuned, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tip-adapter", Values: "solved", Tune: true})
	if err != nil {
		t.Fatal(err)
	}
	if tuned.Model.Values != "solved" || tuned.Model.Alpha <= 0 || tuned.Model.Beta < 1 || tuned.Model.Lambda <= 0 || tuned.Alpha != alpha {
		t.Fatalf("tuned build: collection α %v, model %+v", tuned.Alpha, tuned.Model)
	}

	tfup := build(classify.MethodTFUP) // K = clamp(⌊0.3·32/2⌋, 9, 16) = 9 per class
	if tfup.Model.Method != "tfup" || tfup.Model.PerClass != 9 || tfup.Model.Entries != 18 || tfup.Model.ID == tip.Model.ID {
		t.Fatalf("tfup build: %+v", tfup.Model)
	}
	entries, err := svc.Entries(ctx, col.ID)
	if err != nil || len(entries) != 18 {
		t.Fatalf("entries: %d, %v", len(entries), err)
	}

	// Rebuilds alternate between an 8-entry and an 18-entry model while classify requests run: every
	// answer must come from one complete model.
	want := map[string]int{"tip-adapter": 8, "tfup": 18}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answers, models atomic.Int64
	seen := sync.Map{}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: imgs[:2]})
				if err != nil {
					t.Error(err)
					return
				}
				if n, ok := want[r.Method]; !ok || r.CacheEntries != n || r.Neighbours != n {
					t.Errorf("a classify request saw %s with %d entries (%d neighbours); want a whole model", r.Method, r.CacheEntries, r.Neighbours)
				}
				if _, loaded := seen.LoadOrStore(r.CacheModel, true); !loaded {
					models.Add(1)
				}
				answers.Add(1)
			}
		}()
	}
	for i := range 6 {
		build([]classify.Method{classify.MethodTip, classify.MethodTFUP}[i%2])
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if answers.Load() < 3 || models.Load() < 2 {
		t.Fatalf("only %d answers from %d models during the rebuilds", answers.Load(), models.Load())
	}
}

func TestZeroShotAndPrototypeCache(t *testing.T) {
	svc := classifytest.Service(t, classifytest.Config())
	ctx := context.Background()
	h1, err := svc.BuiltinHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two samples per class: the whitened space of 20 samples keeps 20/8 = 2 directions.
	if len(h1.Labels) != 10 || h1.Center == nil || len(h1.Basis) != 2 || h1.Dims() != 2 {
		t.Fatalf("built-in head: %d labels, centre %v, %d whitened directions", len(h1.Labels), h1.Center != nil, len(h1.Basis))
	}
	res, err := svc.Classify(ctx, cachet.ClassifyRequest{Images: [][]byte{imagestest.PNG(t, classifytest.Item(1))}, TopK: 10})
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, s := range res.Predictions[0].Top {
		sum += s.Probability
		if s.Cache != 0 {
			t.Errorf("zero-shot answer with a cache part: %+v", s)
		}
	}
	if res.Method != "zero-shot" || len(res.Predictions[0].Top) != 10 || sum < 0.999 || sum > 1.001 {
		t.Fatalf("zero-shot: %+v (Σp = %v)", res, sum)
	}
}

func TestServiceRejectsBadInput(t *testing.T) {
	svc := classifytest.Service(t, classifytest.Config())
	ctx := context.Background()
	name := classifytest.Name(t)
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: name, Labels: []string{"coat", "zebra"}})
	if err != nil {
		t.Fatal(err)
	}
	neg, zero, alpha := -1.0, 0.0, 1.0
	tests := []struct {
		name string
		run  func() error
		code cachet.Code
	}{
		{"no labels", func() error {
			_, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: name + "x"})
			return err
		}, cachet.CodeInvalidArgument},
		{"duplicate label", func() error {
			_, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: name + "y", Labels: []string{"a", " a"}})
			return err
		}, cachet.CodeInvalidArgument},
		{"negative alpha", func() error {
			_, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: name + "z", Labels: []string{"a", "b"}, Alpha: &neg})
			return err
		}, cachet.CodeInvalidArgument},
		{"name taken", func() error {
			_, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: name, Labels: []string{"a", "b"}})
			return err
		}, cachet.CodeConflict},
		{"unknown collection", func() error { _, err := svc.Collection(ctx, "00000000-0000-0000-0000-000000000000"); return err }, cachet.CodeNotFound},
		{"malformed id", func() error { _, err := svc.Collection(ctx, "nope"); return err }, cachet.CodeNotFound},
		{"build without samples", func() error { _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{}); return err }, cachet.CodeInvalidArgument},
		{"unknown method", func() error { _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "svm"}); return err }, cachet.CodeInvalidArgument},
		{"unknown values", func() error { _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Values: "votes"}); return err }, cachet.CodeInvalidArgument},
		{"solved values for TFUP", func() error {
			_, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tfup", Values: "solved"})
			return err
		}, cachet.CodeInvalidArgument},
		{"lambda without solved values", func() error {
			_, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tip-adapter", Lambda: &alpha})
			return err
		}, cachet.CodeInvalidArgument},
		{"tune for TFUP", func() error {
			_, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tfup", Tune: true})
			return err
		}, cachet.CodeInvalidArgument},
		{"non-positive lambda", func() error {
			_, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tip-adapter", Values: "solved", Lambda: &zero})
			return err
		}, cachet.CodeInvalidArgument},
		{"unbuilt collection", func() error {
			_, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: [][]byte{imagestest.PNG(t, classifytest.Item(1))}})
			return err
		}, cachet.CodeConflict},
		{"not an image", func() error {
			_, err := svc.Classify(ctx, cachet.ClassifyRequest{Images: [][]byte{[]byte("hello")}})
			return err
		}, cachet.CodeUnsupportedMedia},
		{"no images", func() error { _, err := svc.Classify(ctx, cachet.ClassifyRequest{}); return err }, cachet.CodeInvalidArgument},
		{"unknown label", func() error {
			_, err := svc.AddSamples(ctx, col.ID, samples(t, 1, 1, "bag"))
			return err
		}, cachet.CodeInvalidArgument},
		{"tip without labels", func() error {
			if _, err := svc.AddSamples(ctx, col.ID, samples(t, 2, 1)); err != nil {
				return err
			}
			_, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tip-adapter"})
			return err
		}, cachet.CodeInvalidArgument},
		// "zebra" is not a class the model can draw and no sample carries it: no prototype.
		{"label without prototype", func() error { _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{}); return err }, cachet.CodeInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if got := cachet.CodeOf(err); err == nil || got != tc.code {
				t.Fatalf("got %v (%s), want %s", err, got, tc.code)
			}
		})
	}
	// Nothing of the failed uploads was stored.
	c, err := svc.Collection(ctx, col.ID)
	if err != nil || c.Samples != 2 || c.Model != nil {
		t.Fatalf("after the failures: %+v, %v", c, err)
	}
}

// TestNearestNeighboursOnly scores each image against pgvector's k nearest keys only (large caches): the
// image's own key must be among them, so labelled samples still get their own labels.
func TestNearestNeighboursOnly(t *testing.T) {
	cfg := classifytest.Config()
	cfg.Neighbours = 3
	svc := classifytest.Service(t, cfg)
	ctx := context.Background()
	alpha, beta := 1000.0, 500.0
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: classifytest.Name(t), Labels: []string{"coat", "bag"}, Alpha: &alpha, Beta: &beta})
	if err != nil {
		t.Fatal(err)
	}
	labelled := samples(t, 10, 900, "coat", "bag")
	if _, err := svc.AddSamples(ctx, col.ID, labelled); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{}); err != nil {
		t.Fatal(err)
	}
	imgs := make([][]byte, len(labelled))
	for i, s := range labelled {
		imgs[i] = s.Image
	}
	res, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	if res.CacheEntries != 10 || res.Neighbours != 3 {
		t.Fatalf("%d entries, %d neighbours per image; want 10 and 3", res.CacheEntries, res.Neighbours)
	}
	for i, p := range res.Predictions {
		if p.Top[0].Label != labelled[i].Label {
			t.Errorf("sample %d (%s) → %+v", i, labelled[i].Label, p.Top)
		}
	}
}

func TestWhitenedTFUPBuild(t *testing.T) {
	svc := classifytest.Service(t, classifytest.Config())
	ctx := context.Background()
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: classifytest.Name(t), Labels: []string{"coat", "bag"}})
	if err != nil {
		t.Fatal(err)
	}
	pool := samples(t, classify.MinWhitenSamples, 2000)
	if _, err := svc.AddSamples(ctx, col.ID, pool[:32]); err != nil {
		t.Fatal(err)
	}
	on, off := true, false
	if _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Whiten: &on}); !errors.Is(err, &cachet.Error{Code: cachet.CodeInvalidArgument}) {
		t.Fatalf("whitening 32 samples: got %v, want invalid_argument", err)
	}
	for i := 32; i < len(pool); i += 64 {
		if _, err := svc.AddSamples(ctx, col.ID, pool[i:min(i+64, len(pool))]); err != nil {
			t.Fatal(err)
		}
	}
	imgs := [][]byte{pool[0].Image, pool[100].Image, pool[200].Image}
	classifyWith := func(req cachet.BuildRequest, wantRank int) *cachet.ClassifyResult {
		t.Helper()
		built, err := svc.Build(ctx, col.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		if built.Model.Method != "tfup" || built.Model.Whitening != wantRank || built.Model.Entries != 32 {
			t.Fatalf("build %+v: model %+v, want TFUP with 32 entries and whitening rank %d", req, built.Model, wantRank)
		}
		res, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: imgs, TopK: 2})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// TFUP over enough samples whitens by default (and propagates: TestPropagatedBuilds); the model (read
	// back from Postgres) holds the basis.
	white := classifyWith(cachet.BuildRequest{Propagate: &off}, classify.DefaultWhitenRank)
	m, err := svc.ActiveModel(ctx, col.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Head.Basis) != classify.DefaultWhitenRank || m.Head.Dims() != classify.DefaultWhitenRank || len(m.Entries[0].Key) != classify.DefaultWhitenRank {
		t.Fatalf("whitened model: basis %d rows, head %d dims, keys %d values", len(m.Head.Basis), m.Head.Dims(), len(m.Entries[0].Key))
	}
	plain := classifyWith(cachet.BuildRequest{Whiten: &off}, 0)
	again := classifyWith(cachet.BuildRequest{Method: "tfup", Propagate: &off}, classify.DefaultWhitenRank)
	for i := range imgs {
		w, p, a := white.Predictions[i].Top[0], plain.Predictions[i].Top[0], again.Predictions[i].Top[0]
		// The same model to float32 rounding (the queries' features are recomputed each request).
		if w.Label != a.Label || math.Abs(w.ZeroShot-a.ZeroShot) > 1e-4 || math.Abs(w.Cache-a.Cache) > 1e-4 {
			t.Errorf("image %d: rebuilding the same whitened model changed its answer: %+v then %+v", i, w, a)
		}
		if w.ZeroShot == p.ZeroShot {
			t.Errorf("image %d: the whitened space left the zero-shot logit at %v", i, w.ZeroShot)
		}
	}
}
