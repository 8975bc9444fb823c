package scene_test

import (
	"math"
	"testing"

	"github.com/cachetlab/cachet/scene"
)

func TestFromModelUnitsInvertsModelUnits(t *testing.T) {
	px := make([]float32, scene.CanvasPixels)
	vals := []float32{-1, 1, 0, -3, 7, float32(math.NaN()), 100/127.5 - 1}
	copy(px, vals)
	img, err := scene.FromModelUnits(px)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{0, 255, 128, 0, 255, 0, 100}
	for i, w := range want {
		if img[i] != w {
			t.Errorf("FromModelUnits(%v) = %d, want %d", vals[i], img[i], w)
		}
	}
	// Every byte survives the round trip through the model's scale.
	all := make([]uint8, scene.CanvasPixels)
	for v := range 256 {
		all[v] = uint8(v)
	}
	back, err := scene.FromModelUnits(scene.ModelUnits(all))
	if err != nil {
		t.Fatal(err)
	}
	for v := range 256 {
		if back[v] != uint8(v) {
			t.Fatalf("byte %d comes back as %d", v, back[v])
		}
	}
	if _, err := scene.FromModelUnits(px[:10]); err == nil {
		t.Error("a 10-value image was accepted")
	}
}

// A batch splits into whole images, each converted as FromModelUnits does; a partial image is refused.
func TestCanvasesFromModelUnitsSplitsABatch(t *testing.T) {
	px := make([]float32, 3*scene.CanvasPixels)
	for i := range 3 {
		px[i*scene.CanvasPixels] = float32(i) // pixel 0 of image i: 127.5·(i+1), rounded
	}
	imgs, err := scene.CanvasesFromModelUnits(px)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 || imgs[0][0] != 128 || imgs[1][0] != 255 || imgs[2][0] != 255 || imgs[1][1] != 128 {
		t.Errorf("got %d images, first pixels %d %d %d", len(imgs), imgs[0][0], imgs[1][0], imgs[2][0])
	}
	if _, err := scene.CanvasesFromModelUnits(px[:scene.CanvasPixels+1]); err == nil {
		t.Error("a batch with a partial image was accepted")
	}
}
