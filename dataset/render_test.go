package dataset_test

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
)

// solid is an item with every pixel v: its render shows exactly the item's box.
func solid(v uint8) *[dataset.ItemPixels]uint8 {
	var item [dataset.ItemPixels]uint8
	for i := range item {
		item[i] = v
	}
	return &item
}

func TestBoxes(t *testing.T) {
	// The documented placements (doc.go): x, y of the box's top-left corner, side.
	tests := []struct {
		s          dataset.Scene
		x, y, side int
	}{
		{dataset.Scene{Large: true}, 2, 2, 28},
		{dataset.Scene{Position: dataset.Center}, 8, 8, 16},
		{dataset.Scene{Position: dataset.Left}, 1, 8, 16},
		{dataset.Scene{Position: dataset.Right}, 15, 8, 16},
		{dataset.Scene{Position: dataset.Top}, 8, 1, 16},
		{dataset.Scene{Position: dataset.Bottom}, 8, 15, 16},
	}
	for _, tc := range tests {
		t.Run(dataset.Format(tc.s), func(t *testing.T) {
			if x, y, side := tc.s.Box(); x != tc.x || y != tc.y || side != tc.side {
				t.Fatalf("Box = %d,%d,%d; want %d,%d,%d", x, y, side, tc.x, tc.y, tc.side)
			}
			for _, inv := range []bool{false, true} {
				s := tc.s
				s.Inverted = inv
				img, err := dataset.Render(solid(200), s)
				if err != nil {
					t.Fatal(err)
				}
				for y := range dataset.CanvasSide {
					for x := range dataset.CanvasSide {
						inside := x >= tc.x && x < tc.x+tc.side && y >= tc.y && y < tc.y+tc.side
						want := uint8(0)
						if inside {
							want = 200 // the area filter keeps a flat item flat
						}
						if inv {
							want = 255 - want
						}
						if got := img[y*dataset.CanvasSide+x]; got != want {
							t.Fatalf("inverted=%v pixel (%d,%d) = %d, want %d", inv, x, y, got, want)
						}
					}
				}
			}
		})
	}
}

func TestRenderTransforms(t *testing.T) {
	set := loadTest(t)
	for _, i := range []int{0, 1, 2, 4242, 9999} {
		item := set.Image(i)
		var flipped [dataset.ItemPixels]uint8
		for y := range dataset.ItemSide {
			for x := range dataset.ItemSide {
				flipped[y*dataset.ItemSide+x] = item[y*dataset.ItemSide+dataset.ItemSide-1-x]
			}
		}
		for _, s := range dataset.AllScenes(set.Label(i)) {
			img := mustRender(t, item, s)
			plain := s
			plain.Mirrored, plain.Inverted = false, false
			want := mustRender(t, item, plain)
			if s.Mirrored {
				want = mustRender(t, &flipped, plain)
			}
			if s.Inverted {
				for k := range want {
					want[k] = 255 - want[k]
				}
			}
			if img != want {
				t.Fatalf("item %d, %q: not the plain render of the (flipped) item, (inverted)", i, dataset.Format(s))
			}
			got, err := dataset.Derender(&img, s)
			if err != nil {
				t.Fatal(err)
			}
			if s.Large {
				if got != *item {
					t.Fatalf("item %d, %q: Derender is not exact for a large item", i, dataset.Format(s))
				}
				continue
			}
			// Small items come back through a 28→16→28 round trip: blurred, not altered.
			small := s
			small.Mirrored, small.Inverted = false, false
			plainImg := mustRender(t, item, small)
			ref, _ := dataset.Derender(&plainImg, small)
			if got != ref {
				t.Fatalf("item %d, %q: Derender depends on mirroring/inversion", i, dataset.Format(s))
			}
			if mae := meanAbsDiff(got[:], item[:]); mae > 40 {
				t.Fatalf("item %d, %q: Derender is %.1f grey levels from the item on average", i, dataset.Format(s), mae)
			}
		}
	}
}

func TestDerenderSmallFidelity(t *testing.T) {
	set := loadTest(t)
	var sum float64
	for i := range set.Len() {
		s := dataset.Scene{Class: set.Label(i), Position: dataset.Position(i % 5)}
		img := mustRender(t, set.Image(i), s)
		got, err := dataset.Derender(&img, s)
		if err != nil {
			t.Fatal(err)
		}
		sum += meanAbsDiff(got[:], set.Image(i)[:])
	}
	mae := sum / float64(set.Len())
	t.Logf("small items: 28→16→28 round trip is %.2f grey levels from the item on average", mae)
	if mae > 16 {
		t.Fatalf("mean abs error %.2f", mae)
	}
}

func TestSceneValidation(t *testing.T) {
	tests := []struct {
		name string
		s    dataset.Scene
		want string
	}{
		{"negative class", dataset.Scene{Class: -1, Large: true}, "class -1 is out of range 0..9"},
		{"class 10", dataset.Scene{Class: 10}, "class 10 is out of range"},
		{"bad position", dataset.Scene{Position: 5}, "position 5 is out of range 0..4"},
		{"large off centre", dataset.Scene{Large: true, Position: dataset.Top}, "position top applies to small items only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, tc.s.Validate(), cachet.CodeInvalidArgument, tc.want)
			_, err := dataset.Render(solid(1), tc.s)
			checkErr(t, err, cachet.CodeInvalidArgument, tc.want)
			var img [dataset.CanvasPixels]uint8
			_, err = dataset.Derender(&img, tc.s)
			checkErr(t, err, cachet.CodeInvalidArgument, tc.want)
		})
	}
}

// TestRenderGolden pins the renderer's output: trained weights and cached datasets depend on these exact
// bytes, so a change here must be deliberate (update the hash and retrain).
func TestRenderGolden(t *testing.T) {
	set := loadTest(t)
	h := sha256.New()
	for i := range 50 {
		for _, s := range dataset.AllScenes(set.Label(i)) {
			img := mustRender(t, set.Image(i), s)
			h.Write(img[:])
		}
	}
	const want = "953c53bb6dd46ceeef6b6a94a93fefb0863bd44f9b9bf43f3a2276f11597fff7"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("renders changed: sha256 %s, want %s", got, want)
	}
}

func TestRandomScene(t *testing.T) {
	const n = 100000
	rng := rand.New(rand.NewPCG(7, 8))
	var large, mirrored, inverted int
	var pos [5]int
	for k := range n {
		s := dataset.RandomScene(rng, k%dataset.NumClasses)
		if err := s.Validate(); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if s.Class != k%dataset.NumClasses {
			t.Fatalf("class %d, want %d", s.Class, k%dataset.NumClasses)
		}
		if s.Large {
			large++
		} else {
			pos[s.Position]++
		}
		if s.Mirrored {
			mirrored++
		}
		if s.Inverted {
			inverted++
		}
	}
	near := func(name string, got int, want float64) {
		if d := float64(got) - want; d > 0.02*want || d < -0.02*want {
			t.Errorf("%s: %d, want ≈ %.0f", name, got, want)
		}
	}
	near("large", large, n/2)
	near("mirrored", mirrored, n/2)
	near("inverted", inverted, n/2)
	for p, c := range pos {
		near(dataset.Position(p).String(), c, float64(n-large)/5)
	}
	a, b := rand.New(rand.NewPCG(1, 1)), rand.New(rand.NewPCG(1, 1))
	for range 100 {
		if x, y := dataset.RandomScene(a, 3), dataset.RandomScene(b, 3); x != y {
			t.Fatalf("same seed, different scenes: %+v vs %+v", x, y)
		}
	}
}

func TestAllScenesAndCanonical(t *testing.T) {
	scenes := dataset.AllScenes(2)
	seen := map[dataset.Scene]bool{}
	for _, s := range scenes {
		if err := s.Validate(); err != nil || s.Class != 2 || seen[s] {
			t.Fatalf("%+v: err %v, duplicate %v", s, err, seen[s])
		}
		seen[s] = true
	}
	if len(scenes) != 24 {
		t.Fatalf("%d scenes, want 24", len(scenes))
	}
	if c := dataset.Canonical(5); c != (dataset.Scene{Class: 5, Large: true, Position: dataset.Center}) {
		t.Fatalf("Canonical(5) = %+v", c)
	}
	for p, want := range []string{"center", "left", "right", "top", "bottom"} {
		if got := dataset.Position(p).String(); got != want {
			t.Errorf("Position(%d) = %q, want %q", p, got, want)
		}
	}
}

func mustRender(t *testing.T, item *[dataset.ItemPixels]uint8, s dataset.Scene) [dataset.CanvasPixels]uint8 {
	t.Helper()
	img, err := dataset.Render(item, s)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func meanAbsDiff(a, b []uint8) float64 {
	sum := 0
	for i := range a {
		sum += max(int(a[i])-int(b[i]), int(b[i])-int(a[i]))
	}
	return float64(sum) / float64(len(a))
}

func BenchmarkRender(b *testing.B) {
	set := loadTest(b)
	scenes := []dataset.Scene{
		{Class: set.Label(0), Large: true},
		{Class: set.Label(0), Position: dataset.Left, Mirrored: true, Inverted: true},
	}
	for _, s := range scenes {
		b.Run(dataset.Format(s), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := dataset.Render(set.Image(i%set.Len()), s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAnalyze(b *testing.B) {
	set := loadTest(b)
	img, err := dataset.Render(set.Image(0), dataset.Scene{Class: set.Label(0), Position: dataset.Top, Inverted: true})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		dataset.Analyze(&img)
	}
}

// A small view of a canonical render is the item's small render at that position, byte for byte (the
// reference cache's small views are what the renderer draws for a 16-pixel item).
func TestSmallView(t *testing.T) {
	set := loadTest(t)
	for _, pos := range dataset.Positions() {
		t.Run(pos.String(), func(t *testing.T) {
			for i := range min(set.Len(), 100) {
				ref := mustRender(t, set.Image(i), dataset.Canonical(set.Label(i)))
				got, err := dataset.SmallView(&ref, pos)
				if err != nil {
					t.Fatal(err)
				}
				want := mustRender(t, set.Image(i), dataset.Scene{Class: set.Label(i), Position: pos})
				if got != want {
					t.Fatalf("item %d: the small view differs from the small render", i)
				}
			}
		})
	}
}
