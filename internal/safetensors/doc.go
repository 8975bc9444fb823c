// Package safetensors is Cachet's own strict codec for the Hugging Face
// safetensors format: an 8-byte little-endian header length, a JSON header
// mapping tensor names to dtype/shape/data_offsets (plus optional string
// metadata), then one data section holding every tensor's bytes.
//
// Why Cachet carries its own implementation instead of borrowing one:
//
//   - gotch, our torch binding, has no safetensors support, and the cgo
//     path would tie cache tooling to libtorch for what is a byte format.
//   - Model weights and feature caches are loaded unattended. A truncated
//     upload, a half-written cache or a writer bug must fail loudly at load
//     time, naming the tensor at fault, rather than surface later as silently
//     wrong activations. So Decode is deliberately stricter than the
//     reference implementation: the data section must be covered exactly
//     (no gaps, overlaps or trailing bytes), duplicate JSON keys and unknown
//     fields are errors, and numbers must be plain integers.
//   - Feature caches are content-addressed, so Encode must be deterministic:
//     tensors are laid out in sorted name order, header keys are sorted and
//     the header is space-padded to a multiple of 8 bytes, so equal Files
//     always produce identical bytes.
//
// The package is pure Go and has no dependency on gotch or cgo.
package safetensors
