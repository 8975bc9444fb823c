package train

import (
	"errors"
	"testing"
)

func TestPrefetcherKeepsOrder(t *testing.T) {
	p := newPrefetcher(3, func(k uint64) (uint64, error) {
		if k == 7 {
			return 0, errors.New("seven")
		}
		return k * k, nil
	})
	for _, tc := range []struct {
		name string
		ks   []uint64
	}{
		{"sequential", []uint64{0, 1, 2, 3, 4, 5}},
		{"resume elsewhere", []uint64{10, 11, 12}},
		{"going back", []uint64{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range tc.ks {
				got, err := p.get(k)
				if err != nil || got != k*k {
					t.Fatalf("get(%d) = %d, %v; want %d", k, got, err, k*k)
				}
			}
		})
	}
	t.Run("errors reach the caller", func(t *testing.T) {
		if _, err := p.get(7); err == nil {
			t.Fatal("get(7): no error")
		}
	})
}
