// Package subjects is the subject service: validate the references → store the originals in S3 → run the
// extraction pass → store the feature cache in S3 → write rows and pooled features to Postgres. A subject
// is ready only once its cache object is durable; a failure midway leaves no half-subject.
package subjects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/scene"
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
	// (a crashed server leaves its subjects pending); a running build refreshes its row four times as often.
	// Default 2 minutes.
	StaleAfter time.Duration
	// OrphanAfter is how long objects without a subject row are left alone before Sweep removes them (an
	// upload stores its originals before its rows commit). Default 10 minutes.
	OrphanAfter time.Duration
	// Queue, when set, builds caches on the job queue (a worker's BuildJob) instead of in the request.
	Queue Queue
}

// Queue is the job queue as the subject service submits to it (jobs.Queue).
type Queue interface {
	// SubmitTx queues a job inside tx and answers its id, and whether an earlier submission with the same
	// idempotency key made it.
	SubmitTx(ctx context.Context, tx pgx.Tx, j cachet.NewJob) (int64, bool, error)
	// Existing answers the job an earlier submission with j's idempotency key made (nil: none); a
	// different request under that key is CodeConflict.
	Existing(ctx context.Context, j cachet.NewJob) (*cachet.Job, error)
}

// BuildArgs are a subject job's arguments: the subject, the build that owns it, and the upload's
// fingerprint (so a reused idempotency key with other images is refused).
type BuildArgs struct {
	SubjectID string `json:"subject_id"`
	BuildID   string `json:"build_id"`
	Upload    string `json:"upload_sha256,omitempty"`
}

// DefaultOrphanAfter is Options.OrphanAfter's default.
const DefaultOrphanAfter = 10 * time.Minute

// Service is the subject service. The extractor may be nil (a server without a model): subjects can
// then be listed, read and deleted, not created.
type Service struct {
	st        store
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
		opts.StaleAfter = 2 * time.Minute
	}
	if opts.OrphanAfter == 0 {
		opts.OrphanAfter = DefaultOrphanAfter
	}
	return &Service{st: store{db.Pool}, objects: objects, extractor: extractor, caches: featurecache.NewLRU(opts.CacheBytes), opts: opts}
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

func (s *Service) validate(ctx context.Context, in *cachet.NewSubject) ([]*Reference, error) {
	in.Name = strings.TrimSpace(in.Name)
	in.Class = strings.ToLower(strings.TrimSpace(in.Class))
	switch {
	case in.Name == "":
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name is required: give the subject a name")
	case len([]rune(in.Name)) > s.opts.Limits.MaxNameLen:
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name has %d characters; at most %d", len([]rune(in.Name)), s.opts.Limits.MaxNameLen)
	}
	if in.Class != "" && !isClass(in.Class) {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "unknown class %q; use one of: %s", in.Class, strings.Join(scene.ClassNames[:], ", "))
	}
	if err := s.opts.Limits.CheckCount(in.Images); err != nil {
		return nil, err
	}
	refs := make([]*Reference, len(in.Images))
	for i, u := range in.Images {
		r, err := s.opts.Limits.Decode(ctx, i, u)
		if err != nil {
			return nil, err
		}
		refs[i] = r
	}
	return refs, nil
}

func isClass(c string) bool {
	for _, n := range scene.ClassNames {
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

// CreateSubject validates the upload, stores it and builds the subject's cache. Validation fails before
// anything is written. The originals go to the object store first, then the subject and its references are
// recorded in one transaction, so a subject row never lacks a reference; objects left behind by a failure
// (or a crash) before that commit have no row, and Sweep removes them. A failure after it leaves the subject
// failed, with its originals, for Retry.
func (s *Service) CreateSubject(ctx context.Context, in cachet.NewSubject) (*cachet.Subject, error) {
	refs, err := s.validate(ctx, &in)
	if err != nil {
		return nil, err
	}
	if s.opts.Queue != nil {
		return s.submit(ctx, in, refs)
	}
	if err := s.needModel(); err != nil {
		return nil, err
	}
	id, build := uuid.NewString(), uuid.NewString()
	stored, err := s.storeOriginals(ctx, id, refs)
	if err == nil {
		err = s.st.insertPending(ctx, id, build, in, refs, stored, nil)
	}
	if err != nil {
		s.removeObjects(id)
		return nil, err
	}
	if err := s.build(ctx, id, build, refs); err != nil {
		return nil, err
	}
	return s.getSubject(ctx, id)
}

// submit records a pending subject and queues the job that builds it, in one transaction. Under an
// idempotency key the subject's and build's ids derive from the key, so a repeated upload finds the first.
func (s *Service) submit(ctx context.Context, in cachet.NewSubject, refs []*Reference) (*cachet.Subject, error) {
	id, build := uuid.NewString(), uuid.NewString()
	if in.IdempotencyKey != "" {
		id = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:cachet:subject:"+in.IdempotencyKey)).String()
		build = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:cachet:subject-build:"+in.IdempotencyKey)).String()
	}
	job := cachet.NewJob{Kind: cachet.JobSubject, IdempotencyKey: in.IdempotencyKey, Target: "/v1/subjects/" + id,
		Args: BuildArgs{SubjectID: id, BuildID: build, Upload: fingerprint(in, refs)}}
	if in.IdempotencyKey != "" {
		// Checked before the originals are stored: they would overwrite the first upload's.
		if j, err := s.opts.Queue.Existing(ctx, job); err != nil || j != nil {
			if err != nil {
				return nil, err
			}
			return s.getSubject(ctx, id)
		}
	}
	stored, err := s.storeOriginals(ctx, id, refs)
	existing := false
	if err == nil {
		err = s.st.insertPending(ctx, id, build, in, refs, stored, func(tx pgx.Tx) (int64, error) {
			n, seen, err := s.opts.Queue.SubmitTx(ctx, tx, job)
			if err == nil && seen {
				existing = true
				return 0, errExisting
			}
			return n, err
		})
	}
	if existing { // a concurrent upload under the same key won: the objects are its own
		return s.getSubject(ctx, id)
	}
	if err != nil {
		s.removeObjects(id)
		return nil, err
	}
	return s.getSubject(ctx, id)
}

var errExisting = errors.New("subjects: an earlier upload under this idempotency key made the subject")

// fingerprint identifies an upload's content.
func fingerprint(in cachet.NewSubject, refs []*Reference) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", in.Name, in.Class)
	for _, r := range refs {
		h.Write(r.PNG)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// BuildJob is a subject job's work: build the cache for args' build, unless the subject is ready, was
// taken over by a retry or deleted. Run again after its worker died, it builds the same subject once.
func (s *Service) BuildJob(ctx context.Context, args BuildArgs) (*cachet.Subject, error) {
	if err := s.needModel(); err != nil {
		return nil, err
	}
	ok, err := s.st.reclaim(ctx, args.SubjectID, args.BuildID)
	if err != nil {
		return nil, err
	}
	sub, err := s.getSubject(ctx, args.SubjectID)
	if err != nil || !ok {
		return sub, err
	}
	refs, err := s.storedRefs(ctx, sub, args.BuildID)
	if err != nil {
		return nil, err
	}
	if err := s.build(ctx, sub.ID, args.BuildID, refs); err != nil {
		return nil, err
	}
	return s.getSubject(ctx, sub.ID)
}

// storeOriginals puts each reference's PNG under the subject's prefix.
func (s *Service) storeOriginals(ctx context.Context, id string, refs []*Reference) ([]storage.ObjectInfo, error) {
	out := make([]storage.ObjectInfo, len(refs))
	for n, r := range refs {
		info, err := s.objects.PutBytes(ctx, refKey(id, n), r.PNG, "image/png")
		if err != nil {
			return nil, fmt.Errorf("subjects: storing reference %d: %w", n, err)
		}
		out[n] = info
	}
	return out, nil
}

// removeObjects deletes a subject's objects, best effort: what stays behind is an orphan for Sweep.
func (s *Service) removeObjects(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.objects.DeletePrefix(ctx, prefix(id)); err != nil {
		slog.Warn("subjects: objects left for the sweeper", "subject", id, "err", err)
	}
}

// build extracts, stores the cache and marks the subject ready; on failure it marks the subject failed.
// build is the id of this attempt: only the attempt that owns the row may finish it, and it keeps the row's
// updated_at fresh while it runs, so a retry takes a subject over only when its build has stopped.
func (s *Service) build(ctx context.Context, id, build string, refs []*Reference) error {
	stop := s.heartbeat(ctx, id, build)
	err := s.buildCache(ctx, id, build, refs)
	stop()
	var superseded *supersededError
	if err == nil || errors.As(err, &superseded) {
		return err
	}
	reason := "building the feature cache failed; retry with POST /v1/subjects/" + id + "/retry"
	var de *cachet.Error
	if errors.As(err, &de) && de.Code != cachet.CodeInternal {
		reason = de.Message + "; retry with POST /v1/subjects/" + id + "/retry"
	}
	s.fail(ctx, id, build, reason)
	code := cachet.CodeOf(err)
	if code == cachet.CodeInternal {
		return fmt.Errorf("subjects: building %s: %w", id, err)
	}
	return cachet.Wrap(code, err, "subject %s failed: %s", id, reason)
}

// supersededError is a build's answer when a retry took its subject over: nothing of the subject changes.
type supersededError struct{ cause *cachet.Error }

func (e *supersededError) Error() string { return e.cause.Error() }
func (e *supersededError) Unwrap() error { return e.cause }

// heartbeat refreshes the pending row's updated_at while a build runs; the returned func stops it.
func (s *Service) heartbeat(ctx context.Context, id, build string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(s.opts.StaleAfter/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.st.heartbeat(ctx, id, build); err != nil && ctx.Err() == nil {
					slog.Warn("subjects: build heartbeat", "subject", id, "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// fail marks a pending subject failed with a reason a user can act on, even when ctx has ended, if build
// still owns it.
func (s *Service) fail(ctx context.Context, id, build, reason string) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.st.fail(fctx, id, build, reason); err != nil {
		slog.Error("subjects: marking failed", "subject", id, "err", err)
	}
}

func (s *Service) buildCache(ctx context.Context, id, build string, refs []*Reference) error {
	images := make([][]float32, len(refs))
	for i, r := range refs {
		images[i] = scene.ModelUnits(r.Canvas[:])
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
	ok, err := s.st.markReady(ctx, id, build, c, featurecache.Unit(mean), refPooled)
	if err != nil {
		return err
	}
	if !ok {
		now, err := s.getSubject(ctx, id)
		switch {
		case cachet.HasCode(err, cachet.CodeNotFound):
			s.removeObjects(id) // deleted while it was built: leave nothing behind
			return cachet.Errorf(cachet.CodeConflict, "subject %s was deleted while its cache was built", id)
		case err != nil:
			return err
		case now.Status == cachet.SubjectFailed:
			// Its heartbeat could not reach the database for longer than StaleAfter, and the sweeper gave up on it.
			return &supersededError{cachet.Errorf(cachet.CodeConflict, "subject %s: building lost contact with the database and was marked failed; retry with POST /v1/subjects/%s/retry", id, id)}
		}
		// A retry took the subject over: its build finishes it; this one leaves it alone.
		return &supersededError{cachet.Errorf(cachet.CodeConflict, "subject %s is being rebuilt by a retry; read it again shortly", id)}
	}
	s.caches.Add(featuresKey(id, c.SHA256), all)
	return nil
}
