// Package subjects is the subject service: validate the references → store the originals in S3 → run the
// extraction pass → store the feature cache in S3 → write rows and pooled features to Postgres. A subject
// is ready only once its cache object is durable; a failure midway leaves no half-subject.
package subjects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/storage"
)

// Extractor runs the reference extraction pass (featurecache.Extractor).
type Extractor interface {
	Extract(ctx context.Context, images [][]float32) ([]*featurecache.Features, error)
	ModelID() string
	Config() featurecache.Config
}

// Options configure the service.
type Options struct {
	Limits Limits
	// CacheBytes bounds the in-memory LRU of decoded caches (default 256 MiB).
	CacheBytes int64
	// StaleAfter is how long a pending subject may go without progress before a retry may take it over
	// (a crashed server leaves its subjects pending). Default 10 minutes.
	StaleAfter time.Duration
}

// Service is the subject service. The extractor may be nil (a server without a model): subjects can
// then be listed, read and deleted, not created.
type Service struct {
	db        *storage.DB
	objects   *storage.Objects
	extractor Extractor
	caches    *featurecache.LRU
	opts      Options
}

// New builds the service.
func New(db *storage.DB, objects *storage.Objects, extractor Extractor, opts Options) *Service {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 256 << 20
	}
	if opts.StaleAfter == 0 {
		opts.StaleAfter = 10 * time.Minute
	}
	return &Service{db: db, objects: objects, extractor: extractor, caches: featurecache.NewLRU(opts.CacheBytes), opts: opts}
}

// UploadLimits are the upload limits in force.
func (s *Service) UploadLimits() cachet.UploadLimits {
	l := s.opts.Limits
	return cachet.UploadLimits{MaxImages: l.MaxImages, MaxImageBytes: l.MaxImageBytes, MaxTotalBytes: l.MaxTotalBytes}
}

var _ cachet.SubjectService = (*Service)(nil)

func refKey(id string, n int) string { return fmt.Sprintf("subjects/%s/refs/%d.png", id, n) }
func cacheKey(id string) string      { return fmt.Sprintf("subjects/%s/cache.safetensors", id) }
func prefix(id string) string        { return fmt.Sprintf("subjects/%s/", id) }

// validID says whether id can be a subject id (a canonical UUID), so a malformed one is a plain 404.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func (s *Service) validate(in *cachet.NewSubject) ([]*Reference, error) {
	in.Name = strings.TrimSpace(in.Name)
	in.Class = strings.ToLower(strings.TrimSpace(in.Class))
	switch {
	case in.Name == "":
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name is required: give the subject a name")
	case len([]rune(in.Name)) > s.opts.Limits.MaxNameLen:
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name has %d characters; at most %d", len([]rune(in.Name)), s.opts.Limits.MaxNameLen)
	}
	if in.Class != "" && !isClass(in.Class) {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "unknown class %q; use one of: %s", in.Class, strings.Join(dataset.ClassNames[:], ", "))
	}
	if err := s.opts.Limits.CheckCount(in.Images); err != nil {
		return nil, err
	}
	refs := make([]*Reference, len(in.Images))
	for i, u := range in.Images {
		r, err := s.opts.Limits.Decode(i, u)
		if err != nil {
			return nil, err
		}
		refs[i] = r
	}
	return refs, nil
}

func isClass(c string) bool {
	for _, n := range dataset.ClassNames {
		if n == c {
			return true
		}
	}
	return false
}

func (s *Service) needModel() error {
	if s.extractor == nil {
		return cachet.Errorf(cachet.CodeUnavailable, "no model loaded: subjects cannot be extracted; train the base model with `cachet train base` or point --weights at one")
	}
	return nil
}

// Create validates the upload, stores it and builds the subject's cache. Validation fails before anything
// is written. A failure while storing the originals removes everything written; a failure after that
// leaves the subject failed, with its originals, for Retry.
func (s *Service) CreateSubject(ctx context.Context, in cachet.NewSubject) (*cachet.Subject, error) {
	refs, err := s.validate(&in)
	if err != nil {
		return nil, err
	}
	if err := s.needModel(); err != nil {
		return nil, err
	}
	var id string
	err = s.db.Pool.QueryRow(ctx, `INSERT INTO subjects (name, class, status, ref_count) VALUES ($1, nullif($2, ''), 'pending', $3)
		RETURNING id::text`, in.Name, in.Class, len(refs)).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("subjects: creating: %w", err)
	}
	if err := s.storeOriginals(ctx, id, refs); err != nil {
		s.remove(id)
		return nil, err
	}
	if err := s.build(ctx, id, refs); err != nil {
		return nil, err
	}
	return s.getSubject(ctx, id)
}

func (s *Service) storeOriginals(ctx context.Context, id string, refs []*Reference) error {
	batch := make([][]any, len(refs))
	for n, r := range refs {
		info, err := s.objects.PutBytes(ctx, refKey(id, n), r.PNG, "image/png")
		if err != nil {
			return fmt.Errorf("subjects: storing reference %d: %w", n, err)
		}
		batch[n] = []any{id, n, info.Key, info.SHA256, info.Size, r.Width, r.Height, r.Format}
	}
	for _, row := range batch {
		_, err := s.db.Pool.Exec(ctx, `INSERT INTO subject_refs (subject_id, n, object_key, sha256, bytes, width, height, format)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, row...)
		if err != nil {
			return fmt.Errorf("subjects: recording reference: %w", err)
		}
	}
	return nil
}

// remove deletes a subject's objects and rows, on a context of its own: it cleans up after a request
// that may itself have been canceled.
func (s *Service) remove(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.caches.Remove(id)
	if err := s.objects.DeletePrefix(ctx, prefix(id)); err != nil {
		slog.Error("subjects: cleaning up objects", "subject", id, "err", err)
	}
	if _, err := s.db.Pool.Exec(ctx, `DELETE FROM subjects WHERE id = $1`, id); err != nil {
		slog.Error("subjects: cleaning up rows", "subject", id, "err", err)
	}
}

// build extracts, stores the cache and marks the subject ready; on failure it marks the subject failed.
func (s *Service) build(ctx context.Context, id string, refs []*Reference) error {
	err := s.buildCache(ctx, id, refs)
	if err == nil {
		return nil
	}
	reason := "building the feature cache failed; retry with POST /v1/subjects/" + id + "/retry"
	var de *cachet.Error
	if errors.As(err, &de) && de.Code != cachet.CodeInternal {
		reason = de.Message + "; retry with POST /v1/subjects/" + id + "/retry"
	}
	s.fail(ctx, id, reason)
	code := cachet.CodeOf(err)
	if code == cachet.CodeInternal {
		return fmt.Errorf("subjects: building %s: %w", id, err)
	}
	return cachet.Wrap(code, err, "subject %s failed: %s", id, reason)
}

// fail marks a pending subject failed with a reason a user can act on, even when ctx has ended.
func (s *Service) fail(ctx context.Context, id, reason string) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.db.Pool.Exec(fctx, `UPDATE subjects SET status = 'failed', error = $2, updated_at = now() WHERE id = $1 AND status = 'pending'`, id, reason); err != nil {
		slog.Error("subjects: marking failed", "subject", id, "err", err)
	}
}

func (s *Service) buildCache(ctx context.Context, id string, refs []*Reference) error {
	images := make([][]float32, len(refs))
	for i, r := range refs {
		images[i] = dataset.ModelUnits(r.Canvas[:])
	}
	feats, err := s.extractor.Extract(ctx, images)
	if err != nil {
		return err
	}
	cfg := s.extractor.Config()
	refPooled := make([][]float32, len(feats))
	mean := make([]float64, 0)
	for i, f := range feats {
		if refPooled[i], err = f.Pooled(cfg.Blocks); err != nil {
			return err
		}
		if i == 0 {
			mean = make([]float64, len(refPooled[i]))
		}
		for d, v := range refPooled[i] {
			mean[d] += float64(v)
		}
	}
	all, err := featurecache.Concat(feats)
	if err != nil {
		return err
	}
	data, err := featurecache.Encode(all)
	if err != nil {
		return err
	}
	info, err := s.objects.PutBytes(ctx, cacheKey(id), data, featurecache.ContentType)
	if err != nil {
		return fmt.Errorf("subjects: storing the cache: %w", err)
	}
	// Durable means readable back with the content we wrote, not just acknowledged.
	st, err := s.objects.Stat(ctx, cacheKey(id))
	if err != nil {
		return fmt.Errorf("subjects: checking the stored cache: %w", err)
	}
	if st.SHA256 != info.SHA256 || st.Size != int64(len(data)) {
		return fmt.Errorf("subjects: the stored cache reads back as %d bytes sha256 %s, wrote %d bytes sha256 %s", st.Size, st.SHA256, len(data), info.SHA256)
	}
	c := cachet.SubjectCache{Key: info.Key, SHA256: info.SHA256, Bytes: info.Size, Model: all.Model, Blocks: all.Blocks, TRef: all.TRef, Views: all.Views}
	ok, err := s.markReady(ctx, id, c, featurecache.Unit(mean), refPooled)
	if err != nil {
		return err
	}
	if !ok { // deleted (or taken over) while it was being built: leave nothing behind
		s.remove(id)
		return cachet.Errorf(cachet.CodeConflict, "subject %s was deleted while its cache was built", id)
	}
	s.caches.Add(id, all)
	return nil
}
