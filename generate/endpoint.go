package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
	"github.com/cachetlab/cachet/storage"
)

// SubjectFeatures resolves a ready subject's reference cache for a model (subjects.Service).
type SubjectFeatures interface {
	Features(ctx context.Context, id, modelID string) (*featurecache.Features, bool, error)
}

// Endpoint is the cachet.Generator behind POST /v1/generate: it validates the wire request, resolves the
// subject's cache, runs the service and returns the images inline or stores them in S3.
type Endpoint struct {
	gen      *Service
	subjects SubjectFeatures
	st       store
	objects  *storage.Objects
	// URLTTL is how long presigned image URLs stay valid.
	URLTTL time.Duration
}

// NewEndpoint wires the endpoint.
func NewEndpoint(gen *Service, subjects SubjectFeatures, db *storage.DB, objects *storage.Objects) *Endpoint {
	e := &Endpoint{gen: gen, subjects: subjects, objects: objects, URLTTL: 15 * time.Minute}
	if db != nil { // without a database, images are answered inline only
		e.st.pool = db.Pool
	}
	return e
}

var _ cachet.Generator = (*Endpoint)(nil)

func imageKey(id string) string { return "generations/" + id + ".png" }

// Generate answers one request. Bad input is refused before the subject is read or the model runs.
func (e *Endpoint) Generate(ctx context.Context, r cachet.GenerateRequest) (*cachet.GenerateResult, error) {
	return e.generate(ctx, randomIDs{}, r, nil)
}

// GenerateJob answers a queued request. The generation's and its images' ids derive from the job's, so a
// job run again after its worker died stores and records the same images, once.
func (e *Endpoint) GenerateJob(ctx context.Context, job string, r cachet.GenerateRequest, progress func(step, steps int)) (*cachet.GenerateResult, error) {
	return e.generate(ctx, jobIDs(job), r, progress)
}

// Validate checks a request as Generate would, without reading its subject or running the model.
func (e *Endpoint) Validate(r cachet.GenerateRequest) error {
	if err := checkOutput(r.Output); err != nil {
		return err
	}
	_, err := e.gen.RequestFrom(r)
	return err
}

func checkOutput(o string) error {
	switch o {
	case "", "inline", "url":
		return nil
	}
	return cachet.Errorf(cachet.CodeInvalidArgument, "output must be \"inline\" (base64 PNGs) or \"url\" (stored, presigned URLs); got %q", o)
}

// ids name a generation and its images.
type ids interface {
	batch() string
	image(i int) string
}

type randomIDs struct{}

func (randomIDs) batch() string    { return uuid.NewString() }
func (randomIDs) image(int) string { return uuid.NewString() }

// jobIDs are name-based UUIDs of a job's id.
type jobIDs string

func (j jobIDs) batch() string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:cachet:job:"+string(j))).String()
}
func (j jobIDs) image(i int) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "urn:cachet:job:%s:%d", j, i)).String()
}

func (e *Endpoint) generate(ctx context.Context, ids ids, r cachet.GenerateRequest, progress func(step, steps int)) (*cachet.GenerateResult, error) {
	start := time.Now()
	if err := checkOutput(r.Output); err != nil {
		return nil, err
	}
	req, err := e.gen.RequestFrom(r)
	if err != nil {
		return nil, err
	}
	req.Progress = progress
	out := &cachet.GenerateResult{ID: ids.batch(), SubjectID: r.SubjectID, Model: e.gen.ModelID(), Guidance: req.Guidance, CleanRenorm: req.CleanRenorm,
		Speed: req.Speed}
	if r.SubjectID != "" {
		t := time.Now()
		refs, hit, err := e.subjects.Features(ctx, r.SubjectID, e.gen.ModelID())
		if err != nil {
			return nil, err
		}
		if !e.gen.Personalized() {
			return nil, ErrNoAdapters
		}
		req.Refs = refs
		out.Reference = &cachet.ReferenceStats{Tokens: refs.Tokens, Blocks: refs.Blocks, Bytes: refs.Bytes(), CacheHit: hit}
		out.Timings.ReferenceMS = cachet.Millis(time.Since(t))
	}
	res, err := e.gen.Generate(ctx, req)
	if err != nil {
		return nil, err
	}
	out.Prompt, out.Width, out.Height = res.Prompt, res.W, res.H
	out.Timings.QueueMS, out.Timings.SamplingMS = cachet.Millis(res.Queue), cachet.Millis(res.Sampling)
	for _, d := range res.StepTimes {
		out.Timings.StepMS = append(out.Timings.StepMS, cachet.Millis(d))
	}
	out.Detail, out.BatchSize = res.Detail, res.BatchSize
	out.Cache = res.Cache

	t := time.Now()
	pngs, err := res.PNGs()
	if err != nil {
		return nil, fmt.Errorf("generate: encoding PNGs: %w", err)
	}
	for i, p := range pngs {
		img := cachet.GeneratedImage{Index: i, ID: ids.image(i), PNG: p}
		if r.Output == "url" {
			if img, err = e.storeImage(ctx, out, req, img, p); err != nil {
				return nil, err
			}
		}
		out.Images = append(out.Images, img)
	}
	out.Timings.OutputMS = cachet.Millis(time.Since(t))
	out.Timings.TotalMS = cachet.Millis(time.Since(start))
	return out, nil
}

// RequestFrom is the service's request for an API one: the one place a client's omitted fields get their
// defaults (Validate fills the rest) and the whole request is validated, before any subject is read. Refs
// stay nil: the caller resolves r.SubjectID.
func (s *Service) RequestFrom(r cachet.GenerateRequest) (Request, error) {
	req := Request{Prompt: r.Prompt, N: r.N, Seed: r.Seed, Speed: r.Speed, Steps: r.Steps, GuidanceRescale: r.GuidanceRescale,
		Cache: stepcache.Config{Name: r.Cache.Name, Params: r.Cache.Params}}
	switch {
	case r.Detail != nil:
		req.Detail = &Detail{Strength: *r.Detail, Settle: r.DetailSettle}
	case r.DetailSettle != 0: // settling nothing: Detail.Validate refuses it
		req.Detail = &Detail{Settle: r.DetailSettle}
	}
	req.Guidance, req.CleanRenorm = r.Sampling()
	if r.NegativeGuidance != nil && strings.TrimSpace(r.NegativePrompt) == "" {
		return Request{}, cachet.Errorf(cachet.CodeInvalidArgument, "negative_guidance scales a negative_prompt: give one too, or leave it out")
	}
	if req.NegativePrompt = r.NegativePrompt; r.NegativeGuidance != nil {
		req.NegativeGuidance = *r.NegativeGuidance
	} else if strings.TrimSpace(r.NegativePrompt) != "" {
		req.NegativeGuidance = DefaultNegativeGuidance
	}
	if r.ReferenceGuidance != "" {
		if r.SubjectID == "" {
			return Request{}, cachet.Errorf(cachet.CodeInvalidArgument, "reference_guidance applies to a subject: give subject_id too, or leave it out")
		}
		g, err := model.ParseReferenceGuidance(r.ReferenceGuidance)
		if err != nil {
			return Request{}, err
		}
		req.ReferenceGuidance = g
	}
	if err := s.Validate(&req); err != nil {
		return Request{}, err
	}
	return req, nil
}

// storeImage puts one image under generations/{id}.png, records it and presigns a URL.
func (e *Endpoint) storeImage(ctx context.Context, out *cachet.GenerateResult, req Request, img cachet.GeneratedImage, png []byte) (cachet.GeneratedImage, error) {
	i, id := img.Index, img.ID
	img.PNG, img.Key = nil, imageKey(id)
	if _, err := e.objects.PutBytes(ctx, img.Key, png, "image/png"); err != nil {
		return img, fmt.Errorf("generate: storing image %d: %w", i, err)
	}
	policy, err := json.Marshal(req.Cache)
	if err != nil {
		return img, fmt.Errorf("generate: %w", err)
	}
	var subject *string // a subject deleted meanwhile is recorded as none
	if out.SubjectID != "" {
		subject = &out.SubjectID
	}
	row := generationRow{id: id, batch: out.ID, index: i, subject: subject, prompt: out.Prompt, seed: req.Seed, steps: req.Steps,
		guidance: req.Guidance, cleanRenorm: req.CleanRenorm, cache: policy, key: img.Key, bytes: int64(len(png))}
	if err := e.st.insert(ctx, row); err != nil {
		return img, fmt.Errorf("generate: recording image %d: %w", i, err)
	}
	u, err := e.objects.PresignGet(ctx, img.Key, e.URLTTL)
	if err != nil {
		return img, err
	}
	img.URL = u.String()
	return img, nil
}

// SweepOrphans removes stored images that have no generations row and were written more than olderThan
// ago (a request that failed between storing an image and recording it); it returns how many it removed.
func (e *Endpoint) SweepOrphans(ctx context.Context, olderThan time.Duration) (int, error) {
	isID := func(id string) bool { _, err := uuid.Parse(id); return err == nil }
	return e.objects.RemoveOrphans(ctx, storage.Orphans{Prefix: "generations/",
		Owner: storage.OwnerBetween("generations/", ".png", isID), Existing: e.st.existing}, olderThan)
}
