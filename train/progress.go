package train

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar shows the step, steps/s, samples/s, the loss EMA and the ETA. It counts only this run's steps (a
// resumed run's earlier steps would inflate the rate and shrink the ETA); the description carries the
// absolute step.
type bar struct {
	pb          *progressbar.ProgressBar
	start       time.Time
	from, total int
}

func newBar(w io.Writer, total, from int) *bar {
	if w == nil {
		w = io.Discard
	}
	pb := progressbar.NewOptions(max(1, total-from),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("train"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("steps"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(2*time.Second),
		progressbar.OptionSetWidth(24),
	)
	return &bar{pb: pb, start: time.Now(), from: from, total: total}
}

func (b *bar) update(step int, lossEMA float64, batch int) {
	rate := float64((step-b.from)*batch) / time.Since(b.start).Seconds()
	b.pb.Describe(fmt.Sprintf("step %d/%d  loss %.4f  %.0f samples/s", step, b.total, lossEMA, rate))
	_ = b.pb.Set(step - b.from)
}
