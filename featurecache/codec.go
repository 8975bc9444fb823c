package featurecache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// Format tags a cache object's metadata so that other safetensors files (weights) are refused by name.
const Format = "cachet.featurecache.v1"

// ContentType is the media type caches are stored under.
const ContentType = "application/vnd.cachet.featurecache+safetensors"

// Metadata keys of a cache object.
const (
	metaFormat   = "format"
	metaModel    = "model"
	metaBlocks   = "blocks"
	metaTRef     = "t_ref"
	metaViews    = "views" // absent in caches made before views: 1
	metaTokens   = "tokens"
	metaWidth    = "width"
	metaChecksum = "checksum" // sha256 over the tensors' bytes in name order: a cache is verified on decode
)

func tensorName(block int) string { return fmt.Sprintf("block.%d.input", block) }

// Concat joins the caches of one subject's references along tokens: the result holds, per block,
// [Σ tokens, width]. Every part must come from the same model, blocks, t_ref and width.
func Concat(parts []*Features) (*Features, error) {
	if len(parts) == 0 {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: nothing to concatenate")
	}
	first := parts[0]
	out := &Features{Model: first.Model, Blocks: slices.Clone(first.Blocks), TRef: first.TRef, Views: first.NumViews(), Width: first.Width,
		Data: make([][]float32, len(first.Blocks))}
	for i, p := range parts {
		if p.Model != first.Model || !slices.Equal(p.Blocks, first.Blocks) || p.TRef != first.TRef || p.NumViews() != out.Views || p.Width != first.Width {
			return nil, cachet.Errorf(cachet.CodeInvalidArgument,
				"feature cache: reference %d was extracted differently (model %s, blocks %v, t_ref %v, %d views, width %d) from reference 0 (model %s, blocks %v, t_ref %v, %d views, width %d)",
				i, p.Model, p.Blocks, p.TRef, p.NumViews(), p.Width, first.Model, first.Blocks, first.TRef, out.Views, first.Width)
		}
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("reference %d: %w", i, err)
		}
		out.Tokens += p.Tokens
	}
	for b := range out.Blocks {
		data := make([]float32, 0, out.Tokens*out.Width)
		for _, p := range parts {
			data = append(data, p.Data[b]...)
		}
		out.Data[b] = data
	}
	return out, nil
}

// check verifies that the cache's data matches its declared shape.
func (f *Features) check() error {
	if len(f.Data) != len(f.Blocks) {
		return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: %d data slices for %d blocks", len(f.Data), len(f.Blocks))
	}
	for i, d := range f.Data {
		if len(d) != f.Tokens*f.Width {
			return cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: block %d holds %d values, want %d×%d", f.Blocks[i], len(d), f.Tokens, f.Width)
		}
	}
	return nil
}

// Encode serialises a cache as fp16 safetensors (one [tokens, width] tensor per block) with the model id,
// blocks, t_ref, shape and a checksum in its metadata. Equal caches give identical bytes.
func Encode(f *Features) ([]byte, error) {
	if f.Model == "" {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "feature cache: no model id: a cache must name the model that made it")
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	file := safetensors.File{Tensors: make(map[string]safetensors.Tensor, len(f.Blocks))}
	shape := []int64{int64(f.Tokens), int64(f.Width)}
	for i, b := range f.Blocks {
		file.Tensors[tensorName(b)] = safetensors.FromFloat16(shape, f.Data[i])
	}
	blocks := make([]string, len(f.Blocks))
	for i, b := range f.Blocks {
		blocks[i] = strconv.Itoa(b)
	}
	file.Metadata = map[string]string{
		metaFormat:   Format,
		metaModel:    f.Model,
		metaBlocks:   strings.Join(blocks, ","),
		metaTRef:     strconv.FormatFloat(f.TRef, 'g', -1, 64),
		metaViews:    strconv.Itoa(f.NumViews()),
		metaTokens:   strconv.Itoa(f.Tokens),
		metaWidth:    strconv.Itoa(f.Width),
		metaChecksum: checksum(file),
	}
	data, err := safetensors.Marshal(file)
	if err != nil {
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	return data, nil
}

func checksum(f safetensors.File) string {
	h := sha256.New()
	for _, name := range f.Names() {
		h.Write([]byte(name))
		h.Write(f.Tensors[name].Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Decode parses a cache. A cache made by a model other than wantModel is refused with a CodeConflict
// error (features of another model version mean nothing to this one); an empty wantModel accepts any.
// A malformed or corrupted cache is a CodeInvalidArgument error.
func Decode(data []byte, wantModel string) (*Features, error) {
	bad := func(format string, args ...any) error {
		return cachet.Errorf(cachet.CodeInvalidArgument, "not a valid feature cache: "+format, args...)
	}
	file, err := safetensors.Decode(data)
	if err != nil {
		return nil, cachet.Wrap(cachet.CodeInvalidArgument, err, "not a valid feature cache: %v", err)
	}
	meta := file.Metadata
	if meta[metaFormat] != Format {
		return nil, bad("its format is %q, want %q (is it a weights file?)", meta[metaFormat], Format)
	}
	f := &Features{Model: meta[metaModel]}
	if f.Model == "" {
		return nil, bad("it names no model")
	}
	if wantModel != "" && f.Model != wantModel {
		return nil, cachet.Errorf(cachet.CodeConflict,
			"the feature cache was made by model %s, but this is model %s; extract it again with this model", f.Model, wantModel)
	}
	if f.TRef, err = strconv.ParseFloat(meta[metaTRef], 64); err != nil {
		return nil, bad("t_ref %q", meta[metaTRef])
	}
	if f.Tokens, err = strconv.Atoi(meta[metaTokens]); err != nil || f.Tokens <= 0 {
		return nil, bad("tokens %q", meta[metaTokens])
	}
	f.Views = 1
	if v, ok := meta[metaViews]; ok {
		if f.Views, err = strconv.Atoi(v); err != nil || f.Views < 1 || f.Views > MaxViews || f.Tokens%f.Views != 0 {
			return nil, bad("views %q for %d tokens", v, f.Tokens)
		}
	}
	if f.Width, err = strconv.Atoi(meta[metaWidth]); err != nil || f.Width <= 0 {
		return nil, bad("width %q", meta[metaWidth])
	}
	for _, s := range strings.Split(meta[metaBlocks], ",") {
		b, err := strconv.Atoi(s)
		if err != nil || b < 0 || (len(f.Blocks) > 0 && b <= f.Blocks[len(f.Blocks)-1]) {
			return nil, bad("blocks %q", meta[metaBlocks])
		}
		f.Blocks = append(f.Blocks, b)
	}
	if len(file.Tensors) != len(f.Blocks) {
		return nil, bad("%d tensors for %d blocks", len(file.Tensors), len(f.Blocks))
	}
	if got := checksum(file); got != meta[metaChecksum] {
		return nil, bad("checksum mismatch (stored %s, content %s): the cache is corrupted", meta[metaChecksum], got)
	}
	f.Data = make([][]float32, len(f.Blocks))
	for i, b := range f.Blocks {
		t, ok := file.Tensors[tensorName(b)]
		if !ok {
			return nil, bad("no tensor %s", tensorName(b))
		}
		if t.DType != safetensors.F16 || !slices.Equal(t.Shape, []int64{int64(f.Tokens), int64(f.Width)}) {
			return nil, bad("tensor %s is %s %v, want F16 [%d %d]", tensorName(b), t.DType, t.Shape, f.Tokens, f.Width)
		}
		if f.Data[i], err = t.Float32s(); err != nil {
			return nil, bad("tensor %s: %v", tensorName(b), err)
		}
	}
	return f, nil
}
