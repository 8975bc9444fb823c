package images_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/images/imagestest"
)

// TestDecodeRefusesFromHeader: images whose decoding would take too much memory, which declare too many
// pixels for their size, or whose file is too short for its pixels are refused from their headers: in
// far under 100 ms and without allocating what they declare.
func TestDecodeRefusesFromHeader(t *testing.T) {
	gray := imagestest.ZeroPNG(t, 4096, 4096, 8, 0, false)
	tests := []struct {
		name string
		data []byte
		want cachet.Code
	}{
		// 128 MiB decoded from a ~130 KB file.
		{"16-bit RGBA PNG 4096²", imagestest.ZeroPNG(t, 4096, 4096, 16, 6, false), cachet.CodePayloadTooLarge},
		{"interlaced 8-bit RGBA PNG 4096²", imagestest.ZeroPNG(t, 4096, 4096, 8, 6, true), cachet.CodePayloadTooLarge},
		// 48 MiB of planes and 192 MiB of coefficients from a ~200 KB file.
		{"progressive JPEG 4096²", imagestest.FlatJPEG{Width: 4096, Height: 4096, Components: 3, Progressive: true}.Encode(), cachet.CodePayloadTooLarge},
		// 2.6 KB declaring 16.7 megapixels: 0.5 s of decoding and scaling.
		{"1-bit paletted PNG 4096²", imagestest.ZeroPNG(t, 4096, 4096, 1, 3, false), cachet.CodePayloadTooLarge},
		{"truncated gray PNG 4096²", gray[:1000], cachet.CodeInvalidArgument},
		{"truncated progressive JPEG 2048²", imagestest.FlatJPEG{Width: 2048, Height: 2048, Components: 1, Progressive: true}.Encode()[:2000], cachet.CodeInvalidArgument},
	}
	l := images.DefaultLimits()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := l.Decode(tc.name, tc.data)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if got := cachet.CodeOf(err); got != tc.want {
				t.Fatalf("Decode = %v (code %s), want %s", err, got, tc.want)
			}
			if elapsed > 100*time.Millisecond {
				t.Errorf("refused in %v", elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("refusing allocated %d bytes", alloc)
			}
		})
	}
}

// TestDecodeCostBoundsAllocation: what a decode takes from the budget is at least what decoding
// allocates, for each kind of image the decoders treat differently (the canvas's own buffers aside).
func TestDecodeCostBoundsAllocation(t *testing.T) {
	photo := imagestest.Pattern(1000, 700, 3)
	gray := image.NewGray(image.Rect(0, 0, 1000, 700))
	gray.Pix[5] = 255
	noise := image.NewPaletted(image.Rect(0, 0, 1000, 700), color.Palette{color.Black, color.White})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(rng.IntN(2))
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"8-bit RGBA PNG", imagestest.PNG(t, photo)},
		{"8-bit gray PNG", imagestest.PNG(t, gray)},
		{"16-bit RGBA PNG", imagestest.ZeroPNG(t, 1000, 700, 16, 6, false)},
		// DecodeConfig says Gray16; with tRNS it decodes to NRGBA64.
		{"16-bit gray PNG with tRNS", imagestest.WithChunk(t, imagestest.ZeroPNG(t, 1000, 700, 16, 0, false), "tRNS", []byte{0, 1})},
		{"interlaced 16-bit RGB PNG", imagestest.ZeroPNG(t, 1000, 700, 16, 2, true)},
		{"1-bit paletted PNG", imagestest.PNG(t, noise)},
		{"baseline JPEG 4:2:0", imagestest.JPEG(t, photo)},
		{"baseline gray JPEG", imagestest.JPEG(t, gray)},
		{"baseline CMYK JPEG", imagestest.FlatJPEG{Width: 1000, Height: 700, Components: 4}.Encode()},
		{"baseline RGB JPEG", imagestest.FlatJPEG{Width: 1000, Height: 700, Components: 3, RGB: true}.Encode()},
		{"progressive JPEG", imagestest.FlatJPEG{Width: 1000, Height: 700, Components: 3, Progressive: true}.Encode()},
		{"progressive gray JPEG", imagestest.FlatJPEG{Width: 1000, Height: 700, Components: 1, Progressive: true}.Encode()},
		{"progressive CMYK JPEG", imagestest.FlatJPEG{Width: 1000, Height: 700, Components: 4, Progressive: true}.Encode()},
	}
	const slack = 256 << 10 // the decoders' own buffers: zlib's window, a PNG's rows
	l := images.DefaultLimits()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cost := images.DecodeCost(tc.data)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := l.Decode(tc.name, tc.data); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			alloc := int64(after.TotalAlloc - before.TotalAlloc)
			if alloc > cost+slack {
				t.Fatalf("decoding allocated %d bytes; its cost says %d", alloc, cost)
			}
			t.Logf("allocated %.1f MiB, cost %.1f MiB", float64(alloc)/(1<<20), float64(cost)/(1<<20))
		})
	}
}

// TestBudgetBoundsConcurrentDecodes: many decodes at once never hold more than their budget together,
// yet all finish.
func TestBudgetBoundsConcurrentDecodes(t *testing.T) {
	imgs := [][]byte{
		imagestest.PNG(t, imagestest.Pattern(300, 200, 1)),
		imagestest.JPEG(t, imagestest.Pattern(200, 300, 2)),
		imagestest.ZeroPNG(t, 400, 400, 16, 6, false),
		imagestest.FlatJPEG{Width: 256, Height: 256, Components: 3, Progressive: true}.Encode(),
	}
	var largest int64
	for _, data := range imgs {
		largest = max(largest, images.DecodeCost(data))
	}
	l := images.DefaultLimits()
	l.Budget = images.NewBudget(largest + largest/2) // room for one large image and some small ones
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			if _, err := l.DecodeContext(context.Background(), "image", imgs[i%len(imgs)]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if peak := l.Budget.Peak(); peak > l.Budget.Size() || peak < largest {
		t.Fatalf("peak %d bytes in flight; budget %d, largest image %d", peak, l.Budget.Size(), largest)
	}
	if n := l.Budget.InFlight(); n != 0 {
		t.Fatalf("%d bytes still held after every decode", n)
	}
}

// TestDecodeWaitsForBudget: a decode waits while the budget is spent and proceeds once it is returned;
// when its context ends first it gives up with the context's error.
func TestDecodeWaitsForBudget(t *testing.T) {
	data := imagestest.PNG(t, imagestest.Pattern(64, 64, 1))
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		release time.Duration // when the budget comes back (0: never)
		code    cachet.Code   // "": decoded
		cause   error
	}{
		{"budget returned", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, 50 * time.Millisecond, "", nil},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 30*time.Millisecond)
		}, 0, cachet.CodeUnavailable, context.DeadlineExceeded},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(30*time.Millisecond, cancel)
			return ctx, cancel
		}, 0, cachet.CodeCanceled, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := images.DefaultLimits()
			l.Budget = images.NewBudget(images.DecodeCost(data))
			release, err := l.Budget.Hold(context.Background(), l.Budget.Size())
			if err != nil {
				t.Fatal(err)
			}
			var released atomic.Bool
			if tc.release > 0 {
				time.AfterFunc(tc.release, func() { released.Store(true); release() })
			} else {
				defer release()
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			_, err = l.DecodeContext(ctx, "image", data)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !released.Load() {
					t.Fatal("decoded before the budget came back")
				}
				return
			}
			if cachet.CodeOf(err) != tc.code || !errors.Is(err, tc.cause) {
				t.Fatalf("DecodeContext = %v; want code %s wrapping %v", err, tc.code, tc.cause)
			}
		})
	}
}

// TestDecodeLargerThanBudget: an image allowed by MaxDecodedBytes but larger than the whole budget waits
// for all of it instead of forever.
func TestDecodeLargerThanBudget(t *testing.T) {
	l := images.Limits{MinSide: 8, MaxSide: 4096, MaxDecodedBytes: 1 << 30, Budget: images.NewBudget(1024)}
	if _, err := l.Decode("image", imagestest.PNG(t, imagestest.Pattern(100, 100, 1))); err != nil {
		t.Fatal(err)
	}
	if peak := l.Budget.Peak(); peak != 1024 {
		t.Fatalf("peak %d, want the whole budget", peak)
	}
}
