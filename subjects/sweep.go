package subjects

import (
	"context"

	"github.com/cachetlab/cachet/storage"
)

// SweepResult says what one Sweep repaired.
type SweepResult struct {
	// Failed is how many pending subjects whose build had stopped (no heartbeat for StaleAfter) were marked
	// failed, retryable.
	Failed int64
	// OrphanSubjects is how many subject prefixes with no subject row had their objects removed.
	OrphanSubjects int
}

// Sweep repairs what a crash or an outage left behind: pending subjects whose build stopped become failed
// (with a reason naming the retry), and objects under subjects/ with no subject row, untouched for
// Options.OrphanAfter, are removed (uploads that never committed, deletes the store refused).
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	failed, err := s.st.failStale(ctx, s.opts.StaleAfter)
	if err != nil {
		return res, err
	}
	res.Failed = failed
	res.OrphanSubjects, err = s.objects.RemoveOrphans(ctx, storage.Orphans{Prefix: "subjects/",
		Owner: storage.OwnerBetween("subjects/", "/", validID), Existing: s.st.existing}, s.opts.OrphanAfter)
	return res, err
}
