package subjects

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/images"
	"github.com/cachetlab/cachet/storage"
)

// Get returns one subject with its references.
func (s *Service) Subject(ctx context.Context, id string) (*cachet.Subject, error) {
	return s.getSubject(ctx, id)
}

// List returns subjects, newest first.
func (s *Service) Subjects(ctx context.Context, o cachet.SubjectQuery) ([]*cachet.Subject, error) {
	if err := o.Normalize(); err != nil {
		return nil, err
	}
	return s.st.list(ctx, o)
}

// DeleteSubject removes a subject's rows, then its objects: a subject is never visible without an object
// it names. Objects the store cannot remove now have no row left, and Sweep removes them later.
func (s *Service) DeleteSubject(ctx context.Context, id string) error {
	if !validID(id) {
		return notFound(id)
	}
	deleted, err := s.st.delete(ctx, id)
	if err != nil {
		return err
	}
	if !deleted {
		return notFound(id)
	}
	s.caches.RemovePrefix(featuresKey(id, ""))
	if err := s.objects.DeletePrefix(ctx, prefix(id)); err != nil {
		slog.WarnContext(ctx, "subjects: objects of a deleted subject left for the sweeper", "subject", id, "err", err)
	}
	return nil
}

// Similar returns up to k ready subjects of the same model nearest to subject id by pooled features.
func (s *Service) SimilarSubjects(ctx context.Context, id string, k int) ([]*cachet.SimilarSubject, error) {
	k, err := cachet.SimilarK(k)
	if err != nil {
		return nil, err
	}
	sub, err := s.getSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	if sub.Status != cachet.SubjectReady {
		return nil, notReady(sub)
	}
	return s.st.similar(ctx, id, sub.Cache.Model, k)
}

func notReady(sub *cachet.Subject) error {
	switch sub.Status {
	case cachet.SubjectPending:
		return cachet.Errorf(cachet.CodeConflict, "subject %s is still being built; try again shortly", sub.ID)
	case cachet.SubjectFailed:
		return cachet.Errorf(cachet.CodeConflict, "subject %s failed (%s)", sub.ID, sub.Error)
	}
	return cachet.Errorf(cachet.CodeConflict, "subject %s is %s", sub.ID, sub.Status)
}

// Features returns a ready subject's decoded cache (from memory when it is there) for model modelID; hit
// says whether it came from memory. A cache of another model is a CodeConflict error naming the fix.
func (s *Service) Features(ctx context.Context, id, modelID string) (f *featurecache.Features, hit bool, err error) {
	sub, err := s.getSubject(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if sub.Status != cachet.SubjectReady {
		return nil, false, notReady(sub)
	}
	if sub.Cache.Model != modelID {
		return nil, false, cachet.Errorf(cachet.CodeConflict,
			"subject %s was extracted by model %s, but the server runs model %s; re-extract it with POST /v1/subjects/%s/retry", id, sub.Cache.Model, modelID, id)
	}
	// Keyed by the cache's digest too: a replica must not keep serving a cache that another one rebuilt.
	key := featuresKey(id, sub.Cache.SHA256)
	f, hit, err = s.caches.GetOrLoad(ctx, key, func(ctx context.Context) (*featurecache.Features, error) {
		data, _, err := s.objects.GetBytes(ctx, sub.Cache.Key)
		if err != nil {
			return nil, fmt.Errorf("subjects: reading the cache of %s: %w", id, err)
		}
		return featurecache.Decode(data, modelID)
	})
	if err != nil {
		return nil, false, err
	}
	if f.Model != modelID { // an entry from before a retry under another model
		s.caches.Remove(key)
		return s.Features(ctx, id, modelID)
	}
	return f, hit, nil
}

// featuresKey is a subject's decoded cache's key in memory: its id and the stored object's digest.
func featuresKey(id, sha256 string) string { return id + "@" + sha256 }

// CacheStats reports the in-memory cache of decoded features.
func (s *Service) CacheStats() featurecache.LRUStats { return s.caches.Stats() }

// Retry rebuilds the cache of a failed subject, a pending one left stale by a crash, or a ready one made
// by another model or another extraction (t_ref, views: adapters trained otherwise), from its stored originals.
func (s *Service) RetrySubject(ctx context.Context, id string) (*cachet.Subject, error) {
	sub, err := s.getSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	var ex *extraction
	switch {
	case s.extractor != nil:
		cfg := s.extractor.Config()
		ex = &extraction{model: s.extractor.ModelID(), tRef: cfg.TRef, views: cfg.NumViews()}
	case s.opts.Queue == nil:
		return nil, s.needModel()
	}
	build := uuid.NewString()
	var queue func(pgx.Tx) (int64, error)
	if s.opts.Queue != nil {
		queue = func(tx pgx.Tx) (int64, error) {
			n, _, err := s.opts.Queue.SubmitTx(ctx, tx, cachet.NewJob{Kind: cachet.JobSubject, Target: "/v1/subjects/" + id,
				Args: BuildArgs{SubjectID: id, BuildID: build}})
			return n, err
		}
	}
	claimed, err := s.st.claimRetry(ctx, id, build, s.opts.StaleAfter, ex, queue)
	if err != nil {
		return nil, err
	}
	if !claimed {
		if sub.Status == cachet.SubjectReady {
			return nil, cachet.Errorf(cachet.CodeConflict, "subject %s is ready with this model and extraction; nothing to retry", id)
		}
		return nil, cachet.Errorf(cachet.CodeConflict, "subject %s is being built; retry it only if it stays pending for %s", id, s.opts.StaleAfter)
	}
	if queue != nil {
		return s.getSubject(ctx, id)
	}
	refs, err := s.storedRefs(ctx, sub, build)
	if err != nil {
		return nil, err
	}
	if err := s.build(ctx, id, build, refs); err != nil {
		return nil, err
	}
	return s.getSubject(ctx, id)
}

// storedRefs reads a subject's originals back for build; one that cannot be read fails the subject.
func (s *Service) storedRefs(ctx context.Context, sub *cachet.Subject, build string) ([]*Reference, error) {
	id := sub.ID
	refs := make([]*Reference, len(sub.Refs))
	for i, r := range sub.Refs {
		data, _, err := s.objects.GetBytes(ctx, r.Key)
		if err == nil {
			refs[i], err = s.decodeStored(data, r)
		}
		if err != nil {
			if storage.IsUnavailable(err) || ctx.Err() != nil {
				return nil, err // the job is retried
			}
			slog.ErrorContext(ctx, "subjects: reading a stored original", "subject", id, "key", r.Key, "err", err)
			reason := fmt.Sprintf("reference %d cannot be read back from storage; delete the subject and upload it again", i)
			s.fail(ctx, id, build, reason)
			return nil, cachet.Wrap(cachet.CodeConflict, err, "subject %s: %s", id, reason)
		}
	}
	if len(refs) == 0 {
		reason := "the subject has no stored references; delete it and upload it again"
		s.fail(ctx, id, build, reason)
		return nil, cachet.Errorf(cachet.CodeConflict, "subject %s: %s", id, reason)
	}
	return refs, nil
}

func (s *Service) decodeStored(data []byte, r cachet.SubjectRef) (*Reference, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return &Reference{Format: r.Format, Width: r.Width, Height: r.Height, PNG: data, Canvas: images.ToCanvas(img)}, nil
}

// SubjectReference reads reference n of a subject back from the object store (the subject's row says
// which exist, and row-level security says whose it is).
func (s *Service) SubjectReference(ctx context.Context, id string, n int) ([]byte, error) {
	sub, err := s.getSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, r := range sub.Refs {
		if r.N == n {
			data, _, err := s.objects.GetBytes(ctx, r.Key)
			if err != nil {
				return nil, fmt.Errorf("subjects: reference %d of %s: %w", n, id, err)
			}
			return data, nil
		}
	}
	return nil, cachet.Errorf(cachet.CodeNotFound, "subject %s has references 0…%d (got %d)", id, len(sub.Refs)-1, n)
}
