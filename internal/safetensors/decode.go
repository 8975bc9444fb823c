package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"
)

// ReadFile reads and strictly decodes the safetensors file at path.
func ReadFile(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Decode(data)
	if err != nil {
		return File{}, fmt.Errorf("%w (file %s)", err, path)
	}
	return f, nil
}

// Decode parses a complete safetensors file. Tensor Data slices alias data
// rather than copying it, because weight files can be gigabytes and a copy
// would double peak memory; copy them if data will be reused. The returned
// Metadata and Tensors maps are never nil.
//
// Decode is strict: it rejects anything Encode would not have produced up to
// layout order and header whitespace. See the package comment for why.
func Decode(data []byte) (File, error) {
	if len(data) < 8 {
		return File{}, fmt.Errorf("safetensors: %w: %d bytes, need at least 8 for the header length", ErrTruncated, len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > maxHeaderSize {
		return File{}, fmt.Errorf("safetensors: %w: %d bytes exceeds %d", ErrHeaderTooLarge, n, maxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return File{}, fmt.Errorf("safetensors: %w: header length %d exceeds the %d bytes after the length prefix", ErrTruncated, n, len(data)-8)
	}
	header, body := data[8:8+n], data[8+n:]

	entries, meta, err := parseHeader(header)
	if err != nil {
		return File{}, err
	}
	if err := checkLayout(entries, int64(len(body))); err != nil {
		return File{}, err
	}
	f := File{Metadata: meta, Tensors: make(map[string]Tensor, len(entries))}
	for _, e := range entries {
		// The three-index slice caps each tensor at its own end so an
		// append by the caller cannot scribble over the next tensor.
		f.Tensors[e.name] = Tensor{DType: e.dtype, Shape: e.shape, Data: body[e.begin:e.end:e.end]}
	}
	return f, nil
}

// entry is one tensor record parsed from the header.
type entry struct {
	name       string
	dtype      DType
	shape      []int64
	begin, end int64
}

// parseHeader parses and validates the JSON header on its own, without
// looking at the data section beyond what checkLayout needs.
func parseHeader(header []byte) ([]entry, map[string]string, error) {
	if !utf8.Valid(header) {
		// encoding/json would silently substitute U+FFFD; refuse instead.
		return nil, nil, fmt.Errorf("safetensors: %w: not valid UTF-8", ErrInvalidHeader)
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, fmt.Errorf("safetensors: %w: must start with '{'", ErrInvalidHeader)
	}
	meta := map[string]string{}
	var entries []entry
	// Errors from the walk and its callbacks carry no package prefix; it is
	// added once here.
	end, err := forEachMember(header, func(key string, val json.RawMessage) error {
		if key == metadataKey {
			m, err := parseMetadata(val)
			if err != nil {
				return err
			}
			meta = m
			return nil
		}
		if key == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidName)
		}
		e, err := parseEntry(key, val)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	// Writers pad with spaces only; anything else after the object is
	// either corruption or a second JSON value.
	for i, c := range header[end:] {
		if c != ' ' {
			return nil, nil, fmt.Errorf("safetensors: %w: unexpected byte %q at header offset %d after the JSON object", ErrInvalidHeader, c, end+int64(i))
		}
	}
	return entries, meta, nil
}

// forEachMember walks a JSON object member by member. encoding/json would
// silently keep the last of two duplicate keys, so we tokenize ourselves to
// reject them. It returns the offset just past the closing brace. Its errors
// are unprefixed so that nested callers can add context once.
func forEachMember(raw []byte, fn func(key string, val json.RawMessage) error) (int64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return 0, fmt.Errorf("%w: expected a JSON object", ErrInvalidHeader)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
		}
		key, ok := tok.(string)
		if !ok {
			return 0, fmt.Errorf("%w: object key is not a string", ErrInvalidHeader)
		}
		if seen[key] {
			return 0, fmt.Errorf("%w: %q", ErrDuplicateKey, key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return 0, fmt.Errorf("%w: value of %q: %w", ErrInvalidHeader, key, err)
		}
		if err := fn(key, val); err != nil {
			return 0, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return 0, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
	}
	return dec.InputOffset(), nil
}

// parseMetadata decodes "__metadata__", which must be an object of strings.
func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: %s must be an object", ErrInvalidMetadata, metadataKey)
	}
	meta := map[string]string{}
	_, err := forEachMember(raw, func(key string, val json.RawMessage) error {
		s, err := parseString(val)
		if err != nil {
			return fmt.Errorf("%w: key %q: %w", ErrInvalidMetadata, key, err)
		}
		meta[key] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", metadataKey, err)
	}
	return meta, nil
}

// parseEntry decodes one tensor record and checks everything that does not
// depend on the data section: known fields only, dtype, shape and offsets.
func parseEntry(name string, raw json.RawMessage) (entry, error) {
	fail := func(sentinel error, format string, args ...any) (entry, error) {
		return entry{}, fmt.Errorf("tensor %q: %w: %s", name, sentinel, fmt.Sprintf(format, args...))
	}
	if raw[0] != '{' {
		return fail(ErrInvalidHeader, "entry must be an object")
	}
	e := entry{name: name}
	var offsets []int64
	var haveDType, haveShape bool
	_, err := forEachMember(raw, func(key string, val json.RawMessage) error {
		var err error
		switch key {
		case "dtype":
			var s string
			s, err = parseString(val)
			e.dtype, haveDType = DType(s), true
		case "shape":
			e.shape, err = parseInts(val)
			haveShape = true
		case "data_offsets":
			offsets, err = parseInts(val)
		default:
			err = fmt.Errorf("unknown field %q", key)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidHeader, key, err)
		}
		return nil
	})
	if err != nil {
		return entry{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	switch {
	case !haveDType:
		return fail(ErrInvalidHeader, "missing dtype")
	case !haveShape:
		return fail(ErrInvalidHeader, "missing shape")
	case offsets == nil:
		return fail(ErrInvalidHeader, "missing data_offsets")
	case len(offsets) != 2:
		return fail(ErrInvalidOffsets, "want [begin, end], got %d values", len(offsets))
	}
	e.begin, e.end = offsets[0], offsets[1]
	want, err := byteLen(e.dtype, e.shape)
	if err != nil {
		return entry{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	switch {
	case e.begin < 0 || e.end < 0:
		return fail(ErrInvalidOffsets, "negative offset in [%d, %d]", e.begin, e.end)
	case e.end < e.begin:
		return fail(ErrInvalidOffsets, "end %d before begin %d", e.end, e.begin)
	case e.end-e.begin != want:
		return fail(ErrSizeMismatch, "offsets span %d bytes, %s %v needs %d", e.end-e.begin, e.dtype, e.shape, want)
	}
	return e, nil
}

// checkLayout requires the tensors to tile the data section exactly: no
// byte out of bounds, shared by two tensors, or owned by none. Zero-size
// tensors may sit at any boundary but not inside another tensor.
func checkLayout(entries []entry, bodyLen int64) error {
	for _, e := range entries {
		if e.end > bodyLen {
			return fmt.Errorf("safetensors: tensor %q: %w: [%d, %d] out of bounds of the %d-byte data section", e.name, ErrInvalidOffsets, e.begin, e.end, bodyLen)
		}
	}
	sorted := append([]entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name // deterministic error messages
	})
	var cursor int64
	prev := ""
	for _, e := range sorted {
		switch {
		case e.begin < cursor:
			return fmt.Errorf("safetensors: tensor %q: %w: [%d, %d] overlaps tensor %q ending at %d", e.name, ErrOverlap, e.begin, e.end, prev, cursor)
		case e.begin > cursor:
			return fmt.Errorf("safetensors: tensor %q: %w: bytes [%d, %d] before it belong to no tensor", e.name, ErrGap, cursor, e.begin)
		}
		if e.end > e.begin {
			prev = e.name
		}
		cursor = e.end
	}
	if cursor != bodyLen {
		return fmt.Errorf("safetensors: %w: %d trailing bytes after the last tensor (data section is %d bytes, tensors cover %d)", ErrGap, bodyLen-cursor, bodyLen, cursor)
	}
	return nil
}

// parseString accepts only a JSON string; json.Unmarshal alone would turn
// null into "" without complaint.
func parseString(raw json.RawMessage) (string, error) {
	if raw[0] != '"' {
		return "", fmt.Errorf("want a string, got %s", abbrev(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// parseInts accepts only an array of plain JSON integers. json.Unmarshal
// into []int64 would accept null (as an empty slice) and null elements (as
// 0), so each element is parsed by hand.
func parseInts(raw json.RawMessage) ([]int64, error) {
	if raw[0] != '[' {
		return nil, fmt.Errorf("want an array, got %s", abbrev(raw))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, err
	}
	out := make([]int64, len(elems))
	for i, el := range elems {
		v, err := strconv.ParseInt(string(el), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("element %d: want an int64, got %s", i, abbrev(el))
		}
		out[i] = v
	}
	return out, nil
}

// abbrev shortens a JSON value for error messages.
func abbrev(raw []byte) string {
	const max = 32
	if len(raw) > max {
		return string(raw[:max]) + "..."
	}
	return string(raw)
}
