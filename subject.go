package cachet

import "time"

// SubjectStatus is where a subject is in its life: pending while its cache is built, ready once the cache
// object is durable, failed (with a reason) when building stopped; a failed subject can be retried.
type SubjectStatus string

const (
	SubjectPending SubjectStatus = "pending"
	SubjectReady   SubjectStatus = "ready"
	SubjectFailed  SubjectStatus = "failed"
)

// Subject is a named set of reference images and the DreamCache feature cache made from them.
type Subject struct {
	ID     string        `json:"id"`
	Name   string        `json:"name"`
	Class  string        `json:"class,omitempty"`
	Status SubjectStatus `json:"status"`
	// Error says why building failed (status failed).
	Error string `json:"error,omitempty"`
	// Refs are the stored reference images, in upload order.
	Refs []SubjectRef `json:"refs"`
	// Cache describes the feature cache (ready subjects).
	Cache     *SubjectCache `json:"cache,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	// JobID is the job that builds the cache (a queued server's latest build), to follow at /v1/jobs/{id}.
	JobID string `json:"job_id,omitempty"`
}

// SubjectRef is one stored reference image (the original, as PNG).
type SubjectRef struct {
	N      int    `json:"n"`
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Format string `json:"format"` // as uploaded: png or jpeg
}

// SubjectCache describes a subject's feature cache object.
type SubjectCache struct {
	Key    string  `json:"key"`
	SHA256 string  `json:"sha256"`
	Bytes  int64   `json:"bytes"`
	Model  string  `json:"model"`
	Blocks []int   `json:"blocks"`
	TRef   float64 `json:"t_ref"`
	// Views is how many views of each reference the cache holds: 1 (as uploaded) or 2 (also small).
	Views int `json:"views"`
}

// SimilarSubject is a neighbour of a subject by pooled features (cosine).
type SimilarSubject struct {
	Subject
	// Similarity is the cosine similarity of the pooled features (1 = identical).
	Similarity float64 `json:"similarity"`
}
