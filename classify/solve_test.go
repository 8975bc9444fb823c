package classify_test

import (
	"context"
	"math"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
)

func unit(x, y float64) []float32 {
	n := math.Hypot(x, y)
	return []float32{float32(x / n), float32(y / n)}
}

// TestSolvedValuesDiscountRedundantKeys: three near-identical keys of class 0 sit close to one key of class
// 1. Tip-Adapter's one-hot votes let the crowd outvote the class-1 key even on the class-1 key itself;
// solved votes fit every labelled key, so each key's own image gets its label back.
func TestSolvedValuesDiscountRedundantKeys(t *testing.T) {
	entries := []classify.Entry{
		{Key: unit(1, 0), Label: 0}, {Key: unit(1, 0.01), Label: 0}, {Key: unit(1, -0.01), Label: 0},
		{Key: unit(1, 0.3), Label: 1},
	}
	const alpha, beta = 1.0, 5.0
	values, err := classify.SolveValues(context.Background(), entries, 2, beta, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	solved := make([]classify.Entry, len(entries))
	for i, e := range entries {
		e.Values = values[i]
		solved[i] = e
	}
	tests := []struct {
		name    string
		entries []classify.Entry
		want    int
	}{
		{"one-hot votes", entries, 0},
		{"solved votes", solved, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classify.ResidualTip(entries[3].Key, tc.entries, 2, alpha, beta)
			if classify.Argmax(got) != tc.want {
				t.Fatalf("the class-1 key's own image scores %v; want class %d", got, tc.want)
			}
		})
	}
	// The fit reproduces every key's one-hot label within the ridge's shrinkage.
	for i, e := range entries {
		got := classify.ResidualTip(e.Key, solved, 2, 1, beta)
		if math.Abs(got[e.Label]-1) > 0.1 || math.Abs(got[1-e.Label]) > 0.1 {
			t.Errorf("key %d (label %d): cache gives %v, want its one-hot label", i, e.Label, got)
		}
	}
}

func TestSolveValuesRejectsBadInput(t *testing.T) {
	entries := []classify.Entry{{Key: unit(1, 0), Label: 0}, {Key: unit(0, 1), Label: 1}}
	tests := []struct {
		name   string
		lambda float64
		labels int
		domain bool // a user's error (invalid argument), not an internal one
	}{
		{"zero lambda", 0, 2, true},
		{"NaN lambda", math.NaN(), 2, true},
		{"label outside the classes", 0.1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := classify.SolveValues(context.Background(), entries, tc.labels, 1, tc.lambda)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := cachet.CodeOf(err) == cachet.CodeInvalidArgument; got != tc.domain {
				t.Fatalf("%v: invalid argument = %v, want %v", err, got, tc.domain)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	for in, want := range map[string]classify.Values{"": classify.ValuesLabels, "labels": classify.ValuesLabels, "solved": classify.ValuesSolved} {
		if got, err := classify.ParseValues(in); err != nil || got != want {
			t.Errorf("ParseValues(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := classify.ParseValues("Solved"); cachet.CodeOf(err) != cachet.CodeInvalidArgument {
		t.Errorf("ParseValues(Solved): %v; want invalid argument", err)
	}
}

// TestTuneLeaveOneOut: the zero-shot head has the two classes swapped, while each class's keys form a tight
// cluster. Leave-one-out must find that the cache has to outweigh the head (a large α).
func TestTuneLeaveOneOut(t *testing.T) {
	head, err := classify.NewHead([]string{"a", "b"}, [][]float64{{0, 1}, {1, 0}}, false)
	if err != nil {
		t.Fatal(err)
	}
	var entries []classify.Entry
	for i := range 4 {
		d := 0.05 * float64(i)
		entries = append(entries, classify.Entry{Key: unit(1, d), Label: 0}, classify.Entry{Key: unit(d, 1), Label: 1})
	}
	for _, values := range []classify.Values{classify.ValuesLabels, classify.ValuesSolved} {
		t.Run(string(values), func(t *testing.T) {
			m := &classify.Model{Method: classify.MethodTip, Head: head, Entries: entries, Alpha: 0.3, Beta: 1, Values: values, Lambda: classify.DefaultLambda}
			acc, err := classify.TuneLeaveOneOut(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			if acc != 1 || m.Alpha < 100 {
				t.Fatalf("leave-one-out accuracy %v at α %v, β %v, λ %v; want 1 with the cache outweighing the head", acc, m.Alpha, m.Beta, m.Lambda)
			}
			// The model now scores with what was chosen, solved values included.
			if got := m.Score(unit(1, 0.02), nil); classify.Argmax(got.Logits) != 0 {
				t.Fatalf("a class-a image scores %+v", got)
			}
			if values == classify.ValuesSolved && m.Entries[0].Values == nil {
				t.Fatal("solved values were not re-solved at the chosen β and λ")
			}
		})
	}
}
