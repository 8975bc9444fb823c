package classify_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/images"
)

// angle returns the 2-d unit vector at angle a (radians).
func angle(a float64) []float32 { return unit(math.Cos(a), math.Sin(a)) }

func TestNeighbourGraph(t *testing.T) {
	// Points on the unit circle: each one's nearest are the angularly closest, never itself.
	keys := [][]float32{angle(0), angle(0.1), angle(0.3), angle(1.0), angle(3.0)}
	g, err := classify.NeighbourGraph(context.Background(), keys, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		node int
		want []int
	}{{0, []int{1, 2}}, {1, []int{0, 2}}, {2, []int{1, 0}}, {3, []int{2, 1}}, {4, []int{3, 2}}}
	for _, tc := range tests {
		if len(g[tc.node]) != 2 || g[tc.node][0].Index != tc.want[0] || g[tc.node][1].Index != tc.want[1] {
			t.Errorf("node %d: neighbours %+v, want %v", tc.node, g[tc.node], tc.want)
		}
		for _, e := range g[tc.node] {
			cos := classify.Dot(keys[tc.node], keys[e.Index])
			if want := math.Exp(-3 * (1 - cos)); math.Abs(e.Affinity-want) > 1e-6 { // float32 keys
				t.Errorf("node %d → %d: affinity %v, want exp(−3(1−cos)) = %v", tc.node, e.Index, e.Affinity, want)
			}
		}
	}
	// k is capped at the other nodes; a cancelled context stops the build.
	if g, err = classify.NeighbourGraph(context.Background(), keys[:2], 5, 3); err != nil || len(g[0]) != 1 {
		t.Errorf("k above n−1: %+v %v", g, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := classify.NeighbourGraph(ctx, keys, 2, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestPropagateFollowsTheGraph(t *testing.T) {
	// Two arcs of the circle far apart, one labelled end each, and an isolated triple nobody labelled:
	// every node of an arc takes its arc's label, the triple stays unknown.
	var keys [][]float32
	for i := range 6 {
		keys = append(keys, angle(0.05*float64(i)))
	}
	for i := range 6 {
		keys = append(keys, angle(2+0.05*float64(i)))
	}
	keys = append(keys, angle(4), angle(4.01), angle(4.02))
	g, err := classify.NeighbourGraph(context.Background(), keys, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	start := make([][]float64, len(keys))
	for i := range start {
		start[i] = make([]float64, 2)
	}
	start[0][0], start[11][1] = 1, 1
	f := classify.Propagate(g, start, 0.9, 40)
	for i := range 12 {
		want := i / 6
		if classify.Argmax(f[i]) != want || math.Abs(f[i][0]+f[i][1]-1) > 1e-9 {
			t.Errorf("node %d: %v, want label %d and a distribution", i, f[i], want)
		}
	}
	for _, i := range []int{12, 13, 14} {
		if f[i][0] != 0 || f[i][1] != 0 {
			t.Errorf("unreached node %d: %v, want zeros", i, f[i])
		}
	}
	if start[1][0] != 0 {
		t.Errorf("Propagate changed its input: %v", start[1])
	}
}

func TestResidualPropagatedAveragesTheNearest(t *testing.T) {
	entries := []classify.Entry{
		{Key: angle(0), Values: []float64{1, 0}},
		{Key: angle(0.2), Values: []float64{0.5, 0.5}},
		{Key: angle(2), Values: []float64{0, 1}}, // beyond k = 2
	}
	f := angle(0.1)
	got := classify.ResidualPropagated(f, entries, 2, 2, 10, 3)
	// Both near entries are at the same angle, so equal weights: α·mean of their values.
	if math.Abs(got[0]-7.5) > 1e-6 || math.Abs(got[1]-2.5) > 1e-6 {
		t.Errorf("residual %v, want [7.5 2.5]", got)
	}
}

func TestPropagatedBuilds(t *testing.T) {
	// Fewer neighbours than entries: pgvector must find each query's nearest keys in the model's space.
	cfg := classifytest.Config()
	cfg.Neighbours = 32
	svc := classifytest.Service(t, cfg)
	ctx := context.Background()
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: classifytest.Name(t), Labels: []string{"coat", "bag"}})
	if err != nil {
		t.Fatal(err)
	}
	labelled := samples(t, 8, 100, "coat", "bag")
	if _, err := svc.AddSamples(ctx, col.ID, labelled); err != nil {
		t.Fatal(err)
	}
	pool := samples(t, classify.MinWhitenSamples, 3000)
	for i := 0; i < len(pool); i += 64 {
		if _, err := svc.AddSamples(ctx, col.ID, pool[i:min(i+64, len(pool))]); err != nil {
			t.Fatal(err)
		}
	}
	on, off := true, false
	bad := []struct {
		name string
		req  cachet.BuildRequest
	}{
		{"propagate without whitening", cachet.BuildRequest{Propagate: &on, Whiten: &off}},
		{"propagate with solved values", cachet.BuildRequest{Propagate: &on, Values: "solved"}},
		{"propagate with tune", cachet.BuildRequest{Propagate: &on, Tune: true}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Build(ctx, col.ID, tc.req); !errors.Is(err, &cachet.Error{Code: cachet.CodeInvalidArgument}) {
				t.Fatalf("got %v, want invalid_argument", err)
			}
		})
	}
	n := len(labelled) + len(pool)
	rank := min(classify.PropagateRank, n/8)
	tests := []struct {
		name   string
		req    cachet.BuildRequest
		method string
		alpha  float64
	}{
		{"tip-adapter by default over labelled and unlabelled samples", cachet.BuildRequest{}, "tip-adapter", classify.PropagatedAlphaLabels},
		{"tfup from the head's distributions", cachet.BuildRequest{Method: "tfup"}, "tfup", classify.PropagatedAlpha},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			built, err := svc.Build(ctx, col.ID, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			mi := built.Model
			if mi.Method != tc.method || mi.Values != "propagated" || mi.Whitening != rank || mi.Entries == 0 || mi.Entries > n ||
				mi.Alpha != tc.alpha || mi.Beta != classify.PropagatedBeta {
				t.Fatalf("model %+v: want %s, propagated values over at most %d entries, whitening rank %d", mi, tc.method, n, rank)
			}
			m, err := svc.ActiveModel(ctx, col.ID)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range m.Entries {
				s := 0.0
				for _, v := range e.Values {
					s += v
				}
				if len(e.Values) != 2 || math.Abs(s-1) > 1e-4 || e.Label != classify.Argmax(e.Values) {
					t.Fatalf("entry %d: label %d values %v, want a distribution whose argmax is the label", i, e.Label, e.Values)
				}
			}
			// The service's answer (nearest keys from pgvector) is the exact one over every entry.
			var canvases [][]uint8
			for _, seed := range []uint64{100, 3007, 3100, 77} {
				c := images.ToCanvas(classifytest.Item(seed))
				canvases = append(canvases, c[:])
			}
			feats, err := svc.Featurizer().Canvases(ctx, canvases)
			if err != nil {
				t.Fatal(err)
			}
			_, scores, err := svc.ClassifyFeatures(ctx, col.ID, feats, 2)
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range feats {
				want := m.Score(m.Head.Project(f), nil)
				for c := range want.Cache {
					if math.Abs(scores[i].Cache[c]-want.Cache[c]) > 1e-3 {
						t.Errorf("image %d: cache logits %v through pgvector, %v over every entry", i, scores[i].Cache, want.Cache)
						break
					}
				}
			}
			res, err := svc.Classify(ctx, cachet.ClassifyRequest{Collection: col.ID, Images: [][]byte{labelled[0].Image, pool[7].Image}, TopK: 2})
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range res.Predictions {
				if len(p.Top) != 2 {
					t.Fatalf("image %d: %+v, want both labels", i, p.Top)
				}
				if sum := p.Top[0].Cache + p.Top[1].Cache; sum < tc.alpha*0.99 || sum > tc.alpha*1.01 {
					t.Errorf("image %d: %+v, want cache logits summing to α", i, p.Top)
				}
			}
		})
	}
	// Tip-Adapter over labelled samples only does not propagate.
	built, err := svc.Build(ctx, col.ID, cachet.BuildRequest{Propagate: &off})
	if err != nil || built.Model.Values != "labels" || built.Model.Entries != len(labelled) {
		t.Fatalf("propagate off: %+v %v", built, err)
	}
}
