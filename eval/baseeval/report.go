package baseeval

import (
	"fmt"
	"image"
	"strings"

	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// The quality bars of the default model (at 50 steps).
const (
	ClassBar     = 0.85 // evaluator class accuracy on de-rendered generations
	AttributeBar = 0.95 // size, position and inversion accuracy each
)

// Report is everything one evaluation found; report.json is its JSON encoding.
type Report struct {
	Config    RunConfig `json:"config"`
	Generated Metrics   `json:"generated"`
	Real      Metrics   `json:"real"` // real test-split items under the same scenes: the ceiling
	Frechet   Frechet   `json:"frechet"`
	Bars      Bars      `json:"bars"`
	// MirrorClasses name the classes mirrored accuracy is scored on.
	MirrorClasses []string `json:"mirror_classes"`
	Seconds       float64  `json:"seconds"` // wall time of the whole run
	// SampleSeconds is the generation time alone; ImagesPerSecond is N / SampleSeconds.
	SampleSeconds   float64 `json:"sample_seconds"`
	ImagesPerSecond float64 `json:"images_per_second"`
}

// RunConfig records what was evaluated and how.
type RunConfig struct {
	Weights         string  `json:"weights"`
	WeightsSHA256   string  `json:"weights_sha256"`
	Model           string  `json:"model"`
	Evaluator       string  `json:"evaluator"`
	EvaluatorSHA256 string  `json:"evaluator_sha256"`
	Data            string  `json:"data"`
	Steps           int     `json:"steps"`
	Guidance        float64 `json:"guidance"`
	GuidanceRescale float64 `json:"guidance_rescale"` // 0: off
	// CleanRenorm is the share of the guided clean image moved to the conditional one's mean and spread.
	CleanRenorm float64 `json:"clean_renorm,omitempty"`
	// GuidanceInterval is [lo, hi] of sampler time t (1 = noise) where guidance applies; absent: every step.
	GuidanceInterval []float64 `json:"guidance_interval,omitempty"`
	TimeShift        float64   `json:"time_shift,omitempty"` // the sampler's time shift; absent: even spacing
	// GuidanceProjection is the share of the guidance's parallel component removed (APG); absent: plain CFG.
	GuidanceProjection float64 `json:"guidance_projection,omitempty"`
	Guide              string  `json:"guide,omitempty"` // autoguidance's weaker model; absent: none
	GuideScale         float64 `json:"guide_scale,omitempty"`
	// ClassContrast is the guidance against each prompt less its class word; absent: none.
	ClassContrast float64 `json:"class_contrast,omitempty"`
	Stochasticity float64 `json:"stochasticity,omitempty"` // the sampler's re-noising share; absent: deterministic
	// StochasticInterval is [lo, hi] of sampler time t where it re-noises; absent: every step.
	StochasticInterval []float64 `json:"stochastic_interval,omitempty"`
	// OptimizedScale and ZeroInitSteps are CFG-Zero*'s parts; absent: off.
	OptimizedScale bool `json:"optimized_scale,omitempty"`
	ZeroInitSteps  int  `json:"zero_init_steps,omitempty"`
	// PerturbedGuidance is perturbed-attention guidance's scale over PerturbedBlocks; absent: off.
	PerturbedGuidance float64 `json:"perturbed_guidance,omitempty"`
	PerturbedBlocks   []int   `json:"perturbed_blocks,omitempty"`
	// DetailStrength and DetailSettle are the small items' full-size redraw and its settling; absent: off.
	DetailStrength float64 `json:"detail_strength,omitempty"`
	DetailSettle   float64 `json:"detail_settle,omitempty"`
	// Cache is the sampler's step-cache policy; absent: none.
	Cache        string   `json:"cache,omitempty"`
	Classes      []string `json:"classes,omitempty"` // only these classes' prompts; absent: all
	Seeds        int      `json:"seeds"`             // images per prompt
	FirstSeed    int64    `json:"first_seed"`        // seeds FirstSeed … FirstSeed+Seeds−1
	Prompts      int      `json:"prompts"`
	Limit        int      `json:"limit"` // 0: the full prompt set
	Batch        int      `json:"batch"`
	N            int      `json:"n"` // images generated (prompts × seeds)
	TorchThreads int      `json:"torch_threads"`
}

// Frechet holds the Fréchet distances between the evaluator's 256-d features of de-rendered items. With
// N below a few thousand they are biased upwards (more so the smaller N): compare numbers of one N only.
// A distance is null when it could not be computed (fewer than 2 items).
type Frechet struct {
	GeneratedVsReal *float64 `json:"generated_vs_real"`
	RealVsReal      *float64 `json:"real_vs_real"` // the ceiling set against an independent second real set
	N               int      `json:"n"`            // items per set
	Dims            int      `json:"dims"`
	Error           string   `json:"error,omitempty"`
}

// Bars are the quality bars the report is judged against, and whether the generated images meet them.
type Bars struct {
	Class        float64 `json:"class"`
	Attribute    float64 `json:"size_position_inversion"`
	ClassMet     bool    `json:"class_met"`
	SizeMet      bool    `json:"size_met"`
	PositionMet  bool    `json:"position_met"`
	InversionMet bool    `json:"inversion_met"`
}

func judgeBars(g Metrics) Bars {
	return Bars{Class: ClassBar, Attribute: AttributeBar,
		ClassMet: g.Class.Accuracy >= ClassBar, SizeMet: g.Size.Accuracy >= AttributeBar,
		PositionMet: g.Position.Total == 0 || g.Position.Accuracy >= AttributeBar, InversionMet: g.Inversion.Accuracy >= AttributeBar}
}

// NewReport assembles a report from the two sets' metrics and the Fréchet distances.
func NewReport(cfg RunConfig, gen, real Metrics, fd Frechet) *Report {
	r := &Report{Config: cfg, Generated: gen, Real: real, Frechet: fd, Bars: judgeBars(gen)}
	for _, c := range MirrorClasses {
		r.MirrorClasses = append(r.MirrorClasses, scene.ClassNames[c])
	}
	return r
}

func pct(e eval.CounterEntry) string {
	if e.Total == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f %% (%d/%d)", 100*e.Accuracy, e.Correct, e.Total)
}

func bar(e eval.CounterEntry, min float64) string {
	b := fmt.Sprintf("≥ %.0f %%", 100*min)
	switch {
	case e.Total == 0:
		return b
	case e.Accuracy >= min:
		return b + ": met"
	}
	return b + ": **not met**"
}

func fdCell(v *float64, what string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f (%s)", *v, what)
}

// Tables are the report's markdown tables: the metrics against the bars, then per-class accuracies.
func (r *Report) Tables() []eval.Table {
	g, re := r.Generated, r.Real
	c := r.Config
	main := eval.Table{
		Title:   fmt.Sprintf("cachet eval base: %s, %d steps, %s, %d prompts × %d seeds = %d images", c.Weights, c.Steps, c.samplerText(), c.Prompts, c.Seeds, c.N),
		Columns: []string{"metric", "generated", "real ceiling", "bar"},
		Rows: [][]string{
			{"class accuracy (evaluator on the de-rendered item)", pct(g.Class), pct(re.Class), bar(g.Class, ClassBar)},
			{"… of large items", pct(g.ClassLarge), pct(re.ClassLarge), "—"},
			{"… of small items", pct(g.ClassSmall), pct(re.ClassSmall), "—"},
			{"size accuracy", pct(g.Size), pct(re.Size), bar(g.Size, AttributeBar)},
			{"position accuracy (small items)", pct(g.Position), pct(re.Position), bar(g.Position, AttributeBar)},
			{"inversion accuracy", pct(g.Inversion), pct(re.Inversion), bar(g.Inversion, AttributeBar)},
			{"mirrored accuracy (" + strings.Join(r.MirrorClasses, ", ") + ")", pct(g.Mirror), pct(re.Mirror), "— (real: the detector's ceiling)"},
			{"all of class, size, position, inversion", pct(g.All), pct(re.All), "—"},
			{fmt.Sprintf("item brightness (mean de-rendered pixel above %d)", ForegroundLevel), fmt.Sprintf("%.1f", g.Brightness), fmt.Sprintf("%.1f", re.Brightness), "—"},
			{"empty images (no item found)", fmt.Sprintf("%d/%d", g.Empty, g.N), fmt.Sprintf("%d/%d", re.Empty, re.N), "—"},
			{fmt.Sprintf("Fréchet distance, evaluator features (N = %d per set)", r.Frechet.N),
				fdCell(r.Frechet.GeneratedVsReal, "vs real"), fdCell(r.Frechet.RealVsReal, "real vs real split"), "near the split baseline"},
		},
		Notes: []string{
			fmt.Sprintf("weights %s (sha256 %s), %s", c.Weights, short(c.WeightsSHA256), c.Model),
			fmt.Sprintf("evaluator %s (sha256 %s); data %s", c.Evaluator, short(c.EvaluatorSHA256), c.Data),
			fmt.Sprintf("prompts: every scene of every class (scene.AllScenes)%s; seeds %d…%d; flow-matching Euler, %d steps, %s",
				limitNote(c), c.FirstSeed, c.FirstSeed+int64(c.Seeds)-1, c.Steps, c.samplerText()),
			"real ceiling: for each prompt × seed a test-split item of the prompt's class (seeded choice) rendered under the prompt's scene, scored the same way",
			"size/position/inversion from image moments (scene.Analyze); an empty image counts wrong for everything",
			"mirrored: orientation of the de-rendered item before un-mirroring, by normalised correlation with the class's mean training image and its mirror",
			fmt.Sprintf("Fréchet distance is biased upwards at small N: compare only runs with the same N (%d); the split baseline is real vs an independent real set", r.Frechet.N),
		},
	}
	if r.SampleSeconds > 0 {
		main.Notes = append(main.Notes, fmt.Sprintf("generation: %.1f s, %.2f images/s (torch threads %d)", r.SampleSeconds, r.ImagesPerSecond, c.TorchThreads))
	}
	if r.Frechet.Error != "" {
		main.Notes = append(main.Notes, "Fréchet distance: "+r.Frechet.Error)
	}
	per := eval.Table{
		Title:   "Per class",
		Columns: []string{"class", "class acc. generated", "large · small", "class acc. real", "large · small", "mirrored generated", "mirrored real"},
	}
	realBy := map[string]ClassMetrics{}
	for _, cm := range re.PerClass {
		realBy[cm.Name] = cm
	}
	for _, cm := range g.PerClass {
		rc := realBy[cm.Name]
		row := []string{cm.Name, pct(cm.Class), sizeSplit(cm), pct(rc.Class), sizeSplit(rc), "—", "—"}
		if cm.Mirror != nil {
			row[5] = pct(*cm.Mirror)
			if rm := rc.Mirror; rm != nil {
				row[6] = pct(*rm)
			}
		}
		per.Rows = append(per.Rows, row)
	}
	return []eval.Table{main, per}
}

func limitNote(c RunConfig) string {
	s := ""
	if len(c.Classes) > 0 {
		s = fmt.Sprintf(", classes %s only (--classes)", strings.Join(c.Classes, ", "))
	}
	if c.Limit > 0 && c.Prompts == c.Limit {
		s += fmt.Sprintf(", only the first %d (--limit)", c.Prompts)
	}
	return s
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// Markdown is the report as markdown (what report.md holds).
func (r *Report) Markdown() string { return eval.Markdown(r.Tables()...) }

// File names inside the output directory.
const (
	JSONFile     = eval.JSONFile
	MarkdownFile = eval.MarkdownFile
	SamplesFile  = "samples.png"
)

// Write writes report.json, report.md and (when samples is not nil) samples.png into dir, creating it.
func (r *Report) Write(dir string, samples image.Image) error {
	return eval.WriteReport(dir, r, r.Tables(), SamplesFile, samples)
}

// MaxSamples bounds the generated images in samples.png.
const MaxSamples = 40

// SampleGrid lays out up to MaxSamples generated images, each with its prompt under it and its real
// counterpart (the same scene, a real item) to its right, five pairs a row. With more than MaxSamples
// images it picks prompts evenly over the first perSeed images (the first seed), so every class shows.
func SampleGrid(gen, real []Judgement, perSeed int) *image.RGBA {
	n := len(gen)
	if n == 0 {
		return nil
	}
	var pick []int
	if n <= MaxSamples {
		for i := range n {
			pick = append(pick, i)
		}
	} else {
		span := min(n, max(perSeed, MaxSamples))
		for k := range MaxSamples {
			pick = append(pick, k*span/MaxSamples)
		}
	}
	tile := func(img *[scene.CanvasPixels]uint8) []float32 {
		out := make([]float32, scene.CanvasPixels)
		for i, v := range img {
			out[i] = float32(v) / 255
		}
		return out
	}
	var tiles [][]float32
	var labels []string
	for _, i := range pick {
		tiles = append(tiles, tile(&gen[i].Image))
		labels = append(labels, scene.Format(gen[i].Scene))
		if i < len(real) {
			tiles = append(tiles, tile(&real[i].Image))
			labels = append(labels, "(real "+scene.ClassNames[real[i].Scene.Class]+")")
		}
	}
	cols := 10
	if len(real) < len(gen) {
		cols = 8
	}
	return eval.Grid(tiles, scene.CanvasSide, scene.CanvasSide, cols, labels, 4)
}

// sizeSplit is a class's correct counts on large and small items, "4/4 · 3/20".
func sizeSplit(cm ClassMetrics) string {
	return fmt.Sprintf("%d/%d · %d/%d", cm.Large.Correct, cm.Large.Total, cm.Small.Correct, cm.Small.Total)
}

// samplerText names the guidance and sampler settings of a run ("guidance 4", "autoguidance 2 by
// guide.safetensors", "guidance 4, rescale φ 0.7, for t in (0.2, 0.8]").
func (c RunConfig) samplerText() string {
	s := fmt.Sprintf("guidance %g", c.Guidance)
	if c.Guide != "" && c.GuideScale > 1 {
		auto := fmt.Sprintf("autoguidance %g by %s", c.GuideScale, c.Guide)
		if c.Guidance > 1 {
			s += " + " + auto
		} else {
			s = auto
		}
	}
	if c.ClassContrast != 0 {
		s += fmt.Sprintf(", class contrast %g", c.ClassContrast)
	}
	if c.OptimizedScale {
		s += ", optimized scale"
	}
	if c.ZeroInitSteps != 0 {
		s += fmt.Sprintf(", %d zero-init steps", c.ZeroInitSteps)
	}
	if c.PerturbedGuidance != 0 {
		s += fmt.Sprintf(", perturbed-attention guidance %g on blocks %v", c.PerturbedGuidance, c.PerturbedBlocks)
	}
	if c.Cache != "" {
		s += ", step cache " + c.Cache
	}
	if c.DetailStrength > 0 {
		s += fmt.Sprintf(", small items redrawn at full size from t = %g", c.DetailStrength)
		if c.DetailSettle > 0 {
			s += fmt.Sprintf(" and the scene settled from t = %g", c.DetailSettle)
		}
	}
	if c.Stochasticity != 0 {
		s += fmt.Sprintf(", stochasticity %g", c.Stochasticity)
		if len(c.StochasticInterval) == 2 {
			s += fmt.Sprintf(" for t in (%g, %g]", c.StochasticInterval[0], c.StochasticInterval[1])
		}
	}
	if c.GuidanceRescale != 0 {
		s += fmt.Sprintf(", rescale φ %g", c.GuidanceRescale)
	}
	if c.CleanRenorm != 0 {
		s += fmt.Sprintf(", clean-image renormalisation φ %g", c.CleanRenorm)
	}
	if c.GuidanceProjection != 0 {
		s += fmt.Sprintf(", parallel part −%g (APG)", c.GuidanceProjection)
	}
	if iv := c.interval(); iv != (model.Interval{}) {
		s += fmt.Sprintf(", for t in (%g, %g]", iv.Lo, iv.Hi)
	}
	if c.TimeShift != 0 && c.TimeShift != 1 {
		s += fmt.Sprintf(", time shift %g", c.TimeShift)
	}
	return s
}

// intervalField is the report's form of a guidance interval: absent for the zero value (every step).
func intervalField(iv model.Interval) []float64 {
	if iv == (model.Interval{}) {
		return nil
	}
	return []float64{iv.Lo, iv.Hi}
}

// interval reads the recorded guidance interval back.
func (c RunConfig) interval() model.Interval {
	if len(c.GuidanceInterval) != 2 {
		return model.Interval{}
	}
	return model.Interval{Lo: c.GuidanceInterval[0], Hi: c.GuidanceInterval[1]}
}
