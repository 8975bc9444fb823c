package images

import (
	"bytes"
	"context"
	"image"
)

// Peak is the most bytes the budget has held at once.
func (b *Budget) Peak() int64 { return b.peak.Load() }

// Hold takes n bytes of the budget until the returned func is called.
func (b *Budget) Hold(ctx context.Context, n int64) (func(), error) {
	held, err := b.acquire(ctx, n)
	if err != nil {
		return nil, err
	}
	return func() { b.release(held) }, nil
}

// DecodeCost is the bytes a decode of data takes from the budget (0 if its header is unreadable).
func DecodeCost(data []byte) int64 {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0
	}
	return decodeCost(format, cfg, data).bytes
}
