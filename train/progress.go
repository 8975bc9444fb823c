package train

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar shows steps/s, samples/s, the loss EMA and the ETA.
type bar struct {
	pb    *progressbar.ProgressBar
	start time.Time
	from  int
}

func newBar(w io.Writer, total, from int) *bar {
	if w == nil {
		w = io.Discard
	}
	pb := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("train"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("steps"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(2*time.Second),
		progressbar.OptionSetWidth(24),
	)
	_ = pb.Set(from)
	return &bar{pb: pb, start: time.Now(), from: from}
}

func (b *bar) update(step int, lossEMA float64, batch int) {
	rate := float64((step-b.from)*batch) / time.Since(b.start).Seconds()
	b.pb.Describe(fmt.Sprintf("loss %.4f  %.0f samples/s", lossEMA, rate))
	_ = b.pb.Set(step)
}
