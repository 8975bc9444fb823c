package images

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

const (
	// DefaultMaxDecodedBytes bounds one decode's memory: an 8-bit RGB(A) 4096×4096 PNG (64 MiB), a
	// baseline JPEG of any subsampling at 4096×4096 (at most 48 MiB) and a 4:2:0 progressive JPEG of about
	// 13 megapixels fit; a 16-bit RGBA 4096×4096 PNG (128 MiB) or a 4096×4096 progressive JPEG (120 MiB
	// and more) do not.
	DefaultMaxDecodedBytes = 96 << 20
	// DefaultDecodeBudget bounds the decoded bytes held at once by all decodes of the process: one image
	// of the largest size at a time, or dozens of ordinary photos.
	DefaultDecodeBudget = 128 << 20
	// MaxPixelsPerByte bounds the pixels a file may declare for each of its bytes, so decoding and
	// scaling work (about 30–70 ns a pixel) stays proportional to what was sent: a 2.6 KB 1-bit PNG
	// declaring 4096×4096 pixels took 0.5 s. Only nearly uniform low-depth PNGs come near it; a JPEG
	// cannot pass 512 (a bit a block), an 8-bit RGB PNG 340 (deflate's 1032:1).
	MaxPixelsPerByte = 1024
)

// Budget bounds the decoded bytes held at once by every decode sharing it, so concurrent requests cannot
// together decode more than the server can hold: a decode waits for its share first. Waits are served in
// order, so a large image is not starved by a stream of small ones.
type Budget struct {
	size  int64
	sem   *semaphore.Weighted
	inUse atomic.Int64
	peak  atomic.Int64 // the most inUse has been
}

// NewBudget is a budget of size bytes (at least 1).
func NewBudget(size int64) *Budget {
	size = max(size, 1)
	return &Budget{size: size, sem: semaphore.NewWeighted(size)}
}

// shared is the budget of every Limits without its own.
var shared = NewBudget(DefaultDecodeBudget)

// SharedBudget is the process-wide budget used by Limits whose Budget is nil.
func SharedBudget() *Budget { return shared }

// Size is the budget's capacity in bytes.
func (b *Budget) Size() int64 { return b.size }

// InFlight is the decoded bytes held right now.
func (b *Budget) InFlight() int64 { return b.inUse.Load() }

// acquire waits for n bytes while ctx lives and returns what it holds (what to release): an image larger
// than the whole budget holds all of it rather than waiting forever.
func (b *Budget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.size)
	if err := ctx.Err(); err != nil { // Acquire may succeed on a done ctx; the work would be wasted
		return 0, err
	}
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, err
	}
	cur := b.inUse.Add(n)
	for p := b.peak.Load(); cur > p && !b.peak.CompareAndSwap(p, cur); p = b.peak.Load() {
	}
	return n, nil
}

func (b *Budget) release(n int64) {
	b.inUse.Add(-n)
	b.sem.Release(n)
}
