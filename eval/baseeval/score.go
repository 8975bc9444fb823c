package baseeval

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/scene"
)

// NumPrompts is the size of the full prompt set: every valid scene of every class.
const NumPrompts = scene.NumClasses * 24

// Prompts is the evaluation prompt set: scene.AllScenes of every class (or of classes, when given),
// class by class (240 scenes for all ten), or only the first limit of them when 0 < limit < their number.
func Prompts(limit int, classes ...int) []scene.Scene {
	if len(classes) == 0 {
		for c := range scene.NumClasses {
			classes = append(classes, c)
		}
	}
	out := make([]scene.Scene, 0, NumPrompts)
	for _, c := range classes {
		out = append(out, scene.AllScenes(c)...)
	}
	if limit > 0 && limit < len(out) {
		out = out[:limit]
	}
	return out
}

// Judgement is what one image says about its prompt's scene.
type Judgement struct {
	Scene    scene.Scene
	Image    [scene.CanvasPixels]uint8
	Observed scene.Observed          // image moments (scene.Analyze)
	Item     [scene.ItemPixels]uint8 // de-rendered under Scene: what the evaluator judges
	// Size, Position and Inversion: Analyze agrees with the scene. Position is scored for small scenes
	// only. An Empty observation is wrong for everything.
	Size, Position, Inversion bool
	// Mirror: the detected orientation matches Scene.Mirrored; scored for MirrorClasses only.
	Mirror bool
	// Class is the evaluator's prediction (Classify); −1 until then.
	Class int
}

// ClassCorrect says whether the evaluator recognised the prompt's class (never for an empty image).
func (j *Judgement) ClassCorrect() bool { return !j.Observed.Empty && j.Class == j.Scene.Class }

// Judge reads img back against the scene its prompt describes: size, position and inversion from image
// moments; the de-rendered item for the evaluator; for MirrorClasses, the orientation of the item as
// drawn (de-rendered without undoing the mirror) against the scene's Mirrored.
func Judge(img *[scene.CanvasPixels]uint8, s scene.Scene, det *MirrorDetector) (Judgement, error) {
	j := Judgement{Scene: s, Image: *img, Observed: scene.Analyze(img), Class: -1}
	item, err := scene.Derender(img, s)
	if err != nil {
		return j, err
	}
	j.Item = item
	if j.Observed.Empty {
		return j, nil
	}
	j.Size = j.Observed.Large == s.Large
	j.Position = j.Observed.Position == s.Position
	j.Inversion = j.Observed.Inverted == s.Inverted
	if IsMirrorClass(s.Class) && det != nil {
		upright := s
		upright.Mirrored = false
		drawn, err := scene.Derender(img, upright)
		if err != nil {
			return j, err
		}
		mirrored, _ := det.Mirrored(&drawn, s.Class)
		j.Mirror = mirrored == s.Mirrored
	}
	return j, nil
}

// JudgeAll judges images[i] against scenes[i].
func JudgeAll(images [][scene.CanvasPixels]uint8, scenes []scene.Scene, det *MirrorDetector) ([]Judgement, error) {
	if len(images) != len(scenes) {
		return nil, fmt.Errorf("baseeval: %d images for %d scenes", len(images), len(scenes))
	}
	out := make([]Judgement, len(images))
	for i := range images {
		var err error
		if out[i], err = Judge(&images[i], scenes[i], det); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Evaluator is what scoring needs of the evaluator network; *model.Classifier has it (and must be called
// on its model worker).
type Evaluator interface {
	Predict(pixels []uint8, batch int) ([]int, [][]float64, error)
	Features(pixels []uint8, batch int) ([][]float64, error)
}

// classifyBatch is the evaluator's batch size: small, the network is cheap and memory stays flat.
const classifyBatch = 128

// Classify runs the evaluator over the judgements' de-rendered items: it sets each Class and returns each
// item's feature vector (the Fréchet-distance space).
func Classify(ev Evaluator, js []Judgement) ([][]float64, error) {
	if len(js) == 0 {
		return nil, nil
	}
	pixels := make([]uint8, 0, len(js)*scene.ItemPixels)
	for i := range js {
		pixels = append(pixels, js[i].Item[:]...)
	}
	pred, _, err := ev.Predict(pixels, classifyBatch)
	if err != nil {
		return nil, err
	}
	feats, err := ev.Features(pixels, classifyBatch)
	if err != nil {
		return nil, err
	}
	if len(pred) != len(js) || len(feats) != len(js) {
		return nil, fmt.Errorf("baseeval: the evaluator answered %d classes and %d feature vectors for %d items", len(pred), len(feats), len(js))
	}
	for i := range js {
		js[i].Class = pred[i]
	}
	return feats, nil
}

// Streams of the seeded RNG that picks real items: the ceiling set and the independent second set that
// gives Fréchet distance's split baseline.
const (
	RealStream     uint64 = 0x7265616c // "real"
	BaselineStream uint64 = 0x73706c74 // "splt"
)

// RealScenes renders, for each scene, an item of its class from set (the test split) under it. Item j is
// chosen by its own RNG stream (stream, j), so the choice does not depend on how many scenes there are.
func RealScenes(set *dataset.Set, scenes []scene.Scene, stream uint64) ([][scene.CanvasPixels]uint8, error) {
	var byClass [scene.NumClasses][]int
	for i := range set.Len() {
		byClass[set.Label(i)] = append(byClass[set.Label(i)], i)
	}
	out := make([][scene.CanvasPixels]uint8, len(scenes))
	for j, s := range scenes {
		if err := s.Validate(); err != nil {
			return nil, err
		}
		items := byClass[s.Class]
		if len(items) == 0 {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument, "the data has no %s item to render", scene.ClassNames[s.Class])
		}
		rng := rand.New(rand.NewPCG(stream, uint64(j)))
		img, err := scene.Render(set.Image(items[rng.IntN(len(items))]), s)
		if err != nil {
			return nil, err
		}
		out[j] = img
	}
	return out, nil
}

// Metrics are one image set's accuracies against its prompts. Position counts small scenes only, Mirror
// MirrorClasses only; All is class ∧ size ∧ position (small scenes) ∧ inversion.
type Metrics struct {
	N     int               `json:"n"`
	Empty int               `json:"empty"` // images where Analyze found no item
	Class eval.CounterEntry `json:"class"`
	// ClassLarge and ClassSmall split Class by the prompt's size: a 16-pixel item shows far less of what
	// tells a pullover from a coat.
	ClassLarge eval.CounterEntry `json:"class_large"`
	ClassSmall eval.CounterEntry `json:"class_small"`
	// Brightness is the mean foreground value (pixels above ForegroundLevel) of the de-rendered items,
	// inversion undone: guidance over-exposes items, and the evaluator reads brightness as a class cue.
	Brightness float64           `json:"item_brightness"`
	Size       eval.CounterEntry `json:"size"`
	Position   eval.CounterEntry `json:"position"`
	Inversion  eval.CounterEntry `json:"inversion"`
	Mirror     eval.CounterEntry `json:"mirror"`
	All        eval.CounterEntry `json:"all"`
	PerClass   []ClassMetrics    `json:"per_class"`
}

// ForegroundLevel is the de-rendered item value above which a pixel counts as the item's for Brightness.
const ForegroundLevel = 20

// ClassMetrics are one class's accuracies (Mirror only for MirrorClasses).
type ClassMetrics struct {
	Name   string             `json:"name"`
	Class  eval.CounterEntry  `json:"class"`
	Large  eval.CounterEntry  `json:"class_large"`
	Small  eval.CounterEntry  `json:"class_small"`
	Mirror *eval.CounterEntry `json:"mirror,omitempty"`
}

// Tally counts the judgements (after Classify) into Metrics.
func Tally(js []Judgement) Metrics {
	var c eval.Counter
	m := Metrics{N: len(js)}
	var brightness float64
	for i := range js {
		j := &js[i]
		name := scene.ClassNames[j.Scene.Class]
		if j.Observed.Empty {
			m.Empty++
		} else {
			brightness += itemBrightness(&j.Item)
		}
		size := "/small"
		if j.Scene.Large {
			size = "/large"
		}
		c.Add("class", j.ClassCorrect())
		c.Add("class"+size, j.ClassCorrect())
		c.Add("class/"+name, j.ClassCorrect())
		c.Add("class/"+name+size, j.ClassCorrect())
		c.Add("size", j.Size)
		c.Add("inversion", j.Inversion)
		all := j.ClassCorrect() && j.Size && j.Inversion
		if !j.Scene.Large {
			c.Add("position", j.Position)
			all = all && j.Position
		}
		c.Add("all", all)
		if IsMirrorClass(j.Scene.Class) {
			c.Add("mirror", j.Mirror)
			c.Add("mirror/"+name, j.Mirror)
		}
	}
	byName := map[string]eval.CounterEntry{}
	for _, e := range c.Entries() {
		byName[e.Name] = e
	}
	get := func(name string) eval.CounterEntry {
		if e, ok := byName[name]; ok {
			return e
		}
		return eval.CounterEntry{Name: name}
	}
	if m.N > m.Empty {
		m.Brightness = brightness / float64(m.N-m.Empty)
	}
	m.Class, m.Size, m.Position, m.Inversion = get("class"), get("size"), get("position"), get("inversion")
	m.ClassLarge, m.ClassSmall = get("class/large"), get("class/small")
	m.Mirror, m.All = get("mirror"), get("all")
	for class, name := range scene.ClassNames {
		e, ok := byName["class/"+name]
		if !ok {
			continue
		}
		cm := ClassMetrics{Name: name, Class: e, Large: get("class/" + name + "/large"), Small: get("class/" + name + "/small")}
		if IsMirrorClass(class) {
			me := get("mirror/" + name)
			cm.Mirror = &me
		}
		m.PerClass = append(m.PerClass, cm)
	}
	return m
}

// itemBrightness is the mean of an item's pixels above ForegroundLevel (0 when none are).
func itemBrightness(item *[scene.ItemPixels]uint8) float64 {
	sum, n := 0, 0
	for _, v := range item {
		if v > ForegroundLevel {
			sum += int(v)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(sum) / float64(n)
}

// ClassFilter turns class names into labels in dataset order (duplicates dropped); none means every class.
func ClassFilter(names []string) ([]int, error) {
	var out []int
	for c, name := range scene.ClassNames {
		if slices.Contains(names, name) {
			out = append(out, c)
		}
	}
	for _, n := range names {
		if !slices.Contains(scene.ClassNames[:], n) {
			return nil, cachet.InvalidField("classes", "%q is not a class; use %s", n, strings.Join(scene.ClassNames[:], ", "))
		}
	}
	return out, nil
}
