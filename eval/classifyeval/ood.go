package classifyeval

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/f64"
	"golang.org/x/image/math/fixed"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// The out-of-domain few-shot task: ten letters rendered from Debian's DejaVu faces (fonts-dejavu-core)
// with varied face, size, rotation, position and ink, as 28×28 light-on-dark items. Nothing in it is
// Fashion-MNIST: it measures what a user's own task gets from a collection.

// GlyphLabels are the task's classes.
var GlyphLabels = []string{"A", "B", "C", "E", "H", "K", "M", "R", "S", "X"}

// DefaultFontsDir is where Debian installs the DejaVu faces.
const DefaultFontsDir = "/usr/share/fonts/truetype/dejavu"

// The task's fixed split: the labelled shots and the test images come from seeds of their own.
const (
	glyphTrainSeed = 101
	glyphTestSeed  = 202
)

// GlyphItems renders perClass items of each label, drawn with seed from the .ttf faces in dir.
func GlyphItems(dir string, perClass int, seed int64) ([][scene.ItemPixels]uint8, []int, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.ttf"))
	if err != nil || len(paths) == 0 {
		return nil, nil, cachet.InvalidField("fonts", "no .ttf faces in %s (Debian's fonts-dejavu-core installs them; make toolchain provisions it)", dir)
	}
	slices.Sort(paths)
	faces := make([]*opentype.Font, len(paths))
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		if faces[i], err = opentype.Parse(data); err != nil {
			return nil, nil, fmt.Errorf("classifyeval: %s: %w", p, err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(len(GlyphLabels))))
	items := make([][scene.ItemPixels]uint8, 0, perClass*len(GlyphLabels))
	labels := make([]int, 0, cap(items))
	for range perClass {
		for label, text := range GlyphLabels {
			it, err := renderGlyph(faces[rng.IntN(len(faces))], text, glyphStyle{
				size:  14 + 10*rng.Float64(),                   // cap height about half to most of the item
				angle: (rng.Float64()*30 - 15) * math.Pi / 180, // ±15°
				dx:    rng.Float64()*4 - 2, dy: rng.Float64()*4 - 2,
				ink: uint8(160 + rng.IntN(96)),
			})
			if err != nil {
				return nil, nil, err
			}
			items, labels = append(items, it), append(labels, label)
		}
	}
	return items, labels, nil
}

type glyphStyle struct {
	size, angle, dx, dy float64
	ink                 uint8
}

// glyphOversample is the resolution the glyph is drawn at before it is rotated and scaled down.
const glyphOversample = 4

// renderGlyph draws text centred on a large canvas, then rotates and scales it into an item.
func renderGlyph(f *opentype.Font, text string, s glyphStyle) ([scene.ItemPixels]uint8, error) {
	var it [scene.ItemPixels]uint8
	const big = scene.ItemSide * glyphOversample
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: s.size * glyphOversample, DPI: 72, Hinting: font.HintingNone})
	if err != nil {
		return it, err
	}
	defer face.Close()
	src := image.NewGray(image.Rect(0, 0, big, big))
	d := &font.Drawer{Dst: src, Src: image.NewUniform(color.Gray{Y: s.ink}), Face: face}
	b, _ := d.BoundString(text)
	// The glyph's box centred on the canvas.
	cx, cy := (b.Min.X+b.Max.X)/2, (b.Min.Y+b.Max.Y)/2
	d.Dot = fixed.Point26_6{X: fixed.I(big/2) - cx, Y: fixed.I(big/2) - cy}
	d.DrawString(text)
	// src → item: about the centre, rotate, scale by 1/glyphOversample, then shift.
	k := 1.0 / glyphOversample
	cos, sin := k*math.Cos(s.angle), k*math.Sin(s.angle)
	c := float64(big) / 2
	half := float64(scene.ItemSide) / 2
	m := f64.Aff3{cos, -sin, half + s.dx - (cos*c - sin*c), sin, cos, half + s.dy - (sin*c + cos*c)}
	dst := image.NewGray(image.Rect(0, 0, scene.ItemSide, scene.ItemSide))
	draw.ApproxBiLinear.Transform(dst, m, src, src.Bounds(), draw.Src, nil)
	copy(it[:], dst.Pix)
	return it, nil
}

// outOfDomain scores the glyph task: the default collection builds over the labelled shots (alone, and
// with the test images unlabelled), as uploaded and recentred, against 1-NN on pixels and the evaluator's
// CNN architecture trained on the same shots.
func (r *Report) outOfDomain(ctx context.Context, services [2]*classify.Service, progress io.Writer) error {
	shotItems, shotLabels, err := GlyphItems(r.cfg.FontsDir, r.cfg.Shots, glyphTrainSeed)
	if err != nil {
		return err
	}
	testItems, testLabels, err := GlyphItems(r.cfg.FontsDir, r.cfg.OutOfDomain, glyphTestSeed)
	if err != nil {
		return err
	}
	n := len(testItems)
	shots, err := itemCanvases(shotItems)
	if err != nil {
		return err
	}
	tests, err := itemCanvases(testItems)
	if err != nil {
		return err
	}
	add := func(name string, acc float64, note string) {
		r.OutOfDomain = append(r.OutOfDomain, Method{Name: name, Images: n, Accuracy: acc, Note: note})
	}
	fmt.Fprintf(progress, "eval classify: out-of-domain glyphs, %d shots and %d test images per class\n", r.cfg.Shots, r.cfg.OutOfDomain)
	add("1-NN on pixels", knn(itemSet(shotItems, shotLabels), itemSet(testItems, testLabels), 1), fmt.Sprintf("%d labelled images, L2", len(shotItems)))
	recentredShots, err := recentredItems(shots)
	if err != nil {
		return err
	}
	recentredTests, err := recentredItems(tests)
	if err != nil {
		return err
	}
	add("1-NN on pixels, recentred", knn(itemSet(recentredShots, shotLabels), itemSet(recentredTests, testLabels), 1),
		"both sides through images.Recenter first")
	cnn, err := r.cnnOnShots(ctx, shotItems, shotLabels, testItems, testLabels)
	if err != nil {
		return err
	}
	add("small CNN trained on the shots", cnn, "the evaluator's architecture from scratch: 200 steps of 32 shots, no augmentation, seed 1")
	for i, svc := range services {
		suffix := ""
		if i == 1 {
			suffix = ", recentred"
		}
		feats, err := svc.Featurizer().Canvases(ctx, tests)
		if err != nil {
			return err
		}
		for _, transductive := range []bool{false, true} {
			acc, note, err := glyphCollection(ctx, svc, shots, shotLabels, tests, testLabels, feats, transductive)
			if err != nil {
				return err
			}
			name := fmt.Sprintf("%d-shot collection, the default build%s", r.cfg.Shots, suffix)
			if transductive {
				name = fmt.Sprintf("%d-shot collection with the test images unlabelled, the default build%s", r.cfg.Shots, suffix)
			}
			add(name, acc, note)
		}
	}
	return nil
}

func itemCanvases(items [][scene.ItemPixels]uint8) ([][]uint8, error) {
	out := make([][]uint8, len(items))
	for i := range items {
		c, err := classify.ItemCanvas(&items[i])
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// glyphCollection builds the default model of a collection of the labelled shots (and, transductive, the
// test images unlabelled) and scores the test images' features.
func glyphCollection(ctx context.Context, svc *classify.Service, shots [][]uint8, shotLabels []int, tests [][]uint8, testLabels []int, feats [][]float32, transductive bool) (float64, string, error) {
	col, err := svc.CreateCollection(ctx, cachet.NewCollection{Name: fmt.Sprintf("eval-glyphs-%d", time.Now().UnixNano()), Labels: GlyphLabels})
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = svc.DeleteCollection(context.WithoutCancel(ctx), col.ID) }()
	if _, err := svc.AddCanvases(ctx, col.ID, shots, shotLabels, nil); err != nil {
		return 0, "", err
	}
	if transductive {
		if _, err := svc.AddCanvases(ctx, col.ID, tests, unlabelled(len(tests)), feats); err != nil {
			return 0, "", err
		}
	}
	built, acc, err := buildAndScore(ctx, svc, col.ID, cachet.BuildRequest{}, testLabels, feats)
	if err != nil {
		return 0, "", err
	}
	return acc, modelNote(built), nil
}

// cnnOnShots trains the evaluator's small CNN from scratch on the shots and scores the test items.
func (r *Report) cnnOnShots(ctx context.Context, shots [][scene.ItemPixels]uint8, shotLabels []int, test [][scene.ItemPixels]uint8, testLabels []int) (float64, error) {
	const steps, batch = 200, 32
	w := model.NewWorker(true)
	defer w.Close()
	var acc float64
	err := w.Do(ctx, func() error {
		if err := model.SetSeed(1); err != nil {
			return err
		}
		c, err := model.NewClassifier(model.CPU)
		if err != nil {
			return err
		}
		defer c.Close()
		tr, err := model.NewClassifierTrainer(c, 1e-3, 1e-4)
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(1, 2))
		pixels := make([]uint8, 0, batch*scene.ItemPixels)
		labels := make([]int, 0, batch)
		for range steps {
			pixels, labels = pixels[:0], labels[:0]
			for range batch {
				j := rng.IntN(len(shots))
				pixels, labels = append(pixels, shots[j][:]...), append(labels, shotLabels[j])
			}
			if _, err := tr.Step(pixels, labels); err != nil {
				return err
			}
		}
		all := make([]uint8, 0, len(test)*scene.ItemPixels)
		for i := range test {
			all = append(all, test[i][:]...)
		}
		pred, _, err := c.Predict(all, 256)
		if err != nil {
			return err
		}
		right := 0
		for i, p := range pred {
			if p == testLabels[i] {
				right++
			}
		}
		acc = float64(right) / float64(len(test))
		return nil
	})
	return acc, err
}

// recentredItems passes canonical canvases through images.Recenter and takes their items back out.
func recentredItems(canvases [][]uint8) ([][scene.ItemPixels]uint8, error) {
	out := make([][scene.ItemPixels]uint8, len(canvases))
	for i, c := range canvases {
		rc := images.Recenter((*[scene.CanvasPixels]uint8)(c))
		it, err := scene.Derender(&rc, scene.Canonical(0))
		if err != nil {
			return nil, err
		}
		out[i] = it
	}
	return out, nil
}
