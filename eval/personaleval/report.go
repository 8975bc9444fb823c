package personaleval

import (
	"encoding/json"
	"fmt"
	"image"
	"math"

	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/eval/baseeval"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// The targets.
const (
	GapTarget       = 0.70 // share of the no-reference → oracle identity gap the adapters close
	AlignmentTarget = 0.90 // adapted prompt alignment relative to the base model's
	OverheadTarget  = 0.25 // adapted generation time over plain, minus one
	ExtractTargetMs = 1000 // per reference
)

// Report is everything one evaluation found; report.json is its JSON encoding.
type Report struct {
	Config      RunConfig `json:"config"`
	Adapted     Identity  `json:"identity_adapted"`
	NoReference Identity  `json:"identity_no_reference"` // the base model, same prompt, no reference
	Oracle      Identity  `json:"identity_oracle"`       // the reference item rendered as the prompt says
	// GapClosed is (adapted − no reference) / (oracle − no reference) per identity metric.
	GapClosedCosine Num `json:"gap_closed_cosine"`
	GapClosedSSIM   Num `json:"gap_closed_ssim"`
	// ByScene is identity per scene kind (large, small, mirrored, …).
	ByScene []SceneIdentity `json:"identity_by_scene"`
	// Prompt alignment (eval base's metrics) of the adapted and plain generations and of the oracle.
	AlignAdapted baseeval.Metrics `json:"alignment_adapted"`
	AlignBase    baseeval.Metrics `json:"alignment_base"`
	AlignOracle  baseeval.Metrics `json:"alignment_oracle"`
	// AlignRatio is adapted / base accuracy for class, size, position, inversion and all together.
	AlignRatio map[string]Num `json:"alignment_ratio"`

	AdapterParams int64   `json:"adapter_params"`
	BaseParams    int64   `json:"base_params"`
	Extraction    Latency `json:"extraction"`
	// CacheBytesPerSubject is the encoded (fp16 safetensors) cache of one reference with every block;
	// DecodedBytesPerSubject its size in memory (fp32).
	CacheBytesPerSubject   float64 `json:"cache_bytes_per_subject"`
	DecodedBytesPerSubject float64 `json:"decoded_bytes_per_subject"`
	// Generation of the same requests with and without the adapters, interleaved.
	AdaptedSeconds float64 `json:"adapted_seconds"`
	PlainSeconds   float64 `json:"plain_seconds"`
	Overhead       float64 `json:"overhead"` // adapted / plain − 1
	Targets        Targets `json:"targets"`
	Seconds        float64 `json:"seconds"`
}

// RunConfig records what was evaluated and how.
type RunConfig struct {
	Weights       string              `json:"weights"`
	BaseID        string              `json:"base_id"`
	Model         string              `json:"model"`
	Adapters      string              `json:"adapters"`
	AdapterConfig model.AdapterConfig `json:"adapter_config"`
	TRef          float64             `json:"t_ref"`
	RefViews      int                 `json:"ref_views"` // views of each reference in its cache (1: as given; 2: also small)
	Evaluator     string              `json:"evaluator"`
	Data          string              `json:"data"`
	Subjects      int                 `json:"subjects"`
	Prompts       int                 `json:"prompts_per_subject"`
	Seed          uint64              `json:"seed"`
	Steps         int                 `json:"steps"`
	Guidance      float64             `json:"guidance"`
	CleanRenorm   float64             `json:"clean_renorm"`
	// ReferenceGuidance: "joint" (guidance scales subject and prompt), "prompt" (the subject enters once) or
	// "subject" (the prompt enters once).
	ReferenceGuidance string `json:"reference_guidance"`
	Batch             int    `json:"batch"`
	N                 int    `json:"n"`
	TorchThreads      int    `json:"torch_threads"`
}

// Latency summarises per-reference extraction times.
type Latency struct {
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
	MaxMs    float64 `json:"max_ms"`
	N        int     `json:"n"`
}

// Targets says which of the targets the run meets.
type Targets struct {
	IdentityGap bool `json:"identity_gap_met"` // both identity metrics close ≥ GapTarget
	Alignment   bool `json:"alignment_met"`    // every alignment ratio ≥ AlignmentTarget
	Overhead    bool `json:"overhead_met"`
	Extraction  bool `json:"extraction_met"`
	AdapterSize bool `json:"adapter_size_met"` // ≤ 10 % of the base's parameters
}

// finish derives the gap, ratios, overhead and targets from the measured fields.
func (r *Report) finish() {
	r.GapClosedCosine = Num(GapClosed(r.Adapted.Cosine, r.NoReference.Cosine, r.Oracle.Cosine))
	r.GapClosedSSIM = Num(GapClosed(r.Adapted.SSIM, r.NoReference.SSIM, r.Oracle.SSIM))
	a, b := r.AlignAdapted, r.AlignBase
	r.AlignRatio = map[string]Num{}
	ratio := func(x, y eval.CounterEntry) Num {
		if y.Total == 0 || y.Accuracy == 0 {
			return Num(math.NaN())
		}
		return Num(x.Accuracy / y.Accuracy)
	}
	r.AlignRatio["class"] = ratio(a.Class, b.Class)
	r.AlignRatio["size"] = ratio(a.Size, b.Size)
	r.AlignRatio["position"] = ratio(a.Position, b.Position)
	r.AlignRatio["inversion"] = ratio(a.Inversion, b.Inversion)
	r.AlignRatio["all"] = ratio(a.All, b.All)
	if r.PlainSeconds > 0 {
		r.Overhead = r.AdaptedSeconds/r.PlainSeconds - 1
	}
	r.Targets.IdentityGap = r.GapClosedCosine >= GapTarget && r.GapClosedSSIM >= GapTarget
	r.Targets.Alignment = true
	for _, v := range r.AlignRatio {
		if !(v >= AlignmentTarget) && !math.IsNaN(float64(v)) {
			r.Targets.Alignment = false
		}
	}
	r.Targets.Overhead = r.PlainSeconds > 0 && r.Overhead <= OverheadTarget
	r.Targets.Extraction = r.Extraction.N > 0 && r.Extraction.MedianMs < ExtractTargetMs
	r.Targets.AdapterSize = r.BaseParams > 0 && float64(r.AdapterParams) <= 0.10*float64(r.BaseParams)
}

// form names an adapter config's output projection.
func form(c model.AdapterConfig) string {
	if c.Additive {
		return "additive"
	}
	return "concat"
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// Num is a number that may be undefined (a ratio over nothing): NaN, written as JSON null.
type Num float64

// MarshalJSON writes NaN as null.
func (n Num) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(n)) || math.IsInf(float64(n), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(n))
}

// UnmarshalJSON reads null as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	return json.Unmarshal(b, (*float64)(n))
}

func f3[T ~float64](x T) string {
	v := float64(x)
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.3f", v)
}

func pct(e eval.CounterEntry) string {
	if e.Total == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f %%", 100*e.Accuracy)
}

// Tables are the report's markdown tables.
func (r *Report) Tables() []eval.Table {
	c := r.Config
	id := eval.Table{
		Title:   fmt.Sprintf("cachet eval personalization: %d unseen subjects × %d prompts = %d images, %d steps, guidance %g", c.Subjects, c.Prompts, c.N, c.Steps, c.Guidance) + cleanRenormNote(c.CleanRenorm) + referenceGuidanceNote(c.ReferenceGuidance),
		Columns: []string{"identity (to the reference item)", "no reference", "adapted", "oracle", "gap closed", "target"},
		Rows: [][]string{
			{"evaluator-feature cosine", f3(r.NoReference.Cosine), f3(r.Adapted.Cosine), f3(r.Oracle.Cosine), f3(r.GapClosedCosine), fmt.Sprintf("≥ %.0f %%: %s", 100*GapTarget, met(r.GapClosedCosine >= GapTarget))},
			{"SSIM of the de-rendered item", f3(r.NoReference.SSIM), f3(r.Adapted.SSIM), f3(r.Oracle.SSIM), f3(r.GapClosedSSIM), fmt.Sprintf("≥ %.0f %%: %s", 100*GapTarget, met(r.GapClosedSSIM >= GapTarget))},
		},
	}
	a, b, o := r.AlignAdapted, r.AlignBase, r.AlignOracle
	align := eval.Table{
		Title:   "Prompt alignment",
		Columns: []string{"metric", "base (no reference)", "adapted", "adapted / base", "oracle"},
	}
	for _, m := range []struct {
		name string
		key  string
		a, b eval.CounterEntry
		o    eval.CounterEntry
	}{
		{"class (evaluator)", "class", a.Class, b.Class, o.Class},
		{"size", "size", a.Size, b.Size, o.Size},
		{"position (small items)", "position", a.Position, b.Position, o.Position},
		{"inversion", "inversion", a.Inversion, b.Inversion, o.Inversion},
		{"all of them", "all", a.All, b.All, o.All},
	} {
		align.Rows = append(align.Rows, []string{m.name, pct(m.b), pct(m.a), f3(r.AlignRatio[m.key]), pct(m.o)})
	}
	align.Notes = []string{fmt.Sprintf("target: adapted ≥ %.0f %% of the base on each: %s", 100*AlignmentTarget, met(r.Targets.Alignment))}
	cost := eval.Table{
		Title:   "Cost",
		Columns: []string{"measure", "value", "target"},
		Rows: [][]string{
			{"adapter parameters", fmt.Sprintf("%d (%.1f %% of the base's %d)", r.AdapterParams, 100*float64(r.AdapterParams)/float64(max(1, r.BaseParams)), r.BaseParams), "≤ 10 %: " + met(r.Targets.AdapterSize)},
			{"extraction per reference", fmt.Sprintf("median %.1f ms, p90 %.1f ms, max %.1f ms (n = %d)", r.Extraction.MedianMs, r.Extraction.P90Ms, r.Extraction.MaxMs, r.Extraction.N), "< 1 s: " + met(r.Targets.Extraction)},
			{"cache per subject (one reference, every block)", fmt.Sprintf("%.0f KiB fp16 safetensors (%.0f KiB decoded fp32)", r.CacheBytesPerSubject/1024, r.DecodedBytesPerSubject/1024), "—"},
			{"generation with adapters vs plain", fmt.Sprintf("%.1f s vs %.1f s: %+.1f %%", r.AdaptedSeconds, r.PlainSeconds, 100*r.Overhead), fmt.Sprintf("≤ %.0f %%: %s", 100*OverheadTarget, met(r.Targets.Overhead))},
		},
		Notes: []string{
			fmt.Sprintf("base %s (id %s), %s; adapters %s: blocks %v, inner %d, %d heads, %s form, t_ref %g, %d reference view(s)", c.Weights, c.BaseID, c.Model, c.Adapters, c.AdapterConfig.Blocks, c.AdapterConfig.Inner, c.AdapterConfig.Heads, form(c.AdapterConfig), c.TRef, max(1, c.RefViews)),
			fmt.Sprintf("subjects: test-split items (unseen in training), classes in turn, seed %d; reference = the canonical render; prompts = random scenes of the subject's class", c.Seed),
			"identity: the generated image de-rendered under its prompt's scene, against the subject's 28×28 item; the oracle is the item rendered under the scene and de-rendered (small scenes lose detail at 16 px)",
			fmt.Sprintf("timing: the same requests (batches of %d, per-row subjects) with and without the adapters, interleaved, torch threads %d; the run took %.0f s", c.Batch, c.TorchThreads, r.Seconds),
		},
	}
	byScene := eval.Table{
		Title:   "Identity by scene",
		Columns: []string{"scene", "images", "cosine: no reference", "adapted", "oracle", "gap closed", "SSIM: no reference", "adapted", "oracle", "gap closed"},
	}
	for _, s := range r.ByScene {
		byScene.Rows = append(byScene.Rows, []string{s.Kind, fmt.Sprint(s.Adapted.N), f3(s.NoReference.Cosine), f3(s.Adapted.Cosine), f3(s.Oracle.Cosine),
			f3(s.GapClosedCosine), f3(s.NoReference.SSIM), f3(s.Adapted.SSIM), f3(s.Oracle.SSIM), f3(s.GapClosedSSIM)})
	}
	return []eval.Table{id, byScene, align, cost}
}

// Markdown is the report as markdown (what report.md holds).
func (r *Report) Markdown() string { return eval.Markdown(r.Tables()...) }

// File names inside the output directory.
const (
	JSONFile     = eval.JSONFile
	MarkdownFile = eval.MarkdownFile
	GridFile     = "grid.png"
)

// Write writes report.json, report.md and (when grid is not nil) grid.png into dir.
func (r *Report) Write(dir string, grid image.Image) error {
	return eval.WriteReport(dir, r, r.Tables(), GridFile, grid)
}

// GridRows bounds the rows of grid.png.
const GridRows = 20

// Grid shows, one row per image (the first prompt of up to GridRows subjects): the reference, the oracle
// (the reference rendered as the prompt says, labelled with the prompt), the adapted generation and the
// base model's generation without the reference.
func Grid(subjects []Subject, rows []row, adapted, plain, oracle []baseeval.Judgement) *image.RGBA {
	tile := func(img *[scene.CanvasPixels]uint8) []float32 {
		out := make([]float32, len(img))
		for i, v := range img {
			out[i] = float32(v) / 255
		}
		return out
	}
	var tiles [][]float32
	var labels []string
	shown := 0
	for i, r := range rows {
		if r.k != 0 || shown == GridRows || i >= len(adapted) || i >= len(plain) || i >= len(oracle) {
			continue
		}
		shown++
		s := &subjects[r.s]
		tiles = append(tiles, tile(&s.Reference), tile(&oracle[i].Image), tile(&adapted[i].Image), tile(&plain[i].Image))
		labels = append(labels, fmt.Sprintf("reference #%d", s.Index), scene.Format(oracle[i].Scene), "adapted", "no reference")
	}
	if len(tiles) == 0 {
		return nil
	}
	return eval.Grid(tiles, scene.CanvasSide, scene.CanvasSide, 4, labels, 4)
}

// cleanRenormNote names the clean-image renormalisation in the report's title.
func cleanRenormNote(phi float64) string {
	if phi == 0 {
		return ""
	}
	return fmt.Sprintf(", clean renorm %g", phi)
}

// referenceGuidanceNote names a non-default reference guidance in the report's title.
func referenceGuidanceNote(g string) string {
	if g == "" || g == model.GuideReference.String() {
		return ""
	}
	return ", reference guidance " + g
}
