package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// MaxClassifyBody bounds a collections/classify request body (base64 images).
const MaxClassifyBody = 32 << 20

// Wire types of the classification endpoints. Images travel as base64 PNG or JPEG: a 28×28 item or a
// 32×32 canvas (other square sizes are resized to an item).
type (
	// CreateCollectionBody is POST /v1/collections.
	CreateCollectionBody struct {
		Name   string   `json:"name"`
		Labels []string `json:"labels"`
		Alpha  *float64 `json:"alpha,omitempty"`
		Beta   *float64 `json:"beta,omitempty"`
	}
	// SampleBody is one sample of POST /v1/collections/{id}/samples; Label is optional.
	SampleBody struct {
		Image []byte `json:"image"` // base64
		Label string `json:"label,omitempty"`
	}
	// AddSamplesBody is POST /v1/collections/{id}/samples.
	AddSamplesBody struct {
		Samples []SampleBody `json:"samples"`
	}
	// BuildBody is POST /v1/collections/{id}/build (optional).
	BuildBody struct {
		Method string   `json:"method,omitempty"` // "tfup", "tip-adapter" or empty (automatic)
		Values string   `json:"values,omitempty"` // tip-adapter: "labels" (default) or "solved"
		Lambda *float64 `json:"lambda,omitempty"` // the solve's ridge (values "solved")
		Tune   bool     `json:"tune,omitempty"`   // tip-adapter: α, β (and λ) by leave-one-out on the labelled samples
		Whiten *bool    `json:"whiten,omitempty"` // classify in the samples' whitened space (default: on for TFUP over ≥ 256 samples)
		// spread labels over the samples' neighbourhood graph (default: on over ≥ 256 samples, some unlabelled)
		Propagate *bool `json:"propagate,omitempty"`
		// answer 202 with the queued job at once (servers with a job queue)
		Async bool `json:"async,omitempty"`
	}
	// ClassifyBody is POST /v1/classify: Collection empty → the model's built-in classes, zero-shot.
	ClassifyBody struct {
		Collection string   `json:"collection,omitempty"`
		Images     [][]byte `json:"images"` // base64
		TopK       int      `json:"top_k,omitempty"`
		// "diffusion": add the diffusion classifier's logits (slower: about 0.4 s an image, 32 images at most)
		Rerank string `json:"rerank,omitempty"`
	}
	// CollectionsBody is GET /v1/collections.
	CollectionsBody struct {
		Collections []cachet.Collection `json:"collections"`
	}
)

// classifyRoutes registers the collection and classification endpoints.
func (s *Server) classifyRoutes(e *gin.Engine) {
	e.POST("/v1/collections", s.createCollection)
	e.GET("/v1/collections", s.listCollections)
	e.GET("/v1/collections/:id", s.getCollection)
	e.POST("/v1/collections/:id/samples", s.addSamples)
	e.POST("/v1/collections/:id/build", s.buildCollection)
	e.POST("/v1/classify", s.classify)
}

// classifier returns the service, or answers 503 when the server runs without a model.
func (s *Server) classifier(c *gin.Context) cachet.Classifier {
	if s.opts.Classifier == nil {
		writeError(c, cachet.Errorf(cachet.CodeUnavailable, "classification needs the denoiser, and this server runs without one; start it with --weights"))
		return nil
	}
	return s.opts.Classifier
}

// bindJSON decodes a bounded JSON body into v; optional bodies may be empty.
func bindJSON(c *gin.Context, v any, optional bool) bool {
	err := decodeJSON(c, v, MaxClassifyBody, optional)
	if err == nil {
		return true
	}
	if cachet.HasCode(err, cachet.CodePayloadTooLarge) {
		err = cachet.Errorf(cachet.CodePayloadTooLarge, "request body over %d MiB; send fewer images per request", MaxClassifyBody>>20)
	}
	writeError(c, err)
	return false
}

func (s *Server) createCollection(c *gin.Context) {
	svc := s.classifier(c)
	var b CreateCollectionBody
	if svc == nil || !bindJSON(c, &b, false) {
		return
	}
	if err := s.checkQuota(c, "collections"); err != nil {
		writeError(c, err)
		return
	}
	col, err := svc.CreateCollection(c.Request.Context(), cachet.NewCollection{Name: b.Name, Labels: b.Labels, Alpha: b.Alpha, Beta: b.Beta})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusCreated, col)
}

func (s *Server) listCollections(c *gin.Context) {
	svc := s.classifier(c)
	if svc == nil {
		return
	}
	cols, err := svc.Collections(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, CollectionsBody{Collections: cols})
}

func (s *Server) getCollection(c *gin.Context) {
	svc := s.classifier(c)
	if svc == nil {
		return
	}
	col, err := svc.Collection(c.Request.Context(), c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, col)
}

func (s *Server) addSamples(c *gin.Context) {
	svc := s.classifier(c)
	var b AddSamplesBody
	if svc == nil || !bindJSON(c, &b, false) {
		return
	}
	samples := make([]cachet.Sample, len(b.Samples))
	for i, smp := range b.Samples {
		samples[i] = cachet.Sample{Image: smp.Image, Label: smp.Label}
	}
	col, err := svc.AddSamples(c.Request.Context(), c.Param("id"), samples)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, col)
}

func (s *Server) buildCollection(c *gin.Context) {
	svc := s.classifier(c)
	var b BuildBody
	if svc == nil || !bindJSON(c, &b, true) {
		return
	}
	req := cachet.BuildRequest{Method: b.Method, Values: b.Values, Lambda: b.Lambda, Tune: b.Tune, Whiten: b.Whiten, Propagate: b.Propagate}
	if s.opts.Jobs != nil {
		id := c.Param("id")
		if _, err := svc.Collection(c.Request.Context(), id); err != nil { // an unknown collection is a 404 now, not a failed job
			writeError(c, err)
			return
		}
		s.submit(c, cachet.NewJob{Kind: cachet.JobCollectionBuild, Args: cachet.CollectionBuild{CollectionID: id, Request: req},
			Target: "/v1/collections/" + id}, b.Async, http.StatusOK)
		return
	}
	col, err := svc.Build(c.Request.Context(), c.Param("id"), req)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, col)
}

func (s *Server) classify(c *gin.Context) {
	svc := s.classifier(c)
	var b ClassifyBody
	if svc == nil || !bindJSON(c, &b, false) {
		return
	}
	res, err := svc.Classify(c.Request.Context(), cachet.ClassifyRequest{Collection: b.Collection, Images: b.Images, TopK: b.TopK, Rerank: b.Rerank})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
