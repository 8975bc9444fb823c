package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/half"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/atomicfile"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// Conversion of original DiT checkpoints (facebookresearch/DiT: DiT-XL-2-256x256.pt, …) into Cachet
// weights files. Cachet's parameter names are DiT's, except that DiT's label table is an nn.Embedding
// ("y_embedder.embedding_table.weight") and its fixed positional table ("pos_embed") is a saved buffer that
// Cachet recomputes: the converter checks it equals Cachet's and drops it.

// ditHeadsByWidth gives the head counts of the public DiT sizes (S, B, L, XL), which the checkpoint's shapes
// cannot tell.
var ditHeadsByWidth = map[int]int{384: 6, 768: 12, 1024: 16, 1152: 16}

// posEmbedTolerance bounds |pos_embed − Cachet's sin-cos| for a float32 (or float64) checkpoint: both are
// roundings of the same float64 values. Half-precision checkpoints get their rounding error (|values| ≤ 1).
func posEmbedTolerance(t *torchTensor) float64 {
	switch t.storage.GetData().(type) {
	case []half.Float16:
		return 1e-3 // half an ulp of 1 is 2^-11 ≈ 4.9e-4
	case []half.BFloat16:
		return 8e-3 // 2^-8 ≈ 3.9e-3
	}
	return 1e-5
}

// ditLabelTable is DiT's name for the label table; Cachet names the tensor without ".weight".
const ditLabelTable = "y_embedder.embedding_table.weight"

// ConvertDiT reads a DiT checkpoint (a torch.save'd state_dict, or a training checkpoint's "ema"/"model"
// entry) with gotch's pure-Go pickle reader and returns it as a Cachet weights file (fp32, with the
// format and config metadata) and its config.
//
// The config is inferred from the shapes: width, depth, patch, channels, MLP ratio, learn_sigma,
// num_classes (the label table's rows − 1: DiT's extra row is the null class) and the image size (from
// pos_embed's token count, in latent cells: 32 for DiT-*/2 at 256², 64 at 512²). Fields set in hint must
// agree with the checkpoint; Heads must be given unless the width is a public DiT size (S 6, B 12, L 16,
// XL 16 heads). The checkpoint must hold exactly the tensors DiT has for that config: missing, unexpected,
// mis-shaped and non-floating-point entries are listed together in one error.
func ConvertDiT(ptPath string, hint Config) (safetensors.File, Config, error) {
	sd, source, err := readTorchStateDict(ptPath)
	if err != nil {
		return safetensors.File{}, Config{}, err
	}
	cfg, err := inferDiTConfig(ptPath, sd, hint)
	if err != nil {
		return safetensors.File{}, Config{}, err
	}
	want := ditShapes(cfg)
	if err := checkDiTNames(ptPath, sd, want); err != nil {
		return safetensors.File{}, Config{}, err
	}
	if err := checkPosEmbed(ptPath, sd["pos_embed"], cfg); err != nil {
		return safetensors.File{}, Config{}, err
	}
	meta, err := json.Marshal(cfg)
	if err != nil {
		return safetensors.File{}, Config{}, err
	}
	f := safetensors.File{
		Metadata: map[string]string{
			MetaFormat:                 formatDiT,
			MetaConfig:                 string(meta),
			"cachet.converted_from":    "facebookresearch/DiT state_dict (" + source + ")",
			"cachet.source_checkpoint": filepath.Base(ptPath),
		},
		Tensors: map[string]safetensors.Tensor{},
	}
	for name, t := range sd {
		if name == "pos_embed" {
			continue
		}
		data, err := t.float32LE()
		if err != nil {
			return safetensors.File{}, Config{}, cachet.Errorf(cachet.CodeInvalidArgument, "checkpoint %s: %s: %v", ptPath, name, err)
		}
		f.Tensors[cachetName(name)] = safetensors.Tensor{DType: safetensors.F32, Shape: t.shape, Data: data}
	}
	return f, cfg, nil
}

// ConvertDiTFile converts the checkpoint at ptPath (see ConvertDiT) and writes the Cachet weights file to
// outPath atomically (a temporary file renamed into place), streaming the tensors.
func ConvertDiTFile(ptPath, outPath string, hint Config) (Config, error) {
	// An unwritable destination fails before a long conversion.
	if err := checkWritable(outPath); err != nil {
		return Config{}, err
	}
	f, cfg, err := ConvertDiT(ptPath, hint)
	if err != nil {
		return Config{}, err
	}
	if err := atomicfile.Write(outPath, func(w io.Writer) error { return safetensors.Encode(w, f) }); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checkWritable says, before any work, when path's directory does not take new files.
func checkWritable(path string) error {
	probe, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return cachet.Errorf(cachet.CodeInvalidArgument, "cannot write %s: %v", path, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// cachetName maps a DiT state_dict name to Cachet's.
func cachetName(dit string) string {
	if dit == ditLabelTable {
		return "y_embedder.embedding_table"
	}
	return dit
}

// ditShapes lists every tensor a DiT state_dict of cfg holds, by DiT name (pos_embed included). It mirrors
// the parameters New creates for a label-conditioned config (convert_test checks that it stays so).
func ditShapes(cfg Config) map[string][]int64 {
	d, c, p := int64(cfg.Width), int64(cfg.Channels), int64(cfg.Patch)
	h := int64(cfg.MLPHidden())
	s := map[string][]int64{
		"pos_embed":                             {1, int64(cfg.Tokens()), d},
		"x_embedder.proj.weight":                {d, c, p, p},
		"x_embedder.proj.bias":                  {d},
		"t_embedder.mlp.0.weight":               {d, timestepFreqDim},
		"t_embedder.mlp.0.bias":                 {d},
		"t_embedder.mlp.2.weight":               {d, d},
		"t_embedder.mlp.2.bias":                 {d},
		ditLabelTable:                           {int64(cfg.NumClasses + 1), d},
		"final_layer.linear.weight":             {p * p * int64(cfg.OutChannels()), d},
		"final_layer.linear.bias":               {p * p * int64(cfg.OutChannels())},
		"final_layer.adaLN_modulation.1.weight": {2 * d, d},
		"final_layer.adaLN_modulation.1.bias":   {2 * d},
	}
	for i := range cfg.Depth {
		b := fmt.Sprintf("blocks.%d.", i)
		for name, shape := range map[string][]int64{
			"attn.qkv.weight": {3 * d, d}, "attn.qkv.bias": {3 * d},
			"attn.proj.weight": {d, d}, "attn.proj.bias": {d},
			"mlp.fc1.weight": {h, d}, "mlp.fc1.bias": {h},
			"mlp.fc2.weight": {d, h}, "mlp.fc2.bias": {d},
			"adaLN_modulation.1.weight": {6 * d, d}, "adaLN_modulation.1.bias": {6 * d},
		} {
			s[b+name] = shape
		}
	}
	return s
}

// inferDiTConfig reads the config from the checkpoint's shapes, checked against hint's non-zero fields.
func inferDiTConfig(path string, sd map[string]*torchTensor, hint Config) (Config, error) {
	bad := func(format string, args ...any) error {
		return cachet.Errorf(cachet.CodeInvalidArgument, "checkpoint %s: "+format, append([]any{path}, args...)...)
	}
	if hint.Prediction != "" && hint.Prediction != PredictEpsilon {
		return Config{}, bad("DiT checkpoints predict ε (%q), not %q", PredictEpsilon, hint.Prediction)
	}
	if hint.Cond != "" && hint.Cond != CondLabel {
		return Config{}, bad("DiT checkpoints are label-conditioned (%q), not %q", CondLabel, hint.Cond)
	}
	// The tensors whose shapes define the config.
	var missing []string
	shape := func(name string, rank int) []int64 {
		t, ok := sd[name]
		if !ok {
			missing = append(missing, name)
			return nil
		}
		if len(t.shape) != rank {
			return nil
		}
		return t.shape
	}
	patch := shape("x_embedder.proj.weight", 4)
	pos := shape("pos_embed", 3)
	fc1 := shape("blocks.0.mlp.fc1.weight", 2)
	final := shape("final_layer.linear.weight", 2)
	table := shape(ditLabelTable, 2)
	if len(missing) > 0 {
		sort.Strings(missing)
		return Config{}, bad("not a DiT state_dict: missing tensors: %s (it has %d tensors: %s)", strings.Join(missing, ", "), len(sd), abbreviateNames(sd, 8))
	}
	if patch == nil || patch[2] != patch[3] || fc1 == nil || final == nil || table == nil || pos == nil || pos[0] != 1 {
		return Config{}, bad("x_embedder.proj.weight %v, pos_embed %v, blocks.0.mlp.fc1.weight %v, final_layer.linear.weight %v and %s %v do not have DiT's shapes",
			sd["x_embedder.proj.weight"].shape, sd["pos_embed"].shape, sd["blocks.0.mlp.fc1.weight"].shape, sd["final_layer.linear.weight"].shape, ditLabelTable, sd[ditLabelTable].shape)
	}
	cfg := Config{Prediction: PredictEpsilon, Cond: CondLabel,
		Width: int(patch[0]), Channels: int(patch[1]), Patch: int(patch[2]), NumClasses: int(table[0]) - 1}
	grid := int(math.Round(math.Sqrt(float64(pos[1]))))
	if grid*grid != int(pos[1]) {
		return Config{}, bad("pos_embed has %d tokens, not a square grid", pos[1])
	}
	cfg.ImageSize = grid * cfg.Patch
	cfg.MLPRatio = float64(fc1[0]) / float64(cfg.Width)
	if cfg.MLPHidden() != int(fc1[0]) {
		return Config{}, bad("MLP width %d is not a ratio of the width %d that Cachet can express", fc1[0], cfg.Width)
	}
	for name := range sd {
		if rest, ok := strings.CutPrefix(name, "blocks."); ok {
			if i, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0]); err == nil && i >= cfg.Depth && i < 10000 {
				cfg.Depth = i + 1
			}
		}
	}
	pp := int(patch[2] * patch[2])
	switch outC := int(final[0]) / pp; {
	case int(final[0])%pp != 0 || (outC != cfg.Channels && outC != 2*cfg.Channels):
		return Config{}, bad("final_layer.linear.weight %v predicts neither %d nor %d channels per %d×%d patch", final, cfg.Channels, 2*cfg.Channels, patch[2], patch[2])
	default:
		cfg.LearnSigma = outC == 2*cfg.Channels
	}
	cfg.Heads = hint.Heads
	if cfg.Heads == 0 {
		h, ok := ditHeadsByWidth[cfg.Width]
		if !ok {
			return Config{}, bad("width %d is not a public DiT size (S 384, B 768, L 1024, XL 1152): give the head count (--heads)", cfg.Width)
		}
		cfg.Heads = h
	}
	var conflicts []string
	check := func(field string, given, found any, set bool) {
		if set && given != found {
			conflicts = append(conflicts, fmt.Sprintf("%s %v given, checkpoint has %v", field, given, found))
		}
	}
	check("image_size", hint.ImageSize, cfg.ImageSize, hint.ImageSize != 0)
	check("channels", hint.Channels, cfg.Channels, hint.Channels != 0)
	check("patch", hint.Patch, cfg.Patch, hint.Patch != 0)
	check("width", hint.Width, cfg.Width, hint.Width != 0)
	check("depth", hint.Depth, cfg.Depth, hint.Depth != 0)
	check("mlp_ratio", hint.MLPRatio, cfg.MLPRatio, hint.MLPRatio != 0)
	check("num_classes", hint.NumClasses, cfg.NumClasses, hint.NumClasses != 0)
	if len(conflicts) > 0 {
		return Config{}, bad("does not match the requested model: %s (image_size counts latent cells: pos_embed has %d×%d patches of %d)", strings.Join(conflicts, "; "), grid, grid, cfg.Patch)
	}
	if err := cfg.Validate(); err != nil {
		var e *cachet.Error
		if errors.As(err, &e) {
			return Config{}, bad("%s", e.Message)
		}
		return Config{}, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return cfg, nil
}

// checkDiTNames compares the checkpoint with the tensors DiT has for the config, reporting every
// difference at once.
func checkDiTNames(path string, sd map[string]*torchTensor, want map[string][]int64) error {
	var missing, unexpected, misshaped, notFloat []string
	for name, shape := range want {
		t, ok := sd[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case fmt.Sprint(t.shape) != fmt.Sprint(shape):
			misshaped = append(misshaped, fmt.Sprintf("%s: checkpoint %v, model %v", name, t.shape, shape))
		case !t.isFloat():
			notFloat = append(notFloat, fmt.Sprintf("%s (%s)", name, t.dtype))
		}
	}
	for name := range sd {
		if _, ok := want[name]; !ok {
			unexpected = append(unexpected, name)
		}
	}
	if len(missing)+len(unexpected)+len(misshaped)+len(notFloat) == 0 {
		return nil
	}
	var parts []string
	for _, l := range []struct {
		what  string
		names []string
		sep   string
	}{{"missing tensors", missing, ", "}, {"unexpected tensors", unexpected, ", "}, {"mis-shaped tensors", misshaped, "; "}, {"not floating-point", notFloat, ", "}} {
		if len(l.names) > 0 {
			sort.Strings(l.names)
			parts = append(parts, l.what+": "+strings.Join(l.names, l.sep))
		}
	}
	return cachet.Errorf(cachet.CodeInvalidArgument, "checkpoint %s does not match DiT's layout: %s", path, strings.Join(parts, "; "))
}

// checkPosEmbed verifies that the checkpoint's fixed positions are the ones Cachet computes.
func checkPosEmbed(path string, t *torchTensor, cfg Config) error {
	data, err := t.float32LE()
	if err != nil {
		return cachet.Errorf(cachet.CodeInvalidArgument, "checkpoint %s: pos_embed: %v", path, err)
	}
	got, err := safetensors.Tensor{DType: safetensors.F32, Shape: t.shape, Data: data}.Float32s()
	if err != nil {
		return err
	}
	ref, err := sincosPosEmbed(cfg.Width, cfg.ImageSize/cfg.Patch, gotch.CPU)
	if err != nil {
		return err
	}
	want, err := Float32s(ref)
	ref.Drop()
	if err != nil {
		return err
	}
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
			if math.IsNaN(d) {
				worst = math.Inf(1)
			}
		}
	}
	if worst > posEmbedTolerance(t) {
		return cachet.Errorf(cachet.CodeInvalidArgument,
			"checkpoint %s: pos_embed is not DiT's 2-D sin-cos table (max |Δ| %.3g at token %d, channel %d; Cachet recomputes the table, so the converted model would differ)",
			path, worst, at/cfg.Width, at%cfg.Width)
	}
	return nil
}

func abbreviateNames(sd map[string]*torchTensor, n int) string {
	names := make([]string, 0, len(sd))
	for name := range sd {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) > n {
		return strings.Join(names[:n], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}
