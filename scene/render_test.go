package scene_test

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/scene"
)

// solid is an item with every pixel v: its render shows exactly the item's box.
func solid(v uint8) *[scene.ItemPixels]uint8 {
	var item [scene.ItemPixels]uint8
	for i := range item {
		item[i] = v
	}
	return &item
}

func TestBoxes(t *testing.T) {
	// The documented placements (doc.go): x, y of the box's top-left corner, side.
	tests := []struct {
		s          scene.Scene
		x, y, side int
	}{
		{scene.Scene{Large: true}, 2, 2, 28},
		{scene.Scene{Position: scene.Center}, 8, 8, 16},
		{scene.Scene{Position: scene.Left}, 1, 8, 16},
		{scene.Scene{Position: scene.Right}, 15, 8, 16},
		{scene.Scene{Position: scene.Top}, 8, 1, 16},
		{scene.Scene{Position: scene.Bottom}, 8, 15, 16},
	}
	for _, tc := range tests {
		t.Run(scene.Format(tc.s), func(t *testing.T) {
			if x, y, side := tc.s.Box(); x != tc.x || y != tc.y || side != tc.side {
				t.Fatalf("Box = %d,%d,%d; want %d,%d,%d", x, y, side, tc.x, tc.y, tc.side)
			}
			for _, inv := range []bool{false, true} {
				s := tc.s
				s.Inverted = inv
				img, err := scene.Render(solid(200), s)
				if err != nil {
					t.Fatal(err)
				}
				for y := range scene.CanvasSide {
					for x := range scene.CanvasSide {
						inside := x >= tc.x && x < tc.x+tc.side && y >= tc.y && y < tc.y+tc.side
						want := uint8(0)
						if inside {
							want = 200 // the area filter keeps a flat item flat
						}
						if inv {
							want = 255 - want
						}
						if got := img[y*scene.CanvasSide+x]; got != want {
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
		var flipped [scene.ItemPixels]uint8
		for y := range scene.ItemSide {
			for x := range scene.ItemSide {
				flipped[y*scene.ItemSide+x] = item[y*scene.ItemSide+scene.ItemSide-1-x]
			}
		}
		for _, s := range scene.AllScenes(set.Label(i)) {
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
				t.Fatalf("item %d, %q: not the plain render of the (flipped) item, (inverted)", i, scene.Format(s))
			}
			got, err := scene.Derender(&img, s)
			if err != nil {
				t.Fatal(err)
			}
			if s.Large {
				if got != *item {
					t.Fatalf("item %d, %q: Derender is not exact for a large item", i, scene.Format(s))
				}
				continue
			}
			// Small items come back through a 28→16→28 round trip: blurred, not altered.
			small := s
			small.Mirrored, small.Inverted = false, false
			plainImg := mustRender(t, item, small)
			ref, _ := scene.Derender(&plainImg, small)
			if got != ref {
				t.Fatalf("item %d, %q: Derender depends on mirroring/inversion", i, scene.Format(s))
			}
			if mae := meanAbsDiff(got[:], item[:]); mae > 40 {
				t.Fatalf("item %d, %q: Derender is %.1f grey levels from the item on average", i, scene.Format(s), mae)
			}
		}
	}
}

func TestDerenderSmallFidelity(t *testing.T) {
	set := loadTest(t)
	var sum float64
	for i := range set.Len() {
		s := scene.Scene{Class: set.Label(i), Position: scene.Position(i % 5)}
		img := mustRender(t, set.Image(i), s)
		got, err := scene.Derender(&img, s)
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
		s    scene.Scene
		want string
	}{
		{"negative class", scene.Scene{Class: -1, Large: true}, "class -1 is out of range 0..9"},
		{"class 10", scene.Scene{Class: 10}, "class 10 is out of range"},
		{"bad position", scene.Scene{Position: 5}, "position 5 is out of range 0..4"},
		{"large off centre", scene.Scene{Large: true, Position: scene.Top}, "position top applies to small items only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, tc.s.Validate(), cachet.CodeInvalidArgument, tc.want)
			_, err := scene.Render(solid(1), tc.s)
			checkErr(t, err, cachet.CodeInvalidArgument, tc.want)
			var img [scene.CanvasPixels]uint8
			_, err = scene.Derender(&img, tc.s)
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
		for _, s := range scene.AllScenes(set.Label(i)) {
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
		s := scene.RandomScene(rng, k%scene.NumClasses)
		if err := s.Validate(); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if s.Class != k%scene.NumClasses {
			t.Fatalf("class %d, want %d", s.Class, k%scene.NumClasses)
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
		near(scene.Position(p).String(), c, float64(n-large)/5)
	}
	a, b := rand.New(rand.NewPCG(1, 1)), rand.New(rand.NewPCG(1, 1))
	for range 100 {
		if x, y := scene.RandomScene(a, 3), scene.RandomScene(b, 3); x != y {
			t.Fatalf("same seed, different scenes: %+v vs %+v", x, y)
		}
	}
}

func TestAllScenesAndCanonical(t *testing.T) {
	scenes := scene.AllScenes(2)
	seen := map[scene.Scene]bool{}
	for _, s := range scenes {
		if err := s.Validate(); err != nil || s.Class != 2 || seen[s] {
			t.Fatalf("%+v: err %v, duplicate %v", s, err, seen[s])
		}
		seen[s] = true
	}
	if len(scenes) != 24 {
		t.Fatalf("%d scenes, want 24", len(scenes))
	}
	if c := scene.Canonical(5); c != (scene.Scene{Class: 5, Large: true, Position: scene.Center}) {
		t.Fatalf("Canonical(5) = %+v", c)
	}
	for p, want := range []string{"center", "left", "right", "top", "bottom"} {
		if got := scene.Position(p).String(); got != want {
			t.Errorf("Position(%d) = %q, want %q", p, got, want)
		}
	}
}

func mustRender(t *testing.T, item *[scene.ItemPixels]uint8, s scene.Scene) [scene.CanvasPixels]uint8 {
	t.Helper()
	img, err := scene.Render(item, s)
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
	scenes := []scene.Scene{
		{Class: set.Label(0), Large: true},
		{Class: set.Label(0), Position: scene.Left, Mirrored: true, Inverted: true},
	}
	for _, s := range scenes {
		b.Run(scene.Format(s), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := scene.Render(set.Image(i%set.Len()), s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAnalyze(b *testing.B) {
	set := loadTest(b)
	img, err := scene.Render(set.Image(0), scene.Scene{Class: set.Label(0), Position: scene.Top, Inverted: true})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		scene.Analyze(&img)
	}
}

// A small view of a canonical render is the item's small render at that position, byte for byte (the
// reference cache's small views are what the renderer draws for a 16-pixel item).
func TestSmallView(t *testing.T) {
	set := loadTest(t)
	for _, pos := range scene.Positions() {
		t.Run(pos.String(), func(t *testing.T) {
			for i := range min(set.Len(), 100) {
				ref := mustRender(t, set.Image(i), scene.Canonical(set.Label(i)))
				got, err := scene.SmallView(&ref, pos)
				if err != nil {
					t.Fatal(err)
				}
				want := mustRender(t, set.Image(i), scene.Scene{Class: set.Label(i), Position: pos})
				if got != want {
					t.Fatalf("item %d: the small view differs from the small render", i)
				}
			}
		})
	}
}
