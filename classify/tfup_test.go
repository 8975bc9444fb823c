package classify_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/classify"
)

func TestNumRepresentatives(t *testing.T) {
	tests := []struct{ n, c, want int }{
		{10000, 10, 16}, // 300 → capped at 16
		{400, 10, 12},   // ⌊0.3·40⌋
		{100, 10, 9},    // 3 → raised to 9
		{0, 10, 9},
		{530, 10, 15}, // ⌊15.9⌋
	}
	for _, tc := range tests {
		if got := classify.NumRepresentatives(tc.n, tc.c); got != tc.want {
			t.Errorf("K(%d, %d) = %d, want %d", tc.n, tc.c, got, tc.want)
		}
	}
}

func TestSelectRepresentatives(t *testing.T) {
	// Class 0: samples 0–3 are confident, sample 4 is less so and its distribution differs most from
	// the others; class 1: samples 5–7.
	probs := [][]float64{
		{0.9, 0.1}, {0.9, 0.1}, {0.88, 0.12}, {0.91, 0.09}, {0.6, 0.4},
		{0.2, 0.8}, {0.1, 0.9}, {0.15, 0.85},
	}
	reps := classify.SelectRepresentatives(probs, 2, 2)
	if len(reps) != 4 {
		t.Fatalf("got %d representatives, want 4", len(reps))
	}
	seen := map[int]int{}
	for _, r := range reps {
		seen[r.Index] = r.Label
	}
	// For class 0 the 2K = 4 most confident are 3, 0, 1, 2; the two most typical (least summed KL) are 0
	// and 1 (identical distributions in the middle of the set).
	for _, tc := range []struct{ idx, label int }{{0, 0}, {1, 0}} {
		if l, ok := seen[tc.idx]; !ok || l != tc.label {
			t.Errorf("sample %d: selected %v with label %d, want label %d (%+v)", tc.idx, ok, l, tc.label, reps)
		}
	}
	if _, ok := seen[4]; ok {
		t.Errorf("the atypical sample 4 was selected: %+v", reps)
	}
	for _, r := range reps[2:] {
		if r.Label != 1 || r.Index < 5 {
			t.Errorf("class 1 got %+v", r)
		}
	}
}

func TestResiduals(t *testing.T) {
	f := []float32{1, 0}
	entries := []classify.Entry{
		{Key: []float32{1, 0}, Label: 0, Probs: []float64{0.9, 0.1}},
		{Key: []float32{0, 1}, Label: 1, Probs: []float64{0.1, 0.9}},
		{Key: []float32{0.6, 0.8}, Label: 1, Probs: []float64{0.5, 0.5}},
	}
	t.Run("tip-adapter", func(t *testing.T) {
		got := classify.ResidualTip(f, entries, 2, 0.3, 1)
		want0 := 0.3 * math.Exp(0)
		want1 := 0.3*math.Exp(-1) + 0.3*math.Exp(-0.4)
		if math.Abs(got[0]-want0) > 1e-6 || math.Abs(got[1]-want1) > 1e-6 {
			t.Fatalf("got %v, want [%v %v]", got, want0, want1)
		}
	})
	t.Run("tfup", func(t *testing.T) {
		cos := []float64{1, 0}
		got := classify.ResidualTFUP(f, cos, entries, 2, 0.3, 1)
		p := classify.Softmax(cos, classify.PseudoScale)
		d := []float64{classify.KL(p, entries[0].Probs), classify.KL(p, entries[1].Probs), classify.KL(p, entries[2].Probs)}
		// z-scoring then min-max is min-max of d itself.
		lo, hi := math.Min(d[0], math.Min(d[1], d[2])), math.Max(d[0], math.Max(d[1], d[2]))
		sim := func(j int) float64 { return 2 * (1 - (d[j]-lo)/(hi-lo)) }
		want0 := 0.3 * math.Exp(-(1 - 1*sim(0)))
		want1 := 0.3*math.Exp(-(1-0*sim(1))) + 0.3*math.Exp(-(1-0.6*sim(2)))
		if math.Abs(got[0]-want0) > 1e-5 || math.Abs(got[1]-want1) > 1e-5 {
			t.Fatalf("got %v, want [%v %v]", got, want0, want1)
		}
	})
	t.Run("one entry", func(t *testing.T) {
		got := classify.ResidualTFUP(f, []float64{1, 0}, entries[:1], 2, 0.3, 1)
		if math.IsNaN(got[0]) || math.Abs(got[0]-0.3) > 1e-6 {
			t.Fatalf("a single entry: %v (a constant row must not divide by zero)", got)
		}
	})
}

func TestHeadCentering(t *testing.T) {
	raw := [][]float64{{1, 0.1, 0}, {1, 0, 0.1}}
	plain, err := classify.NewHead([]string{"a", "b"}, raw, false)
	if err != nil {
		t.Fatal(err)
	}
	centred, err := classify.NewHead([]string{"a", "b"}, raw, true)
	if err != nil {
		t.Fatal(err)
	}
	if c := classify.Dot(plain.W[0], plain.W[1]); c < 0.9 {
		t.Fatalf("raw prototypes should be nearly parallel (cos %v)", c)
	}
	if c := classify.Dot(centred.W[0], centred.W[1]); math.Abs(c+1) > 1e-6 {
		t.Fatalf("two centred prototypes should be opposite (cos %v)", c)
	}
	f := centred.Project([]float32{1, 0.09, 0.01})
	if classify.Argmax(centred.Cosines(f)) != 0 {
		t.Fatalf("a feature nearer prototype a was classified %v", centred.Cosines(f))
	}
	if _, err := classify.NewHead([]string{"a"}, raw, true); err == nil {
		t.Fatal("accepted one label for two prototypes")
	}
}
