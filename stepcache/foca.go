package stepcache

import "github.com/cachetlab/cachet/model"

// foca is FoCa's forecast-then-calibrate predictor for one unit (no official code was published; this
// follows the paper's Heun-style form). It keeps the last two full anchors and a rolling window of the last
// two values, computed or predicted. k steps past the last full step
//
//	F̂ = F_full + λ(k)·(k/2)·(s_anchor + s_recent)
//
// where s_anchor = (F_full − F_full_prev)/gap is the per-step slope between the anchors (step distances are
// step indices, as in the reference codes) and s_recent the latest slope of the window (its two values over
// their step distance) — the trapezoid of the slope at the start and at the end of the jump. Plain reuses
// before the second anchor stay out of the window, so they cannot fake a zero slope. Beyond the horizon H the forecast is
// damped toward the anchor: λ(k) = 1 for k ≤ H, H/k beyond (the displacement stops growing).
type foca struct {
	horizon  int
	anchor   *model.Feature // F_full
	prev     *model.Feature // F_full_prev
	gap      int            // steps between the two anchors
	lastFull int
	window   [2]*model.Feature // window[1] the most recent value, window[0] the one before
	at       [2]int            // the steps of the window's values
}

func (f *foca) push(step int, v *model.Feature) error {
	c, err := v.Clone()
	if err != nil {
		return err
	}
	if f.window[0] != nil {
		f.window[0].Drop()
	}
	f.window[0], f.window[1] = f.window[1], c
	f.at[0], f.at[1] = f.at[1], step
	return nil
}

func (f *foca) full(step int, v *model.Feature) error {
	if err := f.push(step, v); err != nil {
		v.Drop()
		return err
	}
	if f.prev != nil {
		f.prev.Drop()
	}
	f.prev, f.anchor = f.anchor, v
	if f.prev != nil {
		f.gap = step - f.lastFull
	}
	f.lastFull = step
	return nil
}

func (f *foca) predict(step int) (*model.Feature, bool, error) {
	if f.prev == nil || f.window[0] == nil {
		// One anchor only: nothing to take a slope from, so reuse it (counted as a reuse).
		c, err := f.anchor.Clone()
		return c, true, err
	}
	k := float64(step - f.lastFull)
	damp := 1.0
	if h := float64(f.horizon); k > h {
		damp = h / k
	}
	c := damp * k / 2
	g, w := float64(f.gap), float64(f.at[1]-f.at[0])
	// F_full + c·((F_full − F_prev)/g + (W1 − W0)/w)
	out, err := model.Combine([]float64{1 + c/g, -c / g, c / w, -c / w},
		[]*model.Feature{f.anchor, f.prev, f.window[1], f.window[0]})
	if err != nil {
		return nil, false, err
	}
	if err := f.push(step, out); err != nil {
		out.Drop()
		return nil, false, err
	}
	return out, false, nil
}

func (f *foca) bytes() int64 {
	var n int64
	for _, x := range []*model.Feature{f.anchor, f.prev, f.window[0], f.window[1]} {
		if x != nil {
			n += x.Bytes()
		}
	}
	return n
}

func (f *foca) drop() {
	for _, x := range []**model.Feature{&f.anchor, &f.prev, &f.window[0], &f.window[1]} {
		if *x != nil {
			(*x).Drop()
			*x = nil
		}
	}
}

func init() {
	register("foca", spec{
		help: "FoCa: forecast-then-calibrate (Heun-style) predictions of attention and MLP outputs between full steps",
		params: map[string]param{
			"interval": {def: 4, min: 1, max: 50, integer: true, help: "steps between full computations (N)"},
			"warmup":   {def: 2, min: 0, max: 50, integer: true, help: "first steps always computed"},
			"horizon":  {def: 3, min: 1, max: 50, integer: true, help: "steps past an anchor before forecasts are damped"},
		},
		build: func(p map[string]float64, _ int) Policy {
			n, w, h := int(p["interval"]), int(p["warmup"]), int(p["horizon"])
			return &sublayerPolicy{ledger: ledger{name: "foca"},
				isFull: func(s int) bool { return s < w || (s-w)%n == 0 },
				newF:   func(unitKey) forecaster { return &foca{horizon: h} }}
		},
	})
}
