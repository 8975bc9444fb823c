package adapters_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/adapters"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
)

// fixture is a random-weight base (fresh adaLN-Zero gates would hide the adapters) on a worker, its
// extractor, and adapter files written for it.
type fixture struct {
	w    *model.Worker
	base *model.DiT
	ex   *featurecache.Extractor
	dir  string
}

const baseID = "0123456789abcdef"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := model.Config{ImageSize: 8, Channels: 1, Patch: 2, Width: 32, Depth: 3, Heads: 2, MLPRatio: 2,
		Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: []string{"a", "shirt", "bag"},
		MaxWords: 4, TextWidth: 16, TextDepth: 1}
	f := &fixture{w: model.NewWorker(false), dir: t.TempDir()}
	t.Cleanup(f.w.Close)
	err := f.w.Do(context.Background(), func() error {
		if err := model.SetSeed(5); err != nil {
			return err
		}
		var err error
		if f.base, err = model.New(cfg, model.CPU); err != nil {
			return err
		}
		return f.base.Randomize(0.2)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.w.Do(context.Background(), func() error { f.base.Close(); return nil }) })
	if f.ex, err = featurecache.NewExtractor(f.w, f.base, baseID, featurecache.DefaultConfig(f.base)); err != nil {
		t.Fatal(err)
	}
	return f
}

// writeAdapters saves random adapters on blocks {0, 2} with meta and returns the path.
func (f *fixture) writeAdapters(t *testing.T, name string, meta map[string]string) string {
	t.Helper()
	return f.writeViewAdapters(t, name, 0, meta)
}

// writeViewAdapters is writeAdapters with embeddings for views (model.AdapterConfig.Views).
func (f *fixture) writeViewAdapters(t *testing.T, name string, views int, meta map[string]string) string {
	t.Helper()
	path := filepath.Join(f.dir, name)
	err := f.w.Do(context.Background(), func() error {
		a, err := model.NewAdapters(f.base.Cfg, model.AdapterConfig{Blocks: []int{0, 2}, Inner: 16, Heads: 2, Views: views}, model.CPU)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := a.Randomize(0.3); err != nil {
			return err
		}
		return a.Save(path, meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *fixture) features(t *testing.T, n int, seed uint64) []*featurecache.Features {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	imgs := make([][]float32, n)
	for i := range imgs {
		imgs[i] = make([]float32, f.ex.ImagePixels())
		for j := range imgs[i] {
			imgs[i][j] = float32(rng.Float64()*2 - 1)
		}
	}
	fs, err := f.ex.Extract(context.Background(), imgs)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func (f *fixture) sample(t *testing.T, inj *model.Injection) []float32 { return f.sampleN(t, 1, inj) }

func (f *fixture) sampleN(t *testing.T, n int, inj *model.Injection) []float32 {
	t.Helper()
	var px []float32
	prompts := make([]string, n)
	for i := range prompts {
		prompts[i] = "a shirt"
	}
	err := f.w.Do(context.Background(), func() error {
		res, err := f.base.Sample(context.Background(), model.SampleRequest{Prompts: prompts, Seed: 3, Steps: 5, Guidance: 3, Inject: inj})
		if err != nil {
			return err
		}
		px = res.Pixels
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return px
}

func TestHooksPersonaliseSampling(t *testing.T) {
	f := newFixture(t)
	path := f.writeAdapters(t, "a.safetensors", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "10"})
	var set *adapters.Set
	if err := f.w.Do(context.Background(), func() (err error) { set, err = adapters.Load(path, f.base, baseID); return err }); err != nil {
		t.Fatal(err)
	}
	defer f.w.Do(context.Background(), func() error { set.Close(); return nil })
	if set.TRef() != 10 || len(set.Blocks()) != 2 || set.Params() != 2*(3*(32*16+16)+(48*32+32)) {
		t.Fatalf("t_ref %v, blocks %v, %d params", set.TRef(), set.Blocks(), set.Params())
	}
	fs := f.features(t, 3, 1)
	two, err := featurecache.Concat(fs[1:])
	if err != nil {
		t.Fatal(err)
	}
	plain := f.sample(t, nil)
	outs := map[string][]float32{}
	for name, refs := range map[string]*featurecache.Features{"one": fs[0], "two": two} {
		var inj *model.Injection
		var release func()
		if err := f.w.Do(context.Background(), func() (err error) { inj, release, err = set.Hooks(refs, model.GuideReference); return err }); err != nil {
			t.Fatal(err)
		}
		outs[name] = f.sample(t, inj)
		if err := f.w.Do(context.Background(), func() error { release(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	diff := func(a, b []float32) float64 {
		d := 0.0
		for i := range a {
			d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		}
		return d
	}
	if d := diff(outs["one"], plain); d < 1e-3 {
		t.Errorf("the subject changed the sample by only %g", d)
	}
	if d := diff(outs["one"], outs["two"]); d < 1e-3 {
		t.Errorf("two different subjects gave samples %g apart", d)
	}

	// Per-row subjects: image 0 of a two-subject request is the one-subject sample of fs[0].
	var inj *model.Injection
	var release func()
	if err := f.w.Do(context.Background(), func() (err error) { inj, release, err = set.RowHooks(fs[:2], model.GuideReference); return err }); err != nil {
		t.Fatal(err)
	}
	rows := f.sampleN(t, 2, inj)
	if err := f.w.Do(context.Background(), func() error { release(); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := diff(rows[:len(plain)], outs["one"]); d > 1e-4 {
		t.Errorf("image 0 of a per-row request is %g from its single-subject sample", d)
	}
	if err := f.w.Do(context.Background(), func() (err error) { inj, release, err = set.Hooks(fs[1], model.GuideReference); return err }); err != nil {
		t.Fatal(err)
	}
	second := f.sampleN(t, 2, inj)
	if err := f.w.Do(context.Background(), func() error { release(); return nil }); err != nil {
		t.Fatal(err)
	}
	if d := diff(rows[len(plain):], second[len(plain):]); d > 1e-4 {
		t.Errorf("image 1 of a per-row request is %g from its single-subject sample", d)
	}
}

func TestLoadAndHooksRefuseMismatches(t *testing.T) {
	f := newFixture(t)
	good := f.writeAdapters(t, "good.safetensors", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "10"})
	loads := []struct {
		name string
		path string
		id   string
		code cachet.Code
	}{
		{"other base", good, "fedcba9876543210", cachet.CodeConflict},
		{"no base named", f.writeAdapters(t, "nobase.safetensors", map[string]string{adapters.MetaTRef: "10"}), baseID, cachet.CodeInvalidArgument},
		{"no t_ref", f.writeAdapters(t, "notref.safetensors", map[string]string{adapters.MetaBase: baseID}), baseID, cachet.CodeInvalidArgument},
		{"missing file", filepath.Join(f.dir, "none.safetensors"), baseID, cachet.CodeNotFound},
		{"seven views", f.writeAdapters(t, "views7.safetensors", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "10", adapters.MetaViews: "7"}), baseID, cachet.CodeInvalidArgument},
		{"embeds 2 views, reads 1", f.writeViewAdapters(t, "embed2.safetensors", 2, map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "10"}), baseID, cachet.CodeInvalidArgument},
		{"views not a number", f.writeAdapters(t, "viewsx.safetensors", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "10", adapters.MetaViews: "x"}), baseID, cachet.CodeInvalidArgument},
	}
	for _, tc := range loads {
		t.Run("load/"+tc.name, func(t *testing.T) {
			err := f.w.Do(context.Background(), func() error {
				s, err := adapters.Load(tc.path, f.base, tc.id)
				if err == nil {
					s.Close()
				}
				return err
			})
			if cachet.CodeOf(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
		})
	}

	var set *adapters.Set
	if err := f.w.Do(context.Background(), func() (err error) { set, err = adapters.Load(good, f.base, baseID); return err }); err != nil {
		t.Fatal(err)
	}
	defer f.w.Do(context.Background(), func() error { set.Close(); return nil })
	ref := f.features(t, 1, 2)[0]
	edit := func(fn func(c *featurecache.Features)) *featurecache.Features {
		c := *ref
		fn(&c)
		return &c
	}
	partial, err := featurecache.NewExtractor(f.w, f.base, baseID, featurecache.Config{Blocks: []int{0, 1}, TRef: 10, MaxBatch: 4})
	if err != nil {
		t.Fatal(err)
	}
	fewer, err := partial.Extract(context.Background(), [][]float32{make([]float32, partial.ImagePixels())})
	if err != nil {
		t.Fatal(err)
	}
	hooks := []struct {
		name string
		refs *featurecache.Features
		code cachet.Code
	}{
		{"nil", nil, cachet.CodeInvalidArgument},
		{"other model", edit(func(c *featurecache.Features) { c.Model = "fedcba9876543210" }), cachet.CodeConflict},
		{"other t_ref", edit(func(c *featurecache.Features) { c.TRef = 20 }), cachet.CodeConflict},
		// Adapters without MetaViews read one view; a two-view cache is another reference layout.
		{"two views", edit(func(c *featurecache.Features) { c.Views = 2 }), cachet.CodeConflict},
		{"other width", edit(func(c *featurecache.Features) { c.Width = 64 }), cachet.CodeInvalidArgument},
		{"missing block", fewer[0], cachet.CodeConflict},
	}
	for _, tc := range hooks {
		t.Run("hooks/"+tc.name, func(t *testing.T) {
			err := f.w.Do(context.Background(), func() error {
				_, release, err := set.Hooks(tc.refs, model.GuideReference)
				if err == nil {
					release()
				}
				return err
			})
			if cachet.CodeOf(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
		})
	}
}

// Adapters trained on two views ask for two-view caches at their t_ref, over every block.
func TestCacheConfigFollowsTheAdapters(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		meta  map[string]string
		embed int // view embeddings in the adapters
		views int
	}{
		{"made before views", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "20"}, 0, 1},
		{"two views", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "20", adapters.MetaViews: "2"}, 0, 2},
		{"two embedded views", map[string]string{adapters.MetaBase: baseID, adapters.MetaTRef: "20", adapters.MetaViews: "2"}, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := f.writeViewAdapters(t, tc.name+".safetensors", tc.embed, tc.meta)
			var set *adapters.Set
			if err := f.w.Do(context.Background(), func() (err error) { set, err = adapters.Load(path, f.base, baseID); return err }); err != nil {
				t.Fatal(err)
			}
			defer f.w.Do(context.Background(), func() error { set.Close(); return nil })
			c := set.CacheConfig(f.base)
			if set.Views() != tc.views || c.NumViews() != tc.views || c.TRef != 20 || len(c.Blocks) != f.base.Cfg.Depth {
				t.Fatalf("views %d, cache config %+v", set.Views(), c)
			}
		})
	}
}
