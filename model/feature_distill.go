package model

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// FeatureBatch is one feature-distillation batch: N items upright (Clean) and the same items moved,
// turned, scaled or noised as users' uploads are (Warped), both [N, C, H, W] in model units, prepared
// exactly as the classifier prepares its inputs.
type FeatureBatch struct {
	Clean, Warped []float32
	N             int
}

// FeatureDistiller trains a copy (the student) of a frozen model's extraction stack so that a warped
// item's features match the frozen model's features of the same item upright, while an upright item's
// stay what they were. The features are those of the classifier's extraction pass: the input tokens of
// block Block at model time TRef under the null condition, each token L2-normalised; the loss is one
// minus their mean per-token cosine, over the clean and the warped halves.
type FeatureDistiller struct {
	*Trainer
	Teacher *DiT
	Block   int
	TRef    float64
}

// NewFeatureDistiller prepares AdamW over the student's parameters; the teacher is frozen.
func NewFeatureDistiller(teacher, student *DiT, block int, tRef float64, cfg TrainerConfig) (*FeatureDistiller, error) {
	if teacher.Cfg.String() != student.Cfg.String() || len(teacher.blocks) != len(student.blocks) {
		return nil, fmt.Errorf("model: the student (%s) is not the teacher's architecture (%s)", student.Cfg, teacher.Cfg)
	}
	if block < 1 || block >= len(teacher.blocks) {
		return nil, fmt.Errorf("model: feature block %d outside 1…%d", block, len(teacher.blocks)-1)
	}
	if err := setTrainable(teacher.VS, false); err != nil {
		return nil, err
	}
	tr, err := NewTrainer(student, cfg)
	if err != nil {
		return nil, err
	}
	return &FeatureDistiller{Trainer: tr, Teacher: teacher, Block: block, TRef: tRef}, nil
}

// Step runs one optimizer step on b and returns the batch loss. It must run on a worker with gradients on.
func (d *FeatureDistiller) Step(b FeatureBatch, clip float64) (float64, error) {
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	loss := d.loss(o, b, d.Model)
	if o.err != nil {
		return 0, o.err
	}
	return d.step(loss, clip)
}

// Loss is the loss on b of the weights that ship (the EMA when there is one), without an optimizer step.
func (d *FeatureDistiller) Loss(b FeatureBatch) (float64, error) {
	m := d.Model
	if d.EMA != nil {
		m = d.EMA
	}
	var s Scope
	defer s.Drop()
	o := newOps(&s)
	loss := d.loss(o, b, m)
	if o.err != nil {
		return 0, o.err
	}
	det := o.keep(loss.Detach(false))
	if o.err != nil {
		return 0, o.err
	}
	return det.Float64Value([]int64{})
}

func (d *FeatureDistiller) loss(o *ops, b FeatureBatch, student *DiT) *ts.Tensor {
	per := student.Cfg.Channels * student.Cfg.ImageSize * student.Cfg.ImageSize
	if b.N < 1 || len(b.Clean) != b.N*per || len(b.Warped) != b.N*per {
		o.err = fmt.Errorf("model: a feature batch of %d items needs %d values a side (got %d, %d)", b.N, b.N*per, len(b.Clean), len(b.Warped))
		return nil
	}
	target := d.Teacher.unitTokens(o, b.Clean, b.N, d.Block, d.TRef)
	got := student.unitTokens(o, append(append(make([]float32, 0, 2*len(b.Clean)), b.Clean...), b.Warped...), 2*b.N, d.Block, d.TRef)
	cos := o.sumDim(o.mul(got, o.cat(0, target, target)), 2) // [2N, T]
	return o.addScalar(o.scale(o.meanDim(o.reshape(cos, -1), 0, false), -1), 1)
}

// unitTokens are the input tokens of block `block` for images x [n, C, H, W] at model time tRef under the
// null condition, each token L2-normalised: [n, T, D].
func (m *DiT) unitTokens(o *ops, x []float32, n, block int, tRef float64) *ts.Tensor {
	shape := []int64{int64(n), int64(m.Cfg.Channels), int64(m.Cfg.ImageSize), int64(m.Cfg.ImageSize)}
	xt := o.keep(FromFloat32s(x, shape, m.Device))
	t := make([]float64, n)
	null := make([]bool, n)
	for i := range t {
		t[i], null[i] = tRef, true
	}
	y := m.trainConditions(o, &SampleRequest{Labels: make([]int, n), Prompts: make([]string, n)}, null)
	h := m.runBlocks(o, 0, block, m.patchify(o, xt), m.modulate(o, m.conditionVector(o, t, y)), nil)
	norm := o.sqrt(o.clampMin(o.unsqueeze(o.sumDim(o.mul(h, h), 2), 2), 1e-12))
	return o.div(h, norm)
}
