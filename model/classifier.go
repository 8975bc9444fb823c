package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// The evaluator classifier's geometry: Fashion-MNIST items in, Fashion-MNIST classes out.
const (
	ClassifierSide     = 28
	ClassifierPixels   = ClassifierSide * ClassifierSide
	ClassifierClasses  = 10
	ClassifierFeatures = 256 // the penultimate width: Cachet's "FID" / identity feature space

	formatClassifier = "classifier-v1"
	// MetaClassifier holds the architecture as JSON, so a file from a future, different classifier is
	// refused by name rather than by a wall of mis-shaped tensors.
	MetaClassifier = "cachet.classifier"

	// Fashion-MNIST's training-split pixel mean and standard deviation on [0, 1]. Normalising inside the
	// model keeps every caller's input plain bytes.
	pixelMean = 0.2860
	pixelStd  = 0.3530

	defaultInferBatch = 256
)

// classifierArch is what MetaClassifier records; LoadClassifier refuses any other.
type classifierArch struct {
	Input    [3]int `json:"input"`    // C, H, W
	Channels [3]int `json:"channels"` // conv1..conv3 outputs
	Features int    `json:"features"`
	Classes  int    `json:"classes"`
}

var theArch = classifierArch{Input: [3]int{1, ClassifierSide, ClassifierSide}, Channels: [3]int{32, 64, 128},
	Features: ClassifierFeatures, Classes: ClassifierClasses}

// Classifier is the evaluator: a small CNN trained on real Fashion-MNIST that judges generated items
// (after scene.Derender) and whose penultimate activations are the feature space for Fréchet distance
// and identity similarity.
//
//	conv3×3(1→32, pad 1) ReLU → conv3×3(32→64, pad 1) ReLU → maxpool 2 → [64,14,14]
//	conv3×3(64→128, pad 1) ReLU → maxpool 2 → [128,7,7] → flatten
//	fc1 6272→256 ReLU (= Features) → dropout (training only) → fc2 256→10 (logits)
//
// Like DiT, its methods must run on a Worker (one goroutine locked to its OS thread). Inference switches
// gradients off for its own duration, so it is also safe on a training worker.
type Classifier struct {
	VS     *nn.VarStore
	Device gotch.Device
	// Dropout is the drop probability on the features while training (Step); inference never drops.
	Dropout float64

	conv1, conv2, conv3 *conv2d
	fc1, fc2            *Linear
}

// conv2d is a 3×3, stride-1 convolution with "same" padding.
type conv2d struct{ Weight, Bias *ts.Tensor }

// newConv2d uses PyTorch's nn.Conv2d default (kaiming_uniform with a = √5, i.e. U(±1/√fan_in) for the
// weight, and the same bound for the bias); gotch's default would be N(0, 1), which explodes a ReLU stack.
func newConv2d(p *nn.Path, in, out, k int64) (*conv2d, error) {
	bound := 1 / math.Sqrt(float64(in*k*k))
	w, err := p.NewVar("weight", []int64{out, in, k, k}, nn.NewUniformInit(-bound, bound))
	if err != nil {
		return nil, fmt.Errorf("model: %s.weight: %w", p.Paths(), err)
	}
	b, err := p.NewVar("bias", []int64{out}, nn.NewUniformInit(-bound, bound))
	if err != nil {
		return nil, fmt.Errorf("model: %s.bias: %w", p.Paths(), err)
	}
	return &conv2d{Weight: w, Bias: b}, nil
}

// NewClassifier builds a classifier with fresh (PyTorch-default) parameters on device. Seed libtorch first
// (SetSeed) for a reproducible initialisation.
func NewClassifier(device gotch.Device) (*Classifier, error) {
	vs := nn.NewVarStore(device)
	root := vs.Root()
	c := &Classifier{VS: vs, Device: device, Dropout: 0.3}
	fail := func(err error) (*Classifier, error) {
		vs.Destroy()
		return nil, err
	}
	a := theArch
	var err error
	if c.conv1, err = newConv2d(root.Sub("conv1"), int64(a.Input[0]), int64(a.Channels[0]), 3); err != nil {
		return fail(err)
	}
	if c.conv2, err = newConv2d(root.Sub("conv2"), int64(a.Channels[0]), int64(a.Channels[1]), 3); err != nil {
		return fail(err)
	}
	if c.conv3, err = newConv2d(root.Sub("conv3"), int64(a.Channels[1]), int64(a.Channels[2]), 3); err != nil {
		return fail(err)
	}
	flat := int64(a.Channels[2] * (ClassifierSide / 4) * (ClassifierSide / 4))
	if c.fc1, err = newLinear(root.Sub("fc1"), flat, ClassifierFeatures, initTorchDefault); err != nil {
		return fail(err)
	}
	if c.fc2, err = newLinear(root.Sub("fc2"), ClassifierFeatures, ClassifierClasses, initTorchDefault); err != nil {
		return fail(err)
	}
	return c, nil
}

// SetTrainable turns gradient tracking of every parameter on (to train a loaded classifier further) or
// off. gotch's VarStore.Unfreeze cannot be used for this (see setTrainable).
func (c *Classifier) SetTrainable(on bool) error { return setTrainable(c.VS, on) }

// Close frees the classifier's parameters.
func (c *Classifier) Close() { c.VS.Destroy() }

// NumParams counts the parameters.
func (c *Classifier) NumParams() int64 {
	var n int64
	for _, v := range c.VS.Variables() {
		if sz, err := v.Size(); err == nil {
			k := int64(1)
			for _, d := range sz {
				k *= d
			}
			n += k
		}
	}
	return n
}

// input turns n items of bytes into the normalised [n,1,28,28] tensor the network sees.
func (c *Classifier) input(o *ops, pixels []uint8) *ts.Tensor {
	n := len(pixels) / ClassifierPixels
	vals := make([]float32, len(pixels))
	for i, p := range pixels {
		vals[i] = float32((float64(p)/255 - pixelMean) / pixelStd)
	}
	return o.keep(FromFloat32s(vals, []int64{int64(n), 1, ClassifierSide, ClassifierSide}, c.Device))
}

// The three ops below are the classifier's alone; they are free functions so they cannot collide with
// methods added to ops elsewhere.
func clsConv(o *ops, x *ts.Tensor, l *conv2d) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	return o.keep(ts.Conv2d(x, l.Weight, l.Bias, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1))
}

func clsRelu(o *ops, x *ts.Tensor) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	return o.keep(x.Relu(false))
}

func clsMaxPool2(o *ops, x *ts.Tensor) *ts.Tensor {
	if !o.ok(x) {
		return nil
	}
	return o.keep(x.MaxPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, false))
}

// forward returns the features [n,256] (post-ReLU) and the logits [n,10]. train turns dropout on.
func (c *Classifier) forward(o *ops, x *ts.Tensor, train bool) (features, logits *ts.Tensor) {
	h := clsRelu(o, clsConv(o, x, c.conv1))
	h = clsMaxPool2(o, clsRelu(o, clsConv(o, h, c.conv2)))
	h = clsMaxPool2(o, clsRelu(o, clsConv(o, h, c.conv3)))
	if o.ok(h) {
		h = o.keep(h.Flatten(1, -1, false))
	}
	features = clsRelu(o, o.linear(h, c.fc1))
	d := features
	if train && c.Dropout > 0 && o.ok(features) {
		d = o.keep(ts.Dropout(features, c.Dropout, true))
	}
	return features, o.linear(d, c.fc2)
}

func checkPixels(pixels []uint8) (int, error) {
	if len(pixels) == 0 || len(pixels)%ClassifierPixels != 0 {
		return 0, cachet.Errorf(cachet.CodeInvalidArgument,
			"classifier input is %d bytes; want a positive multiple of %d (28×28 items)", len(pixels), ClassifierPixels)
	}
	return len(pixels) / ClassifierPixels, nil
}

// infer runs the network without gradients over pixels in chunks of batch items (≤ 0: a default) and
// hands each chunk's features and logits, copied to Go, to fn with the chunk's first item index.
func (c *Classifier) infer(pixels []uint8, batch int, fn func(start int, features, logits []float32) error) error {
	n, err := checkPixels(pixels)
	if err != nil {
		return err
	}
	if batch <= 0 {
		batch = defaultInferBatch
	}
	prev, err := setGradEnabled(false)
	if err != nil {
		return err
	}
	defer setGradEnabled(prev)
	for start := 0; start < n; start += batch {
		end := min(n, start+batch)
		if err := c.inferChunk(pixels[start*ClassifierPixels:end*ClassifierPixels], start, fn); err != nil {
			return err
		}
	}
	return nil
}

func (c *Classifier) inferChunk(pixels []uint8, start int, fn func(int, []float32, []float32) error) error {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	f, l := c.forward(o, c.input(o, pixels), false)
	if o.err != nil {
		return fmt.Errorf("model: classifier forward: %w", o.err)
	}
	fv, err := Float32s(f)
	if err != nil {
		return err
	}
	lv, err := Float32s(l)
	if err != nil {
		return err
	}
	return fn(start, fv, lv)
}

// Logits returns the class logits of each item in pixels (n×784 bytes, background 0 as Fashion-MNIST
// has it), n rows of ClassifierClasses values, computed batch items at a time (≤ 0: 256).
func (c *Classifier) Logits(pixels []uint8, batch int) ([][]float32, error) {
	n, err := checkPixels(pixels)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, n)
	err = c.infer(pixels, batch, func(start int, _, logits []float32) error {
		for i := 0; i*ClassifierClasses < len(logits); i++ {
			out[start+i] = logits[i*ClassifierClasses : (i+1)*ClassifierClasses : (i+1)*ClassifierClasses]
		}
		return nil
	})
	return out, err
}

// Predict returns each item's most likely class and its class probabilities (softmax of the logits).
func (c *Classifier) Predict(pixels []uint8, batch int) ([]int, [][]float64, error) {
	logits, err := c.Logits(pixels, batch)
	if err != nil {
		return nil, nil, err
	}
	classes := make([]int, len(logits))
	probs := make([][]float64, len(logits))
	for i, row := range logits {
		classes[i], probs[i] = softmaxArgmax(row)
	}
	return classes, probs, nil
}

func softmaxArgmax(row []float32) (int, []float64) {
	best := 0
	for k, v := range row {
		if v > row[best] {
			best = k
		}
	}
	p := make([]float64, len(row))
	sum := 0.0
	for k, v := range row {
		p[k] = math.Exp(float64(v - row[best])) // shifted by the max: no overflow
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
	return best, p
}

// Features returns each item's ClassifierFeatures-dimensional penultimate activations (after the ReLU,
// before dropout and the output layer).
func (c *Classifier) Features(pixels []uint8, batch int) ([][]float64, error) {
	n, err := checkPixels(pixels)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, n)
	err = c.infer(pixels, batch, func(start int, features, _ []float32) error {
		for i := 0; i*ClassifierFeatures < len(features); i++ {
			row := make([]float64, ClassifierFeatures)
			for k, v := range features[i*ClassifierFeatures : (i+1)*ClassifierFeatures] {
				row[k] = float64(v)
			}
			out[start+i] = row
		}
		return nil
	})
	return out, err
}

// Items flattens 28×28 items into the byte layout Logits, Predict and Features take.
func Items(items []*[ClassifierPixels]uint8) []uint8 {
	out := make([]uint8, 0, len(items)*ClassifierPixels)
	for _, it := range items {
		out = append(out, it[:]...)
	}
	return out
}

// ClassifierTrainer fits a Classifier by cross-entropy with AdamW.
type ClassifierTrainer struct {
	C   *Classifier
	opt *nn.Optimizer
}

// NewClassifierTrainer prepares AdamW (β 0.9/0.999) over c's parameters. c must be trainable (fresh
// from NewClassifier, or c.SetTrainable(true) after LoadClassifier): the optimizer takes the parameters
// that track gradients when it is built.
func NewClassifierTrainer(c *Classifier, lr, weightDecay float64) (*ClassifierTrainer, error) {
	opt, err := nn.NewAdamWConfig(0.9, 0.999, weightDecay).Build(c.VS, lr)
	if err != nil {
		return nil, fmt.Errorf("model: optimizer: %w", err)
	}
	return &ClassifierTrainer{C: c, opt: opt}, nil
}

// SetLR sets the learning rate for the next steps (schedules live with the caller).
func (t *ClassifierTrainer) SetLR(lr float64) { t.opt.SetLR(lr) }

// Step runs one forward/backward/AdamW step on a batch (pixels n×784 bytes, labels n classes) and returns
// its mean cross-entropy. Gradients are switched on for the step's duration, whatever the worker's mode.
func (t *ClassifierTrainer) Step(pixels []uint8, labels []int) (float64, error) {
	n, err := checkPixels(pixels)
	if err != nil {
		return 0, err
	}
	if len(labels) != n {
		return 0, cachet.Errorf(cachet.CodeInvalidArgument, "%d labels for %d items", len(labels), n)
	}
	lab := make([]int64, n)
	for i, l := range labels {
		if l < 0 || l >= ClassifierClasses {
			return 0, cachet.Errorf(cachet.CodeInvalidArgument, "label %d of item %d is out of range 0..%d", l, i, ClassifierClasses-1)
		}
		lab[i] = int64(l)
	}
	prev, err := setGradEnabled(true)
	if err != nil {
		return 0, err
	}
	defer setGradEnabled(prev)

	var s Scope
	defer s.Drop()
	o := newOps(&s)
	_, logits := t.C.forward(o, t.C.input(o, pixels), true)
	target := o.keep(ts.NewTensorFromData(lab, []int64{int64(n)}))
	if target != nil && t.C.Device != gotch.CPU {
		target = o.keep(target.To(t.C.Device, false))
	}
	if !o.ok(logits, target) {
		return 0, fmt.Errorf("model: classifier forward: %w", o.err)
	}
	// reduction 1 = mean, ignore_index −100 (PyTorch's default; no label uses it), no label smoothing.
	loss := o.keep(logits.CrossEntropyLoss(target, ts.None, 1, -100, 0, false))
	if o.err != nil {
		return 0, fmt.Errorf("model: cross-entropy: %w", o.err)
	}
	if err := t.opt.ZeroGrad(); err != nil {
		return 0, err
	}
	if err := loss.Backward(); err != nil {
		return 0, fmt.Errorf("model: backward: %w", err)
	}
	if err := t.opt.Step(); err != nil {
		return 0, fmt.Errorf("model: optimizer step: %w", err)
	}
	v, err := loss.Float64Value([]int64{})
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v, fmt.Errorf("model: loss is %v; lower the learning rate", v)
	}
	return v, nil
}

// Save writes the classifier's parameters (fp32) atomically, with format and architecture metadata;
// extra adds metadata (metrics, training settings).
func (c *Classifier) Save(path string, extra map[string]string) error {
	f := safetensors.File{Metadata: map[string]string{}, Tensors: map[string]safetensors.Tensor{}}
	if err := namedTensors(c.VS, "", f.Tensors); err != nil {
		return err
	}
	arch, err := json.Marshal(theArch)
	if err != nil {
		return err
	}
	for k, v := range extra {
		f.Metadata[k] = v
	}
	f.Metadata[MetaFormat] = formatClassifier
	f.Metadata[MetaClassifier] = string(arch)
	return writeSafetensors(path, f)
}

// LoadClassifier reads a classifier weights file strictly (every tensor present, none extra, shapes
// equal). The parameters are left frozen (inference); call c.SetTrainable(true) to train further.
func LoadClassifier(path string, device gotch.Device) (*Classifier, safetensors.File, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, f, cachet.Errorf(cachet.CodeNotFound, "classifier weights %s do not exist; train them with 'cachet train evaluator'", path)
		}
		return nil, f, cachet.Errorf(cachet.CodeInvalidArgument, "classifier weights %s are not a valid safetensors file: %v", path, err)
	}
	if got := f.Metadata[MetaFormat]; got != formatClassifier {
		return nil, f, cachet.Errorf(cachet.CodeInvalidArgument, "weights file %s is not a Cachet classifier (metadata %s = %q, want %q)", path, MetaFormat, got, formatClassifier)
	}
	var arch classifierArch
	if err := json.Unmarshal([]byte(f.Metadata[MetaClassifier]), &arch); err != nil || arch != theArch {
		return nil, f, cachet.Errorf(cachet.CodeInvalidArgument, "classifier weights %s describe a different architecture (%s = %q); this build reads %+v", path, MetaClassifier, f.Metadata[MetaClassifier], theArch)
	}
	c, err := NewClassifier(device)
	if err != nil {
		return nil, f, err
	}
	if err := loadInto(c.VS, f.Tensors, ""); err != nil {
		c.Close()
		return nil, f, fmt.Errorf("classifier weights %s: %w", path, err)
	}
	return c, f, nil
}
