package classify

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cachetlab/cachet/internal/testenv"
)

func TestRetrievalKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randUnit := func(d int) []float64 {
		v := gaussian(rng, d)
		n := 0.0
		for _, x := range v {
			n += x * x
		}
		for i := range v {
			v[i] /= math.Sqrt(n)
		}
		return v
	}
	// mix returns a unit vector with cosine c to q.
	mix := func(q []float64, c float64) []float32 {
		r := randUnit(len(q))
		dot := 0.0
		for i := range q {
			dot += q[i] * r[i]
		}
		o := make([]float64, len(q))
		for i := range q {
			o[i] = r[i] - dot*q[i] // orthogonal to q
		}
		u := Normalize(o)
		out := make([]float64, len(q))
		for i := range q {
			out[i] = c*q[i] + math.Sqrt(1-c*c)*float64(u[i])
		}
		return Normalize(out)
	}
	for _, d := range []int{300, 4096} {
		q := randUnit(d)
		_, qk, err := retrievalKey(Normalize(q))
		if err != nil {
			t.Fatal(err)
		}
		prev := 2.0
		for _, c := range []float64{0.9, 0.6, 0.3, 0.0} {
			_, k, err := retrievalKey(mix(q, c))
			if err != nil {
				t.Fatal(err)
			}
			got := Dot(qk.Slice(), k.Slice())
			tol := 1e-5
			if d > KeyDims {
				tol = 0.1 // a sketch: cosines kept up to noise of order 1/√KeyDims
			}
			if math.Abs(got-c) > tol || got >= prev {
				t.Fatalf("%d dims: cosine %v came back %v (previous %v)", d, c, got, prev)
			}
			prev = got
		}
	}
	if _, _, err := retrievalKey(make([]float32, MaxDims+1)); err == nil {
		t.Fatal("accepted a feature longer than MaxDims")
	}
}

// TestStoreHoldsLongFeatures: features longer than pgvector's vector type allows (every token of a block
// on the default model: 16,384 values) are stored and read back exactly.
func TestStoreHoldsLongFeatures(t *testing.T) {
	db := testenv.DB(t)
	st := &store{pool: db.Pool}
	ctx := context.Background()
	col, err := st.createCollection(ctx, "long-features-"+t.Name()+fmt.Sprint(rand.Int64()), []string{"a", "b"}, DefaultAlpha, DefaultBeta)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.deleteCollection(context.Background(), col.ID) })
	long := make([]float32, 16384)
	for i := range long {
		long[i] = float32(i%97) / 97
	}
	if _, err := st.addSamples(ctx, col.ID, []sampleRow{{pixels: []byte{1}, key: "k", features: long}}); err != nil {
		t.Fatal(err)
	}
	rows, err := st.samples(ctx, col.ID)
	if err != nil || len(rows) != 1 || !slices.Equal(rows[0].features, long) {
		t.Fatalf("read back %d rows, %v", len(rows), err)
	}
}
