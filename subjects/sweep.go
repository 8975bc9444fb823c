package subjects

import (
	"context"
	"strings"
	"time"

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
	objects, err := s.objects.List(ctx, "subjects/")
	if err != nil {
		return res, err
	}
	newest := orphanCandidates(objects)
	if len(newest) == 0 {
		return res, nil
	}
	ids := make([]string, 0, len(newest))
	for id := range newest {
		ids = append(ids, id)
	}
	existing, err := s.st.existing(ctx, ids)
	if err != nil {
		return res, err
	}
	for _, id := range existing {
		delete(newest, id)
	}
	cutoff := time.Now().Add(-s.opts.OrphanAfter)
	for id, last := range newest {
		if last.After(cutoff) { // may be an upload whose rows are about to commit
			continue
		}
		if err := s.objects.DeletePrefix(ctx, prefix(id)); err != nil {
			return res, err
		}
		res.OrphanSubjects++
	}
	return res, nil
}

// orphanCandidates maps each subject id found under subjects/ to its newest object's time. Keys that are
// not a subject's (no valid id) are left alone.
func orphanCandidates(objects []storage.ObjectInfo) map[string]time.Time {
	newest := map[string]time.Time{}
	for _, o := range objects {
		rest, ok := strings.CutPrefix(o.Key, "subjects/")
		if !ok {
			continue
		}
		id, _, ok := strings.Cut(rest, "/")
		if !ok || !validID(id) {
			continue
		}
		if t, seen := newest[id]; !seen || o.LastModified.After(t) {
			newest[id] = o.LastModified
		}
	}
	return newest
}
