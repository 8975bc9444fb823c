package classify_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
)

// TestBuildRefusesLargeSolve: solved values and tune over more labelled samples than the bound are
// refused up front with the bound and the alternative; plain label values still build.
func TestBuildRefusesLargeSolve(t *testing.T) {
	cfg := classifytest.Config()
	cfg.MaxSolvedSamples = 3
	svc := classifytest.Service(t, cfg)
	ctx := context.Background()
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: classifytest.Name(t), Labels: []string{"coat", "bag"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddSamples(ctx, col.ID, samples(t, 4, 100, "coat", "bag")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  cachet.BuildRequest
	}{
		{"solved values", cachet.BuildRequest{Values: "solved"}},
		{"tune", cachet.BuildRequest{Tune: true}},
		{"solved values and tune", cachet.BuildRequest{Method: "tip-adapter", Values: "solved", Tune: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := svc.Build(ctx, col.ID, tc.req)
			if cachet.CodeOf(err) != cachet.CodeInvalidArgument {
				t.Fatalf("Build = %v; want invalid argument", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "at most 3 labelled samples") || !strings.Contains(msg, `"values": "labels"`) {
				t.Fatalf("the message names neither the bound nor the alternative: %s", msg)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Fatalf("refused after %v", elapsed)
			}
		})
	}
	if c, err := svc.Collection(ctx, col.ID); err != nil || c.Model != nil {
		t.Fatalf("after the refusals: %+v, %v", c, err)
	}
	if c, err := svc.Build(ctx, col.ID, cachet.BuildRequest{}); err != nil || c.Model == nil || c.Model.Values != "labels" {
		t.Fatalf("label values: %+v, %v", c, err)
	}
}

// TestSolveStopsWhenCanceled: a solve, a re-solve and a tune over 500 keys of the default size take
// about a CPU-second each; canceled 20 ms in, each returns within a key row or a factorisation.
func TestSolveStopsWhenCanceled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 500 keys of 16,384 values")
	}
	m := tipModel(t, classify.MaxSolvedSamples, benchDims)
	tests := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"solve", func(ctx context.Context) error {
			_, err := classify.SolveValues(ctx, m.Entries, len(m.Head.Labels), m.Beta, m.Lambda)
			return err
		}},
		{"resolve", func(ctx context.Context) error { try := *m; return try.ResolveContext(ctx) }},
		{"tune", func(ctx context.Context) error { try := *m; _, err := classify.TuneLeaveOneOut(ctx, &try); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(20*time.Millisecond, cancel)
			start := time.Now()
			err := tc.run(ctx)
			elapsed := time.Since(start)
			if cachet.CodeOf(err) != cachet.CodeCanceled || !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v; want a canceled error wrapping context.Canceled", err)
			}
			if elapsed > 300*time.Millisecond {
				t.Fatalf("returned %v after the start, canceled at 20 ms", elapsed)
			}
		})
	}
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := classify.TuneLeaveOneOut(ctx, m); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
}
