package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/internal/atomicfile"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// EvaluatorConfig configures the evaluator's training (`cachet train evaluator`).
type EvaluatorConfig struct {
	Out         string  `json:"out"`
	Data        string  `json:"data"`
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	MinLRFrac   float64 `json:"min_lr_frac"`
	WeightDecay float64 `json:"weight_decay"`
	Dropout     float64 `json:"dropout"`
	Seed        uint64  `json:"seed"`
	Val         int     `json:"val_items"`
	DerenderP   float64 `json:"derender_p"`
	Shift       int     `json:"shift_px"`
	Flip        bool    `json:"flip"`
	Device      string  `json:"device"`
	TrainItems  int     `json:"train_items_limit"`
}

// derenderEvalSeed fixes the scenes of the de-rendered evaluation sets, independent of --seed, so runs
// with different seeds are scored on the same items.
const derenderEvalSeed = 20240

// Validate checks the settings and that Out can be written, before any work.
func (o *EvaluatorConfig) Validate() error {
	switch {
	case o.Epochs <= 0:
		return cachet.InvalidField("epochs", "must be at least 1 (got %d)", o.Epochs)
	case o.Batch <= 0:
		return cachet.InvalidField("batch", "must be at least 1 (got %d)", o.Batch)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return cachet.InvalidField("lr", "must be a positive number (got %v)", o.LR)
	case o.MinLRFrac < 0 || o.MinLRFrac > 1:
		return cachet.InvalidField("min_lr_frac", "must be in [0, 1] (got %v)", o.MinLRFrac)
	case o.WeightDecay < 0:
		return cachet.InvalidField("weight_decay", "must not be negative (got %v)", o.WeightDecay)
	case o.Dropout < 0 || o.Dropout >= 1:
		return cachet.InvalidField("dropout", "must be in [0, 1) (got %v)", o.Dropout)
	case o.DerenderP < 0 || o.DerenderP > 1:
		return cachet.InvalidField("derender_p", "must be a probability in [0, 1] (got %v)", o.DerenderP)
	case o.Shift < 0 || o.Shift > 8:
		return cachet.InvalidField("shift", "must be 0..8 pixels (got %d)", o.Shift)
	case o.Val < 0 || o.Val > 30000:
		return cachet.InvalidField("val", "must be 0..30000 items (got %d)", o.Val)
	case o.TrainItems < 0:
		return cachet.InvalidField("train_items", "must not be negative (got %d)", o.TrainItems)
	case o.Device != "auto" && o.Device != "cpu" && o.Device != "cuda":
		return cachet.InvalidField("device", "%q: use auto, cpu or cuda", o.Device)
	case !strings.HasSuffix(o.Out, ".safetensors"):
		return cachet.InvalidField("out", "%q: name the weights file *.safetensors (the metrics go to the same name with .json)", o.Out)
	}
	return checkWritableDir(filepath.Dir(o.Out))
}

// checkWritableDir creates dir if needed and proves a file can be written there, so a bad --out fails in
// a second instead of after the training.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &cachet.Error{Code: cachet.CodeInvalidArgument, Field: "out", Message: fmt.Sprintf("out: cannot create the directory %s: %v", dir, err), Err: err}
	}
	f, err := os.CreateTemp(dir, ".cachet-write-test-*")
	if err != nil {
		return &cachet.Error{Code: cachet.CodeInvalidArgument, Field: "out", Message: fmt.Sprintf("out: cannot write to the directory %s: %v", dir, err), Err: err}
	}
	f.Close()
	return os.Remove(f.Name())
}

// evalSet is a labelled set for accuracy: plain items, plus the de-rendered version of the items whose
// scene is small. A large scene's round trip is exact, so those items reuse the plain predictions instead
// of being classified twice.
type evalSet struct {
	pixels   []uint8
	labels   []int
	small    []uint8 // de-rendered small-scene items
	smallIdx []int   // their indices in pixels
}

func newEvalSet(pixels []uint8, labels []int) (*evalSet, error) {
	e := &evalSet{pixels: pixels, labels: labels}
	rng := rand.New(rand.NewPCG(derenderEvalSeed, 0))
	for i, l := range labels {
		sc := scene.RandomScene(rng, l)
		if sc.Large {
			continue
		}
		item := (*[scene.ItemPixels]uint8)(pixels[i*scene.ItemPixels : (i+1)*scene.ItemPixels])
		back, err := roundTrip(item, sc)
		if err != nil {
			return nil, err
		}
		e.small = append(e.small, back[:]...)
		e.smallIdx = append(e.smallIdx, i)
	}
	return e, nil
}

func roundTrip(item *[scene.ItemPixels]uint8, sc scene.Scene) ([scene.ItemPixels]uint8, error) {
	canvas, err := scene.Render(item, sc)
	if err != nil {
		return [scene.ItemPixels]uint8{}, err
	}
	return scene.Derender(&canvas, sc)
}

// accuracies are the fractions right on the plain items, on the de-rendered set (small scenes
// de-rendered, large ones as they are) and on its small scenes alone.
type accuracies struct {
	Plain      float64 `json:"plain"`
	Derendered float64 `json:"derendered"`
	Small      float64 `json:"derendered_small"`
}

func (e *evalSet) score(c *model.Classifier) (accuracies, error) {
	plain, _, err := c.Predict(e.pixels, 128)
	if err != nil {
		return accuracies{}, err
	}
	small, _, err := c.Predict(e.small, 128)
	if err != nil {
		return accuracies{}, err
	}
	right := make([]bool, len(plain))
	nPlain := 0
	for i, p := range plain {
		right[i] = p == e.labels[i]
		if right[i] {
			nPlain++
		}
	}
	nSmall := 0
	der := nPlain
	for k, p := range small {
		i := e.smallIdx[k]
		ok := p == e.labels[i]
		if ok {
			nSmall++
		}
		// The de-rendered verdict replaces the plain one for this item.
		switch {
		case ok && !right[i]:
			der++
		case !ok && right[i]:
			der--
		}
	}
	n := float64(len(plain))
	return accuracies{Plain: float64(nPlain) / n, Derendered: float64(der) / n,
		Small: float64(nSmall) / float64(max(1, len(small)))}, nil
}

type epochReport struct {
	Epoch     int        `json:"epoch"`
	TrainLoss float64    `json:"train_loss"`
	Test      accuracies `json:"test"`
	Val       accuracies `json:"val"`
	Seconds   float64    `json:"seconds"`
	SamplesPS float64    `json:"train_samples_per_second"`
}

type evaluatorReport struct {
	Weights                     string          `json:"weights"`
	Format                      string          `json:"format"`
	Params                      int64           `json:"params"`
	FileBytes                   int64           `json:"file_bytes"`
	TestAccuracy                float64         `json:"test_accuracy"`
	TestAccuracyDerendered      float64         `json:"test_accuracy_derendered"`
	TestAccuracyDerenderedSmall float64         `json:"test_accuracy_derendered_small"`
	BestEpoch                   int             `json:"best_epoch"`
	SelectedOn                  string          `json:"selected_on"`
	Epochs                      int             `json:"epochs"`
	History                     []epochReport   `json:"history"`
	WallSeconds                 float64         `json:"wall_seconds"`
	TrainSamplesPerSecond       float64         `json:"train_samples_per_second"`
	TrainItems                  int             `json:"train_items"`
	TestItems                   int             `json:"test_items"`
	TestSet                     string          `json:"test_set"`
	CommandLine                 string          `json:"command_line"`
	Seed                        uint64          `json:"seed"`
	TorchThreads                int             `json:"torch_threads"`
	Options                     EvaluatorConfig `json:"options"`
	Finished                    string          `json:"finished"`
}

// DefaultEvaluatorConfig is what the shipped evaluator was trained with.
func DefaultEvaluatorConfig() EvaluatorConfig {
	return EvaluatorConfig{Out: "weights/evaluator.safetensors", Data: dataset.DefaultDir, Epochs: 4, Batch: 128, LR: 1e-3,
		MinLRFrac: 0.02, WeightDecay: 1e-2, Dropout: 0.3, Seed: 1, Val: 5000, DerenderP: 0.5, Shift: 2, Flip: true, Device: "auto"}
}

// Evaluator trains the evaluator CNN on Fashion-MNIST's training split (minus Val items that pick the best
// epoch), AdamW with cosine decay, and writes the best epoch's weights to Out and its metrics next to them.
func Evaluator(ctx context.Context, o EvaluatorConfig, threads int, log io.Writer) error {
	start := time.Now()
	if err := o.Validate(); err != nil {
		return err
	}
	d, err := loadEvaluatorData(o)
	if err != nil {
		return err
	}
	rep := evaluatorReport{Weights: o.Out, Format: "classifier-v1", Epochs: o.Epochs, TrainItems: d.nTrain,
		TestItems: d.testItems, CommandLine: "cachet " + strings.Join(os.Args[1:], " "), Seed: o.Seed,
		Options: o, SelectedOn: "validation (held-out training items)",
		TestSet: fmt.Sprintf("Fashion-MNIST t10k; de-rendered: each item through scene.RandomScene (seed %d), small scenes Render→Derender", derenderEvalSeed)}
	if d.val == nil {
		rep.SelectedOn = "test set (--val 0)"
	}
	w := model.NewWorker(true)
	defer w.Close()
	var trainTime time.Duration
	err = w.Do(ctx, func() error {
		// libtorch's thread count is per OS thread under OpenMP: set it on the thread that computes.
		if err := model.SetNumThreads(threads); err != nil {
			return err
		}
		rep.TorchThreads = model.NumThreads()
		if err := model.SetSeed(int64(o.Seed)); err != nil {
			return err
		}
		dev, err := model.ParseDevice(o.Device)
		if err != nil {
			return err
		}
		c, err := model.NewClassifier(dev)
		if err != nil {
			return err
		}
		defer c.Close()
		c.Dropout = o.Dropout
		rep.Params = c.NumParams()
		tr, err := model.NewClassifierTrainer(c, o.LR, o.WeightDecay)
		if err != nil {
			return err
		}
		fmt.Fprintf(log, "evaluator: %d params, %d training items (%d held out), %d epochs of %d steps, %d torch threads\n",
			rep.Params, d.nTrain, o.Val, o.Epochs, (d.nTrain+o.Batch-1)/o.Batch, rep.TorchThreads)
		bestScore := -1.0
		for epoch := 1; epoch <= o.Epochs; epoch++ {
			t0 := time.Now()
			loss, err := trainEpoch(ctx, o, d, tr, epoch, log)
			if err != nil {
				return err
			}
			trainSecs := time.Since(t0)
			trainTime += trainSecs
			er := epochReport{Epoch: epoch, TrainLoss: loss, SamplesPS: float64(d.nTrain) / trainSecs.Seconds()}
			score, err := d.score(c, &er)
			if err != nil {
				return err
			}
			er.Seconds = time.Since(t0).Seconds()
			rep.History = append(rep.History, er)
			mark := ""
			if score > bestScore {
				bestScore, mark = score, "  [best: saved]"
				rep.BestEpoch = epoch
				rep.TestAccuracy, rep.TestAccuracyDerendered, rep.TestAccuracyDerenderedSmall = er.Test.Plain, er.Test.Derendered, er.Test.Small
				if err := c.Save(o.Out, weightsMetadata(o, er)); err != nil {
					return err
				}
			}
			fmt.Fprintf(log, "epoch %d/%d: loss %.4f | test %.2f%%, de-rendered %.2f%% (small scenes %.2f%%) | val %.2f%% / %.2f%% | %.0f s, %.0f img/s%s\n",
				epoch, o.Epochs, er.TrainLoss, 100*er.Test.Plain, 100*er.Test.Derendered, 100*er.Test.Small,
				100*er.Val.Plain, 100*er.Val.Derendered, er.Seconds, er.SamplesPS, mark)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep.WallSeconds = time.Since(start).Seconds()
	rep.TrainSamplesPerSecond = float64(d.nTrain*o.Epochs) / trainTime.Seconds()
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	if st, err := os.Stat(o.Out); err == nil {
		rep.FileBytes = st.Size()
	}
	metrics := strings.TrimSuffix(o.Out, ".safetensors") + ".json"
	if err := writeJSONAtomic(metrics, rep); err != nil {
		return err
	}
	fmt.Fprintf(log, "evaluator: best epoch %d: test accuracy %.2f%%, de-rendered %.2f%%; %s (%.1f MB) and %s written in %.0f s\n",
		rep.BestEpoch, 100*rep.TestAccuracy, 100*rep.TestAccuracyDerendered, o.Out, float64(rep.FileBytes)/1e6, metrics, rep.WallSeconds)
	return nil
}

// evaluatorData are the training items and the sets each epoch is scored on.
type evaluatorData struct {
	train     *dataset.Set
	nTrain    int
	testItems int
	test, val *evalSet // val nil without held-out items
}

func loadEvaluatorData(o EvaluatorConfig) (*evaluatorData, error) {
	train, err := dataset.Load(o.Data, dataset.Train)
	if err != nil {
		return nil, fmt.Errorf("the data directory: %w", err)
	}
	test, err := dataset.Load(o.Data, dataset.Test)
	if err != nil {
		return nil, fmt.Errorf("the data directory: %w", err)
	}
	// The training split comes shuffled, so its last Val items are a fair held-out set.
	d := &evaluatorData{train: train, nTrain: train.Len() - o.Val, testItems: test.Len()}
	if o.TrainItems > 0 {
		d.nTrain = min(d.nTrain, o.TrainItems)
	}
	if d.test, err = newEvalSet(test.Pixels, labelsOf(test, 0, test.Len())); err != nil {
		return nil, err
	}
	if o.Val > 0 {
		if d.val, err = newEvalSet(train.Pixels[(train.Len()-o.Val)*scene.ItemPixels:], labelsOf(train, train.Len()-o.Val, train.Len())); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// score fills er's test (and validation) accuracy and returns the score that selects the best epoch:
// validation's when there is a held-out set, else the test set's.
func (d *evaluatorData) score(c *model.Classifier, er *epochReport) (float64, error) {
	var err error
	if er.Test, err = d.test.score(c); err != nil {
		return 0, err
	}
	if d.val == nil {
		return (er.Test.Plain + er.Test.Derendered) / 2, nil
	}
	if er.Val, err = d.val.score(c); err != nil {
		return 0, err
	}
	return (er.Val.Plain + er.Val.Derendered) / 2, nil
}

// trainEpoch runs one epoch with a progress bar and returns its mean loss.
func trainEpoch(ctx context.Context, o EvaluatorConfig, d *evaluatorData, tr *model.ClassifierTrainer, epoch int, log io.Writer) (float64, error) {
	stepsPerEpoch := (d.nTrain + o.Batch - 1) / o.Batch
	totalSteps := o.Epochs * stepsPerEpoch
	// Ends the batch producer when the epoch stops early for any reason.
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	batches := make(chan batch, 2)
	go produceBatches(pctx, d.train, d.nTrain, o, epoch, batches)
	bar := newEpochBar(log, d.nTrain, epoch, o.Epochs)
	var lossSum float64
	ema := math.NaN()
	for b := range batches { // the producer stops early when ctx ends
		step := (epoch-1)*stepsPerEpoch + b.index
		tr.SetLR(Schedule{LR: o.LR, MinLRFrac: o.MinLRFrac, Steps: totalSteps - 1}.At(step))
		loss, err := tr.Step(b.pixels, b.labels)
		if err != nil {
			return 0, fmt.Errorf("epoch %d step %d: %w", epoch, b.index, err)
		}
		lossSum += loss * float64(len(b.labels))
		if math.IsNaN(ema) {
			ema = loss
		}
		ema = 0.98*ema + 0.02*loss
		bar.Describe(fmt.Sprintf("epoch %d/%d loss %.4f", epoch, o.Epochs, ema))
		_ = bar.Add(len(b.labels))
	}
	_ = bar.Finish()
	fmt.Fprintln(log)
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("training interrupted in epoch %d: %w", epoch, err)
	}
	return lossSum / float64(d.nTrain), nil
}

func labelsOf(s *dataset.Set, from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, s.Label(i))
	}
	return out
}

func newEpochBar(w io.Writer, n, epoch, epochs int) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("epoch %d/%d", epoch, epochs)),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(500*time.Millisecond),
	)
}

func weightsMetadata(o EvaluatorConfig, er epochReport) map[string]string {
	m, _ := json.Marshal(er)
	t, _ := json.Marshal(o)
	return map[string]string{
		"cachet.metrics":  string(m),
		"cachet.training": string(t),
		"cachet.data":     "Fashion-MNIST (Debian dataset-fashion-mnist)",
	}
}

// batch is one augmented training batch; index is its position in the epoch.
type batch struct {
	index  int
	pixels []uint8
	labels []int
}

// produceBatches shuffles the first n training items and augments them on a goroutine of its own, so the
// (cheap, pure-Go) augmentation overlaps libtorch's compute. Its random stream is (seed, epoch): the same
// flags give the same batches.
func produceBatches(ctx context.Context, s *dataset.Set, n int, o EvaluatorConfig, epoch int, out chan<- batch) {
	defer close(out)
	rng := rand.New(rand.NewPCG(o.Seed, uint64(epoch)))
	order := rng.Perm(n)
	for k, i0 := 0, 0; i0 < n; k, i0 = k+1, i0+o.Batch {
		idx := order[i0:min(n, i0+o.Batch)]
		b := batch{index: k, pixels: make([]uint8, len(idx)*scene.ItemPixels), labels: make([]int, len(idx))}
		for j, i := range idx {
			b.labels[j] = s.Label(i)
			augment(rng, s.Image(i), b.labels[j], o, (*[scene.ItemPixels]uint8)(b.pixels[j*scene.ItemPixels:]))
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
	}
}

// augment writes item, possibly transformed, into dst: the Render→Derender round trip under a random
// scene (with probability o.DerenderP: a small scene blurs the item as on generated ones), a mirror
// (50 %, when o.Flip) and a shift of up to o.Shift pixels each way, filled with background.
func augment(rng *rand.Rand, item *[scene.ItemPixels]uint8, label int, o EvaluatorConfig, dst *[scene.ItemPixels]uint8) {
	*dst = *item
	if rng.Float64() < o.DerenderP {
		// Render cannot fail for a RandomScene of a real label; keep the plain item if it ever does.
		if back, err := roundTrip(item, scene.RandomScene(rng, label)); err == nil {
			*dst = back
		}
	}
	const side = scene.ItemSide
	if o.Flip && rng.IntN(2) == 0 {
		for y := range side {
			row := dst[y*side : (y+1)*side]
			for x := range side / 2 {
				row[x], row[side-1-x] = row[side-1-x], row[x]
			}
		}
	}
	if o.Shift > 0 {
		dx, dy := rng.IntN(2*o.Shift+1)-o.Shift, rng.IntN(2*o.Shift+1)-o.Shift
		if dx != 0 || dy != 0 {
			src := *dst
			*dst = [scene.ItemPixels]uint8{}
			for y := max(0, dy); y < min(side, side+dy); y++ {
				for x := max(0, dx); x < min(side, side+dx); x++ {
					dst[y*side+x] = src[(y-dy)*side+x-dx]
				}
			}
		}
	}
}

// writeJSONAtomic writes v as indented JSON through a temporary file, so a reader never sees half a file.
func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(data, '\n'))
}
