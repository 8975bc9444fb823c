package model

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cachetlab/cachet"
)

// Prediction is what the denoiser's output means.
type Prediction string

const (
	// PredictFlow: rectified-flow velocity v = ε − x0 for x_t = (1−t)·x0 + t·ε (Cachet's own models).
	PredictFlow Prediction = "flow"
	// PredictEpsilon: the added noise ε of a DDPM (original DiT checkpoints; sampled with DDIM).
	PredictEpsilon Prediction = "epsilon"
)

// Conditioning is how prompts reach the adaLN modulation.
type Conditioning string

const (
	// CondText: prompt words → token embeddings → a small transformer encoder → pooled vector.
	CondText Conditioning = "text"
	// CondLabel: one class label per image through an embedding table (original DiT checkpoints).
	CondLabel Conditioning = "label"
)

// Config describes a diffusion transformer. It is stored in the weights file's metadata, so a file
// always says which model it holds.
type Config struct {
	ImageSize  int          `json:"image_size"`  // square, in pixels (or latent cells)
	Channels   int          `json:"channels"`    // input channels
	Patch      int          `json:"patch"`       // patch side
	Width      int          `json:"width"`       // hidden size
	Depth      int          `json:"depth"`       // number of blocks
	Heads      int          `json:"heads"`       // attention heads
	MLPRatio   float64      `json:"mlp_ratio"`   // MLP hidden = Width·MLPRatio
	LearnSigma bool         `json:"learn_sigma"` // output 2·Channels (DiT); the second half is ignored when sampling
	Prediction Prediction   `json:"prediction"`
	Cond       Conditioning `json:"conditioning"`
	// Text conditioning: the fixed vocabulary (no word outside it is accepted), the maximum prompt length
	// in words, and the encoder's size.
	Vocabulary []string `json:"vocabulary,omitempty"`
	MaxWords   int      `json:"max_words,omitempty"`
	TextWidth  int      `json:"text_width,omitempty"`
	TextDepth  int      `json:"text_depth,omitempty"`
	// TextPool is how the encoder pools its words into one condition: "" (mean) or "attention" (a learned
	// query weighs the words; it starts at zero, which is the mean, so a mean-pooled model can be trained on
	// into an attention-pooled one).
	TextPool string `json:"text_pool,omitempty"`
	// Label conditioning: the number of classes (the table has one more row, the null class).
	NumClasses int `json:"num_classes,omitempty"`
}

// ValidateSteps checks a sampler step count for this model: DDIM on the 1000-step DDPM schedule of
// ε-prediction models needs a divisor of 1000.
func (c Config) ValidateSteps(steps int) error {
	switch {
	case steps < 1 || steps > MaxSteps:
		return cachet.Errorf(cachet.CodeInvalidArgument, "steps must be between 1 and %d (got %d)", MaxSteps, steps)
	case c.Prediction == PredictEpsilon && 1000%steps != 0:
		return cachet.Errorf(cachet.CodeInvalidArgument, "DDIM steps must divide 1000 (got %d)", steps)
	}
	return nil
}

// IsTextGrayscale reports whether the model draws one-channel size×size images from text prompts (what
// Cachet's scenes need).
func (c Config) IsTextGrayscale(size int) bool {
	return c.Cond == CondText && c.ImageSize == size && c.Channels == 1
}

// Tokens is the number of patches (sequence length).
func (c Config) Tokens() int { g := c.ImageSize / c.Patch; return g * g }

// OutChannels is the number of channels the final layer predicts.
func (c Config) OutChannels() int {
	if c.LearnSigma {
		return 2 * c.Channels
	}
	return c.Channels
}

// MLPHidden is the MLP's inner width.
func (c Config) MLPHidden() int { return int(float64(c.Width) * c.MLPRatio) }

// Validate checks the configuration and says what to fix.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return cachet.Errorf(cachet.CodeInvalidArgument, "model config: "+format, args...)
	}
	switch {
	case c.ImageSize <= 0 || c.Channels <= 0 || c.Patch <= 0:
		return bad("image_size, channels and patch must be positive (got %d, %d, %d)", c.ImageSize, c.Channels, c.Patch)
	case c.ImageSize%c.Patch != 0:
		return bad("image_size %d is not a multiple of patch %d", c.ImageSize, c.Patch)
	case c.Width <= 0 || c.Depth <= 0 || c.Heads <= 0:
		return bad("width, depth and heads must be positive (got %d, %d, %d)", c.Width, c.Depth, c.Heads)
	case c.Width%c.Heads != 0:
		return bad("width %d is not divisible by heads %d", c.Width, c.Heads)
	case (c.Width/c.Heads)%2 != 0 || c.Width%4 != 0:
		return bad("width %d must be a multiple of 4 with an even head size (sin-cos position embedding)", c.Width)
	case c.MLPRatio <= 0:
		return bad("mlp_ratio must be positive")
	case c.Prediction != PredictFlow && c.Prediction != PredictEpsilon:
		return bad("prediction %q: use %q or %q", c.Prediction, PredictFlow, PredictEpsilon)
	}
	switch c.Cond {
	case CondText:
		if len(c.Vocabulary) == 0 || c.MaxWords <= 0 || c.TextWidth <= 0 || c.TextDepth < 0 {
			return bad("text conditioning needs a vocabulary, max_words > 0, text_width > 0 and text_depth ≥ 0")
		}
		if c.TextWidth%4 != 0 {
			return bad("text_width %d must be a multiple of 4", c.TextWidth)
		}
		if c.TextPool != "" && c.TextPool != TextPoolAttention {
			return bad("text_pool %q: use %q or leave it out (mean)", c.TextPool, TextPoolAttention)
		}
		seen := map[string]bool{}
		for _, w := range c.Vocabulary {
			if w == "" || strings.ContainsAny(w, " \t\n") || seen[w] {
				return bad("vocabulary word %q is empty, has spaces or repeats", w)
			}
			seen[w] = true
		}
	case CondLabel:
		if c.NumClasses <= 0 {
			return bad("label conditioning needs num_classes > 0")
		}
	default:
		return bad("conditioning %q: use %q or %q", c.Cond, CondText, CondLabel)
	}
	return nil
}

// Presets are named configurations. DiT-S/2 … XL/2 are the public DiT sizes at 256² (latent 32×32×4), for
// timing at real scale with random weights; "fmnist" is the size of Cachet's default model.
var Presets = map[string]Config{
	"dit-s/2":  ditPreset(384, 12, 6),
	"dit-b/2":  ditPreset(768, 12, 12),
	"dit-l/2":  ditPreset(1024, 24, 16),
	"dit-xl/2": ditPreset(1152, 28, 16),
	"tiny":     {ImageSize: 8, Channels: 1, Patch: 2, Width: 32, Depth: 2, Heads: 2, MLPRatio: 2, Prediction: PredictFlow, Cond: CondLabel, NumClasses: 3},
}

func ditPreset(width, depth, heads int) Config {
	return Config{ImageSize: 32, Channels: 4, Patch: 2, Width: width, Depth: depth, Heads: heads, MLPRatio: 4,
		LearnSigma: true, Prediction: PredictEpsilon, Cond: CondLabel, NumClasses: 1000}
}

// Preset returns a named preset or an error listing them.
func Preset(name string) (Config, error) {
	c, ok := Presets[strings.ToLower(name)]
	if !ok {
		return Config{}, cachet.Errorf(cachet.CodeInvalidArgument, "unknown model preset %q; presets: %s", name, strings.Join(PresetNames(), ", "))
	}
	return c, nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TextPoolAttention pools the text encoder's words with a learned query (Config.TextPool).
const TextPoolAttention = "attention"

func (c Config) String() string {
	return fmt.Sprintf("DiT %dx%dx%d patch %d, width %d, depth %d, heads %d, %s/%s",
		c.ImageSize, c.ImageSize, c.Channels, c.Patch, c.Width, c.Depth, c.Heads, c.Prediction, c.Cond)
}
