// Package cachettest holds in-memory implementations of Cachet's service interfaces (cachet.Generator,
// cachet.SubjectService, cachet.Classifier) for tests of their consumers, such as the API's handlers, that
// need neither a model nor Postgres nor an object store. They keep the services' contracts (ids, not-found
// and conflict errors, paging, defaults), not their numbers: images are blank, scores are made up.
package cachettest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
)

// Generator answers every valid request with n blank 32×32 PNGs; Requests records what it was asked.
type Generator struct {
	mu       sync.Mutex
	Requests []cachet.GenerateRequest
}

var _ cachet.Generator = (*Generator)(nil)

// Validate checks what the real service checks first: a prompt, 1…16 images.
func (g *Generator) Validate(req cachet.GenerateRequest) error {
	switch {
	case req.Prompt == "":
		return cachet.Errorf(cachet.CodeInvalidArgument, "the prompt is empty")
	case req.N < 0 || req.N > 16:
		return cachet.Errorf(cachet.CodeInvalidArgument, "n must be between 1 and 16 (got %d)", req.N)
	}
	return nil
}

// Generate validates and answers blank images.
func (g *Generator) Generate(_ context.Context, req cachet.GenerateRequest) (*cachet.GenerateResult, error) {
	if err := g.Validate(req); err != nil {
		return nil, err
	}
	if req.N == 0 {
		req.N = 1
	}
	g.mu.Lock()
	g.Requests = append(g.Requests, req)
	g.mu.Unlock()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 32, 32))); err != nil {
		return nil, err
	}
	guidance, renorm := req.Sampling()
	res := &cachet.GenerateResult{ID: uuid.NewString(), Prompt: req.Prompt, SubjectID: req.SubjectID, Model: "fake",
		Width: 32, Height: 32, Guidance: guidance, CleanRenorm: renorm}
	for i := range req.N {
		res.Images = append(res.Images, cachet.GeneratedImage{Index: i, ID: uuid.NewString(), PNG: buf.Bytes()})
	}
	return res, nil
}

// Subjects keeps subjects in memory; every upload is ready at once.
type Subjects struct {
	mu    sync.Mutex
	byID  map[string]*cachet.Subject
	refs  map[string][][]byte // the uploaded images, by subject id
	order []string            // oldest first
}

var _ cachet.SubjectService = (*Subjects)(nil)

// NewSubjects is an empty store.
func NewSubjects() *Subjects {
	return &Subjects{byID: map[string]*cachet.Subject{}, refs: map[string][][]byte{}}
}

// UploadLimits are the real service's defaults.
func (s *Subjects) UploadLimits() cachet.UploadLimits {
	return cachet.UploadLimits{MaxImages: 8, MaxImageBytes: 8 << 20, MaxTotalBytes: 24 << 20}
}

// CreateSubject needs a name and 1…8 PNG or JPEG files.
func (s *Subjects) CreateSubject(_ context.Context, in cachet.NewSubject) (*cachet.Subject, error) {
	switch lim := s.UploadLimits(); {
	case in.Name == "":
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "name is required: give the subject a name")
	case len(in.Images) == 0 || len(in.Images) > lim.MaxImages:
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "%d images: a subject takes 1 to %d reference images", len(in.Images), lim.MaxImages)
	}
	now := time.Now().UTC()
	sub := &cachet.Subject{ID: uuid.NewString(), Name: in.Name, Class: in.Class, Status: cachet.SubjectReady, CreatedAt: now, UpdatedAt: now}
	for n, u := range in.Images {
		format := map[string]string{"image/png": "png", "image/jpeg": "jpeg"}[http.DetectContentType(u.Data)]
		if format == "" {
			return nil, cachet.Errorf(cachet.CodeUnsupportedMedia, "image %d (%s) is not PNG or JPEG", n, u.Filename)
		}
		sum := sha256.Sum256(u.Data)
		sub.Refs = append(sub.Refs, cachet.SubjectRef{N: n, Key: fmt.Sprintf("subjects/%s/refs/%d.png", sub.ID, n),
			SHA256: hex.EncodeToString(sum[:]), Bytes: int64(len(u.Data)), Format: format})
	}
	sub.Cache = &cachet.SubjectCache{Key: "subjects/" + sub.ID + "/cache.safetensors", Model: "fake", Views: 1}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[sub.ID] = sub
	for _, u := range in.Images {
		s.refs[sub.ID] = append(s.refs[sub.ID], u.Data)
	}
	s.order = append(s.order, sub.ID)
	return clone(sub), nil
}

func clone(s *cachet.Subject) *cachet.Subject {
	c := *s
	c.Refs = slices.Clone(s.Refs)
	return &c
}

func notFound(id string) error {
	return cachet.Errorf(cachet.CodeNotFound, "no subject %q; list them with GET /v1/subjects", id)
}

// Subject reads one.
func (s *Subjects) Subject(_ context.Context, id string) (*cachet.Subject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.byID[id]
	if !ok {
		return nil, notFound(id)
	}
	return clone(sub), nil
}

// Subjects pages newest first.
func (s *Subjects) Subjects(_ context.Context, q cachet.SubjectQuery) ([]*cachet.Subject, error) {
	if err := q.Normalize(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*cachet.Subject{}
	for i := len(s.order) - 1; i >= 0; i-- {
		sub := s.byID[s.order[i]]
		if q.Status == "" || sub.Status == q.Status {
			out = append(out, clone(sub))
		}
	}
	out = out[min(q.Offset, len(out)):]
	return out[:min(q.Limit, len(out))], nil
}

// DeleteSubject removes one.
func (s *Subjects) DeleteSubject(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; !ok {
		return notFound(id)
	}
	delete(s.byID, id)
	delete(s.refs, id)
	s.order = slices.DeleteFunc(s.order, func(x string) bool { return x == id })
	return nil
}

// SimilarSubjects answers the other subjects, newest first, at made-up similarities.
func (s *Subjects) SimilarSubjects(ctx context.Context, id string, k int) ([]*cachet.SimilarSubject, error) {
	k, err := cachet.SimilarK(k)
	if err != nil {
		return nil, err
	}
	if _, err := s.Subject(ctx, id); err != nil {
		return nil, err
	}
	all, err := s.Subjects(ctx, cachet.SubjectQuery{Limit: 200})
	if err != nil {
		return nil, err
	}
	out := []*cachet.SimilarSubject{}
	for _, sub := range all {
		if sub.ID != id && len(out) < k {
			out = append(out, &cachet.SimilarSubject{Subject: *sub, Similarity: 1 / float64(len(out)+2)})
		}
	}
	return out, nil
}

// RetrySubject: every fake subject is ready, so there is nothing to retry.
func (s *Subjects) RetrySubject(ctx context.Context, id string) (*cachet.Subject, error) {
	if _, err := s.Subject(ctx, id); err != nil {
		return nil, err
	}
	return nil, cachet.Errorf(cachet.CodeConflict, "subject %s is ready with this model and extraction; nothing to retry", id)
}

// SubjectReference is the image uploaded as reference n (as uploaded: the real service stores PNG).
func (s *Subjects) SubjectReference(_ context.Context, id string, n int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs, ok := s.refs[id]
	switch {
	case !ok:
		return nil, notFound(id)
	case n < 0 || n >= len(refs):
		return nil, cachet.Errorf(cachet.CodeNotFound, "subject %s has references 0…%d (got %d)", id, len(refs)-1, n)
	}
	return refs[n], nil
}
