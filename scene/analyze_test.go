package scene_test

import (
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet/scene"
)

// TestAnalyzeAccuracy renders random scenes of test-split items and checks that Analyze reads each
// attribute back at least 99.5 % of the time (the evaluation's alignment metric relies on it).
// TestAnalyzeEveryScene does the same for every item under every scene.
func TestAnalyzeAccuracy(t *testing.T) {
	set := loadTest(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	var size, pos, inv, empty int
	for range n {
		i := rng.IntN(set.Len())
		s := scene.RandomScene(rng, set.Label(i))
		img, err := scene.Render(set.Image(i), s)
		if err != nil {
			t.Fatal(err)
		}
		o := scene.Analyze(&img)
		if o.Empty {
			empty++
		}
		size += b2i(o.Large == s.Large)
		pos += b2i(o.Position == s.Position)
		inv += b2i(o.Inverted == s.Inverted)
	}
	for _, c := range []struct {
		name    string
		correct int
	}{{"size", size}, {"position", pos}, {"inversion", inv}} {
		acc := float64(c.correct) / n
		t.Logf("%s: %.3f%% of %d random test-split scenes", c.name, 100*acc, n)
		if acc < 0.995 {
			t.Errorf("%s accuracy %.3f%% < 99.5%%", c.name, 100*acc)
		}
	}
	if empty > 0 {
		t.Errorf("%d real renders read as empty", empty)
	}
}

// TestAnalyzeNoisy: generated images are noisy, so Analyze must not hinge on a pure background.
// Every pixel gets uniform noise and three random pixels are flipped to the opposite polarity.
func TestAnalyzeNoisy(t *testing.T) {
	set := loadTest(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 20000
	for _, noise := range []int{8, 24} {
		var size, pos, inv int
		for range n {
			i := rng.IntN(set.Len())
			s := scene.RandomScene(rng, set.Label(i))
			img, err := scene.Render(set.Image(i), s)
			if err != nil {
				t.Fatal(err)
			}
			for k := range img {
				img[k] = uint8(min(255, max(0, int(img[k])+rng.IntN(2*noise+1)-noise)))
			}
			for range 3 {
				k := rng.IntN(scene.CanvasPixels)
				img[k] = 255 - img[k]
			}
			o := scene.Analyze(&img)
			size += b2i(o.Large == s.Large)
			pos += b2i(o.Position == s.Position)
			inv += b2i(o.Inverted == s.Inverted)
		}
		t.Logf("noise ±%d: size %.3f%%, position %.3f%%, inversion %.3f%%", noise,
			100*float64(size)/n, 100*float64(pos)/n, 100*float64(inv)/n)
		if min(size, pos, inv) < n*99/100 {
			t.Errorf("noise ±%d: an attribute is read right less than 99%% of the time", noise)
		}
	}
}

func TestAnalyzeBlank(t *testing.T) {
	for _, v := range []uint8{0, 255} {
		var img [scene.CanvasPixels]uint8
		for k := range img {
			img[k] = v
		}
		if o := scene.Analyze(&img); !o.Empty || o.Inverted != (v == 255) {
			t.Errorf("blank %d canvas: %+v", v, o)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestAnalyzeEveryScene(t *testing.T) {
	set := loadTest(t)
	var n, size, pos, inv int
	for i := range set.Len() {
		for _, s := range scene.AllScenes(set.Label(i)) {
			img, err := scene.Render(set.Image(i), s)
			if err != nil {
				t.Fatal(err)
			}
			o := scene.Analyze(&img)
			n++
			size += b2i(o.Large == s.Large)
			pos += b2i(o.Position == s.Position)
			inv += b2i(o.Inverted == s.Inverted)
		}
	}
	t.Logf("every test item × 24 scenes (%d): size %.4f%%, position %.4f%%, inversion %.4f%%", n,
		100*float64(size)/float64(n), 100*float64(pos)/float64(n), 100*float64(inv)/float64(n))
	if min(size, pos, inv)*1000 < n*995 {
		t.Error("an attribute is read right less than 99.5% of the time")
	}
}
