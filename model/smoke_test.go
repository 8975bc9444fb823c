package model_test

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet/model"
)

// The smoke tests prove the gotch/libtorch build end to end: forward, backward, AdamW, save/load,
// threads and seeding all work in the binary CI builds.

func randn(t *testing.T, shape ...int64) *ts.Tensor {
	t.Helper()
	x, err := ts.Randn(shape, gotch.Float, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func values(t *testing.T, x *ts.Tensor) []float32 {
	t.Helper()
	v, err := model.Float32s(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSeedIsDeterministic(t *testing.T) {
	draw := func(seed int64) []float32 {
		if err := model.SetSeed(seed); err != nil {
			t.Fatal(err)
		}
		x := randn(t, 8)
		defer x.Drop()
		return values(t, x)
	}
	a, b, c := draw(7), draw(7), draw(8)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed gave different values at %d: %v vs %v", i, a[i], b[i])
		}
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("different seeds gave identical values")
	}
}

func TestThreadCount(t *testing.T) {
	orig := model.NumThreads()
	defer model.SetNumThreads(orig)
	for _, n := range []int{1, 2} {
		t.Run("threads", func(t *testing.T) {
			if err := model.SetNumThreads(n); err != nil {
				t.Fatal(err)
			}
			if got := model.NumThreads(); got != n {
				t.Fatalf("NumThreads() = %d, want %d", got, n)
			}
		})
	}
}

func TestTrainStepSaveLoad(t *testing.T) {
	runtime.LockOSThread() // libtorch's grad mode is per OS thread
	defer runtime.UnlockOSThread()
	if err := model.SetSeed(1); err != nil {
		t.Fatal(err)
	}
	m, err := model.NewTinyMLP(gotch.CPU, 4, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := nn.DefaultAdamWConfig().Build(m.VS, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	x := randn(t, 64, 4)
	defer x.Drop()
	y, err := x.SumDimIntlist([]int64{1}, true, gotch.Float, false) // target: the sum of the inputs
	if err != nil {
		t.Fatal(err)
	}
	defer y.Drop()

	lossAt := func() float32 {
		var s model.Scope
		defer s.Drop()
		pred, err := s.Track(m.Forward(x))
		if err != nil {
			t.Fatal(err)
		}
		loss, err := s.Track(pred.MseLoss(y, 1, false))
		if err != nil {
			t.Fatal(err)
		}
		if err := opt.BackwardStep(loss); err != nil {
			t.Fatal(err)
		}
		return values(t, loss)[0]
	}
	first := lossAt()
	before := model.LiveTensors()
	var last float32
	for range 200 {
		last = lossAt()
	}
	if after := model.LiveTensors(); after != before {
		t.Errorf("live C tensors grew over 200 steps: %d -> %d", before, after)
	}
	if !(last < first/10) {
		t.Fatalf("AdamW did not fit: loss %.4f -> %.4f", first, last)
	}

	path := filepath.Join(t.TempDir(), "tiny.ot")
	if err := m.VS.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := model.SetSeed(99); err != nil {
		t.Fatal(err)
	}
	loaded, err := model.NewTinyMLP(gotch.CPU, 4, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.VS.Load(path); err != nil {
		t.Fatal(err)
	}
	want, err := m.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Drop()
	got, err := loaded.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Drop()
	wv, gv := values(t, want), values(t, got)
	for i := range wv {
		if wv[i] != gv[i] {
			t.Fatalf("loaded model differs at %d: %v vs %v", i, gv[i], wv[i])
		}
	}
}
