package featurecache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachetlab/cachet/featurecache"
)

// feats makes a cache of exactly n·32 decoded bytes (2 blocks × n tokens × 4 floats).
func feats(n int) *featurecache.Features { return sampleFeatures("m", n, 0) }

func TestLRUEvictsLeastRecentlyUsedByBytes(t *testing.T) {
	c := featurecache.NewLRU(100) // room for three 32-byte entries
	for _, k := range []string{"a", "b", "c"} {
		c.Add(k, feats(1))
	}
	if _, ok := c.Get("a"); !ok { // a becomes the most recent: b is now the oldest
		t.Fatal("a missing")
	}
	c.Add("d", feats(1))
	tests := []struct {
		key  string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}, {"d", true}}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if _, ok := c.Get(tc.key); ok != tc.want {
				t.Fatalf("Get(%s) present = %v, want %v", tc.key, ok, tc.want)
			}
		})
	}
	c.Add("big", feats(3)) // 96 bytes: everything else goes
	st := c.Stats()
	if st.Entries != 1 || st.Bytes != 96 || st.Evictions != 4 {
		t.Fatalf("after a big entry: %+v", st)
	}
	c.Add("huge", feats(4)) // larger than the bound: not kept, and nothing else is lost for it
	if _, ok := c.Get("huge"); ok {
		t.Fatal("kept an entry larger than the bound")
	}
	if _, ok := c.Get("big"); !ok {
		t.Fatal("an oversized entry evicted others")
	}
	c.Add("big", feats(1)) // replacing an entry re-accounts its size
	if st := c.Stats(); st.Bytes != 32 || st.Entries != 1 {
		t.Fatalf("after replacing: %+v", st)
	}
	c.Remove("big")
	if st := c.Stats(); st.Bytes != 0 || st.Entries != 0 {
		t.Fatalf("after remove: %+v", st)
	}
}

func TestLRUGetOrLoadSharesOneLoad(t *testing.T) {
	c := featurecache.NewLRU(1 << 20)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (*featurecache.Features, error) {
		loads.Add(1)
		<-release
		return feats(2), nil
	}
	var wg sync.WaitGroup
	results := make([]*featurecache.Features, 8)
	for i := range results {
		wg.Go(func() {
			f, _, err := c.GetOrLoad(context.Background(), "s", load)
			if err != nil {
				t.Error(err)
			}
			results[i] = f
		})
	}
	for c.Stats().Misses < 8 { // every caller has missed; a late one finds the stored result
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads for one key", n)
	}
	for _, f := range results {
		if f != results[0] {
			t.Fatal("callers got different caches")
		}
	}
	if _, hit, err := c.GetOrLoad(context.Background(), "s", load); err != nil || !hit {
		t.Fatalf("second GetOrLoad: hit %v, err %v", hit, err)
	}
	boom := errors.New("boom")
	if _, _, err := c.GetOrLoad(context.Background(), "x", func(context.Context) (*featurecache.Features, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("load error = %v", err)
	}
	if _, ok := c.Get("x"); ok {
		t.Fatal("a failed load was cached")
	}
}

func TestLRULoadRacingRemoveIsNotStored(t *testing.T) {
	c := featurecache.NewLRU(1 << 20)
	_, _, err := c.GetOrLoad(context.Background(), "s", func(context.Context) (*featurecache.Features, error) {
		c.Remove("s") // the subject is deleted while its cache loads
		return feats(1), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("s"); ok {
		t.Fatal("a load that raced a delete resurrected the entry")
	}
}
