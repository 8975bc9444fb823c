package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// metadataKey is the reserved header key holding File.Metadata.
const metadataKey = "__metadata__"

// maxHeaderSize bounds the JSON header (100 MB, as in the reference
// implementation) so a corrupt length prefix cannot make us allocate or
// parse gigabytes. Encode enforces it too, so we never write a file we
// would refuse to read.
const maxHeaderSize = 100_000_000

// headerEntry is one tensor's header record. Fields are declared in sorted
// key order because encoding/json emits struct fields in declaration order
// and we promise sorted keys for byte-stable output.
type headerEntry struct {
	DataOffsets [2]int64 `json:"data_offsets"`
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
}

// Marshal encodes f into a new byte slice; see Encode.
func Marshal(f File) ([]byte, error) {
	var buf bytes.Buffer
	if err := Encode(&buf, f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Encode writes f in safetensors format. Output is deterministic: tensors
// are laid out in sorted name order, header keys are sorted, and the header
// is padded with spaces to a multiple of 8 bytes (which keeps the data
// section 8-byte aligned for mmap readers). Every tensor is validated before
// anything is written, so an error never leaves a partial file behind on w.
func Encode(w io.Writer, f File) error {
	names := f.Names()
	header, err := buildHeader(f, names)
	if err != nil {
		return err
	}
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := w.Write(prefix[:]); err != nil {
		return fmt.Errorf("safetensors: write header length: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("safetensors: write header: %w", err)
	}
	for _, name := range names {
		if _, err := w.Write(f.Tensors[name].Data); err != nil {
			return fmt.Errorf("safetensors: write tensor %q: %w", name, err)
		}
	}
	return nil
}

// buildHeader validates f and renders the padded JSON header.
func buildHeader(f File, names []string) ([]byte, error) {
	for k, v := range f.Metadata {
		// encoding/json would silently replace invalid UTF-8 with U+FFFD,
		// so the value read back would differ from the one written.
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("safetensors: %w: key %q: invalid UTF-8", ErrInvalidMetadata, k)
		}
	}
	// map keys are emitted sorted by encoding/json, giving sorted top-level
	// keys with "__metadata__" in its natural place among tensor names.
	top := make(map[string]any, len(names)+1)
	if len(f.Metadata) > 0 {
		top[metadataKey] = f.Metadata
	}
	var offset int64
	for _, name := range names {
		t := f.Tensors[name]
		switch {
		case name == "":
			return nil, fmt.Errorf("safetensors: %w: empty name", ErrInvalidName)
		case name == metadataKey:
			return nil, fmt.Errorf("safetensors: %w: %q is reserved", ErrInvalidName, name)
		case !utf8.ValidString(name):
			return nil, fmt.Errorf("safetensors: %w: %q is not valid UTF-8", ErrInvalidName, name)
		}
		if err := validateTensor(t); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		size := int64(len(t.Data))
		// A slice length is at most MaxInt, and Go limits the total memory
		// far below MaxInt64, so offset+size cannot overflow in practice.
		shape := t.Shape
		if shape == nil {
			shape = []int64{} // a nil slice would encode as null, not []
		}
		top[name] = headerEntry{DataOffsets: [2]int64{offset, offset + size}, DType: t.DType, Shape: shape}
		offset += size
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Names such as "a<b" stay readable instead of becoming \u003c.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(top); err != nil {
		return nil, fmt.Errorf("safetensors: %w: %w", ErrInvalidHeader, err)
	}
	header := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	for len(header)%8 != 0 {
		header = append(header, ' ')
	}
	if len(header) > maxHeaderSize {
		return nil, fmt.Errorf("safetensors: %w: %d bytes exceeds %d", ErrHeaderTooLarge, len(header), maxHeaderSize)
	}
	return header, nil
}
