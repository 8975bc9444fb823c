package classify_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/images/imagestest"
)

func TestDiffusionRerank(t *testing.T) {
	svc := classifytest.Service(t, classifytest.Config())
	ctx := context.Background()
	a, b := imagestest.PNG(t, classifytest.Item(1)), imagestest.PNG(t, classifytest.Item(2))
	res, err := svc.Classify(ctx, cachet.ClassifyRequest{Images: [][]byte{a, b, a}, TopK: 10, Rerank: cachet.RerankDiffusion})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rerank != cachet.RerankDiffusion || res.Timings.RerankMS <= 0 {
		t.Fatalf("reranked result: rerank %q, %v ms", res.Rerank, res.Timings.RerankMS)
	}
	plain, err := svc.Classify(ctx, cachet.ClassifyRequest{Images: [][]byte{a}, TopK: 10})
	if err != nil {
		t.Fatal(err)
	}
	zeroShot := map[string]float64{}
	for _, s := range plain.Predictions[0].Top {
		zeroShot[s.Label] = s.ZeroShot
	}
	t.Run("weighted z-scores", func(t *testing.T) {
		// DiffusionLogits z-scores with the sample deviation: over 10 labels Σd = 0 and Σd² = 9·weight²
		// (the built-in head's weight).
		sum, sq := 0.0, 0.0
		for _, s := range res.Predictions[0].Top {
			sum += s.Diffusion
			sq += s.Diffusion * s.Diffusion
		}
		want := 9 * classify.DiffusionRerankWeightZeroShot * classify.DiffusionRerankWeightZeroShot
		if math.Abs(sum) > 1e-6 || math.Abs(sq-want) > 1e-6*want {
			t.Errorf("diffusion parts: Σ %v, Σ² %v (want 0, %v)", sum, sq, want)
		}
	})
	t.Run("added to the logits", func(t *testing.T) {
		// p_c ∝ exp(zero-shot + diffusion): the log-ratio of two labels' probabilities is their logits' difference.
		top := res.Predictions[0].Top
		first, last := top[0], top[len(top)-1]
		got := math.Log(first.Probability / last.Probability)
		want := first.ZeroShot + first.Diffusion - last.ZeroShot - last.Diffusion
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) || first.ZeroShot != zeroShot[first.Label] {
			t.Errorf("log p ratio %v, logit difference %v; zero-shot part %v, unreranked %v", got, want, first.ZeroShot, zeroShot[first.Label])
		}
	})
	t.Run("an image's noise does not depend on its place", func(t *testing.T) {
		if p0, p2 := res.Predictions[0].Top, res.Predictions[2].Top; p0[0] != p2[0] || p0[9] != p2[9] {
			t.Errorf("the same image at places 0 and 2: %+v / %+v", p0[0], p2[0])
		}
		if res.Predictions[0].Top[0] == res.Predictions[1].Top[0] {
			t.Errorf("two different images scored alike: %+v", res.Predictions[0].Top[0])
		}
	})
}

func TestDiffusionRerankRejectsBadInput(t *testing.T) {
	svc := classifytest.Service(t, classifytest.Config())
	ctx := context.Background()
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: classifytest.Name(t), Labels: []string{"coat", "zebra"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddSamples(ctx, col.ID, samples(t, 4, 100, "coat", "zebra")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Method: "tip-adapter"}); err != nil {
		t.Fatal(err)
	}
	img := imagestest.PNG(t, classifytest.Item(1))
	many := make([][]byte, classify.MaxRerankImages+1)
	for i := range many {
		many[i] = img
	}
	tests := []struct {
		name    string
		req     cachet.ClassifyRequest
		mention string
	}{
		{"unknown rerank", cachet.ClassifyRequest{Images: [][]byte{img}, Rerank: "votes"}, `"votes"`},
		{"too many images", cachet.ClassifyRequest{Images: many, Rerank: cachet.RerankDiffusion}, "0.4 s"},
		{"a label the model cannot draw", cachet.ClassifyRequest{Collection: col.ID, Images: [][]byte{img}, Rerank: cachet.RerankDiffusion}, `"zebra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Classify(ctx, tc.req)
			var e *cachet.Error
			if !errors.As(err, &e) || e.Code != cachet.CodeInvalidArgument || !strings.Contains(e.Message, tc.mention) {
				t.Fatalf("got %v, want %s mentioning %s", err, cachet.CodeInvalidArgument, tc.mention)
			}
		})
	}
	// Without the rerank the same collection classifies.
	if _, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: [][]byte{img}}); err != nil {
		t.Fatal(err)
	}
}
