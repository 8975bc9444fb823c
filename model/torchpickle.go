package model

// Reading PyTorch's pickled state_dicts (torch.save zip archives) for the DiT converter.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/sugarme/gotch/half"
	"github.com/sugarme/gotch/pickle"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
)

// torchTensor is one entry of a pickled state_dict: a strided view of a storage.
type torchTensor struct {
	storage pickle.Storage
	offset  int64
	shape   []int64
	stride  []int64
	dtype   string
}

func (t *torchTensor) isFloat() bool {
	switch t.storage.GetData().(type) {
	case []float32, []float64, []half.Float16, []half.BFloat16:
		return true
	}
	return false
}

// float32LE gathers the view into contiguous little-endian float32 bytes.
func (t *torchTensor) float32LE() ([]byte, error) {
	var at func(i int64) float32
	var size int64
	switch d := t.storage.GetData().(type) {
	case []float32:
		at, size = func(i int64) float32 { return d[i] }, int64(len(d))
	case []float64:
		at, size = func(i int64) float32 { return float32(d[i]) }, int64(len(d))
	case []half.Float16:
		at, size = func(i int64) float32 { return d[i].Float32() }, int64(len(d))
	case []half.BFloat16:
		at, size = func(i int64) float32 { return half.BFloat16ToFloat32(uint16(d[i])) }, int64(len(d))
	default:
		return nil, fmt.Errorf("%s is not a floating-point tensor", t.dtype)
	}
	n, last := int64(1), t.offset
	for k, dim := range t.shape {
		if dim < 0 || len(t.stride) != len(t.shape) {
			return nil, fmt.Errorf("bad shape %v / stride %v", t.shape, t.stride)
		}
		if dim == 0 {
			n = 0
			break
		}
		n *= dim
		last += (dim - 1) * t.stride[k]
	}
	if n > 0 && (t.offset < 0 || last >= size || last < 0) {
		return nil, fmt.Errorf("view (offset %d, shape %v, stride %v) runs past its storage of %d elements", t.offset, t.shape, t.stride, size)
	}
	out := make([]byte, 4*n)
	idx := make([]int64, len(t.shape))
	for i := range n {
		pos := t.offset
		for k := range idx {
			pos += idx[k] * t.stride[k]
		}
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(at(pos)))
		for k := len(idx) - 1; k >= 0; k-- { // advance the row-major multi-index
			idx[k]++
			if idx[k] < t.shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out, nil
}

// readTorchStateDict loads a torch.save'd state_dict (or a checkpoint dict holding one under "ema",
// "model" or "state_dict", preferred in that order) without libtorch.
func readTorchStateDict(path string) (map[string]*torchTensor, string, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", cachet.Errorf(cachet.CodeNotFound, "checkpoint %s does not exist", path)
		}
		return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "checkpoint %s: %v", path, err)
	}
	obj, err := unpickleTorch(path)
	if err != nil {
		if _, _, serr := ReadWeightsFile(path); serr == nil {
			return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "%s is already a Cachet weights file, not a DiT .pt checkpoint", path)
		} else if _, serr := safetensors.ReadFile(path); serr == nil {
			return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "%s is a safetensors file, not a DiT .pt checkpoint (torch.save'd state_dict)", path)
		}
		return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a PyTorch checkpoint that Cachet can read (a torch.save'd state_dict): %v", path, err)
	}
	entries, err := dictEntries(obj)
	if err != nil {
		return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "%s: %v", path, err)
	}
	entries, source := unwrapCheckpoint(entries)
	sd := make(map[string]*torchTensor, len(entries))
	var notTensors []string
	for _, e := range entries {
		st, ok := e.value.(*pickle.StorageTensor)
		if !ok || st.Source == nil {
			notTensors = append(notTensors, fmt.Sprintf("%s (%s)", e.key, describePickled(e.value)))
			continue
		}
		sd[e.key] = &torchTensor{storage: st.Source, offset: st.StorageOffset, shape: st.Size, stride: st.Stride,
			dtype: strings.TrimPrefix(fmt.Sprintf("%T", st.Source), "*pickle.")}
	}
	if len(notTensors) > 0 {
		sort.Strings(notTensors)
		return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "%s is not a state_dict of tensors: %s", path, strings.Join(notTensors, ", "))
	}
	if len(sd) == 0 {
		return nil, "", cachet.Errorf(cachet.CodeInvalidArgument, "%s holds no tensors", path)
	}
	return sd, source, nil
}

// unpickleTorch runs gotch's torch.load equivalent, turning its crashes on unsupported files into errors.
func unpickleTorch(path string) (obj any, err error) {
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("the pickle reader failed: %v", r)
		}
	}()
	return pickle.LoadWithUnpickler(path, func(r io.Reader) pickle.Unpickler {
		u := pickle.NewUnpickler(r)
		u.FindClass = findForeignClass // consulted after gotch's own torch classes
		return u
	})
}

// findForeignClass resolves the classes gotch's reader does not know: torch.BFloat16Storage (gotch has the
// storage type but does not register it), and anything else — a training checkpoint's argparse "args", say —
// as an opaque object, so that the state_dict next to it can still be read. An opaque object where a tensor
// belongs is reported by name.
func findForeignClass(module, name string) (any, error) {
	if module == "torch" && name == "BFloat16Storage" {
		return &pickle.BFloat16StorageClass{}, nil
	}
	return &opaqueClass{name: module + "." + name}, nil
}

type opaqueClass struct{ name string }

func (c *opaqueClass) Call(...any) (any, error)  { return &opaqueObject{c.name}, nil }
func (c *opaqueClass) PyNew(...any) (any, error) { return &opaqueObject{c.name}, nil }

// opaqueObject stands for an instance of a class Cachet does not read; its state is dropped.
type opaqueObject struct{ class string }

func (o *opaqueObject) PySetState(any) error { return nil }
func (o *opaqueObject) String() string       { return "a Python " + o.class }

// unwrapCheckpoint picks the state_dict of a training checkpoint ({"ema": …, "model": …, "opt": …}): the
// EMA weights first, as DiT's own sampling scripts do.
func unwrapCheckpoint(entries []dictEntry) ([]dictEntry, string) {
	for _, key := range []string{"ema", "model", "state_dict"} {
		for _, e := range entries {
			if e.key != key {
				continue
			}
			if inner, err := dictEntries(e.value); err == nil {
				return inner, "its " + key + " entry"
			}
		}
	}
	return entries, "top level"
}

// describePickled names an unpickled value's Python type for error messages.
func describePickled(v any) string {
	switch v := v.(type) {
	case *opaqueObject:
		return v.String()
	case *pickle.StorageTensor:
		return "a tensor"
	case *pickle.Dict, *pickle.OrderedDict:
		return "a dict"
	case nil:
		return "None"
	}
	return fmt.Sprintf("a %T", v)
}

type dictEntry struct {
	key   string
	value any
}

// dictEntries lists a pickled dict's or OrderedDict's items in order; keys must be strings.
func dictEntries(obj any) ([]dictEntry, error) {
	var out []dictEntry
	add := func(k, v any) error {
		s, ok := k.(string)
		if !ok {
			return fmt.Errorf("a dict key is a %T, not a string", k)
		}
		out = append(out, dictEntry{s, v})
		return nil
	}
	switch d := obj.(type) {
	case *pickle.Dict:
		for _, e := range *d {
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	case *pickle.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e, ok := el.Value.(*pickle.OrderedDictEntry)
			if !ok {
				return nil, fmt.Errorf("unreadable OrderedDict entry %T", el.Value)
			}
			if err := add(e.Key, e.Value); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("it holds %s, not a state_dict (save model.state_dict())", describePickled(obj))
	}
	return out, nil
}
