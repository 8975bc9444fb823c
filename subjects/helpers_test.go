package subjects_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
	"time"

	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
)

// randomExtractor is the extraction pass of a random-weight model with the default architecture (so the
// pooled vectors have the indexed 1536 dimensions), under a model id of its own: the test database is
// shared, and similarity only compares subjects of one model.
func randomExtractor(t *testing.T) *featurecache.Extractor {
	t.Helper()
	w := model.NewWorker(false)
	t.Cleanup(w.Close)
	var m *model.DiT
	err := w.Do(context.Background(), func() error {
		if err := model.SetSeed(11); err != nil {
			return err
		}
		var err error
		if m, err = model.New(defaultArchitecture(), model.CPU); err != nil {
			return err
		}
		return m.Randomize(0.2)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Do(context.Background(), func() error { m.Close(); return nil }) })
	e, err := featurecache.NewExtractor(w, m, fmt.Sprintf("test-%d", time.Now().UnixNano()), featurecache.DefaultConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// defaultArchitecture is train.BaseModelConfig (not imported: train pulls in the whole training stack).
func defaultArchitecture() model.Config {
	return model.Config{ImageSize: dataset.CanvasSide, Channels: 1, Patch: 4, Width: 256, Depth: 6, Heads: 4,
		MLPRatio: 4, Prediction: model.PredictFlow, Cond: model.CondText, Vocabulary: dataset.Vocabulary(),
		MaxWords: 10, TextWidth: 128, TextDepth: 1}
}

// pattern draws a w×h test image: a bright blob whose place and size depend on seed, on black.
func pattern(w, h, seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy, r := (seed*7)%w, (seed*13)%h, max(2, (seed%5+2)*min(w, h)/12)
	for y := range h {
		for x := range w {
			v := uint8(0)
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) < r*r {
				v = uint8(150 + seed*10%100)
			}
			img.Set(x, y, color.RGBA{v, v / 2, v, 255})
		}
	}
	return img
}

func pngBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
