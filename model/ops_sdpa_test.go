package model

import (
	"math"
	"testing"
)

// The unfused attention (what sdpa runs off the CPU) agrees with libtorch's fused kernel (what it runs on it).
func TestSDPAFusedMatchesUnfused(t *testing.T) {
	s := &Scope{}
	defer s.Drop()
	o := newOps(s)
	rows, heads, tq, tr, hd := 3, 2, 5, 7, 4
	make4 := func(n, seed int) []float32 {
		v := make([]float32, rows*heads*n*hd)
		for i := range v {
			v[i] = float32(math.Sin(float64(i*seed+1))) / 2
		}
		return v
	}
	q := o.keep(FromFloat32s(make4(tq, 3), []int64{int64(rows), int64(heads), int64(tq), int64(hd)}, CPU))
	k := o.keep(FromFloat32s(make4(tr, 5), []int64{int64(rows), int64(heads), int64(tr), int64(hd)}, CPU))
	v := o.keep(FromFloat32s(make4(tr, 7), []int64{int64(rows), int64(heads), int64(tr), int64(hd)}, CPU))
	fused, unfused := o.sdpa(q, k, v, CPU), o.sdpaUnfused(q, k, v)
	if o.err != nil {
		t.Fatal(o.err)
	}
	a, err := Float32s(fused)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Float32s(unfused)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != rows*heads*tq*hd || len(a) != len(b) {
		t.Fatalf("sizes %d, %d", len(a), len(b))
	}
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > 1e-5 {
			t.Fatalf("element %d: fused %v, unfused %v", i, a[i], b[i])
		}
	}
}
