package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// SpecFile is where the committed copy of the contract lives (clients are generated from it).
const SpecFile = "openapi.json"

// The Go client the acceptance suite calls is generated from that copy:
//go:generate go tool oapi-codegen -generate types,client -package client -o client/client.gen.go openapi.json

// operation is one route of the contract: its body and its answers, by status, as Go values whose types
// make the schemas.
type operation struct {
	method, path, id, summary string
	public                    bool           // no API key
	body                      any            // JSON request body (nil: none)
	optionalBody              bool           // the JSON body may be left out
	multipart                 bool           // a subject upload
	query                     []string       // query parameters (all optional)
	answers                   map[int]any    // status → JSON body (nil value: no body)
	other                     map[int]string // status → a non-JSON media type
}

// HealthBody is GET /healthz.
type HealthBody struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Auth    string `json:"auth"` // "keys" (requests need an API key) or "off"
}

// operations is the API's contract: every route, with what it takes and answers (errors: ErrorBody).
func operations() []operation {
	job := cachet.Job{}
	return []operation{
		{method: "GET", path: "/healthz", id: "health", summary: "Liveness", public: true, answers: map[int]any{200: HealthBody{}}},
		{method: "GET", path: "/readyz", id: "ready", summary: "Readiness of Postgres, the object store and the model", public: true,
			answers: map[int]any{200: ReadyBody{}, 503: ReadyBody{}}},
		{method: "GET", path: "/metrics", id: "metrics", summary: "Prometheus series (admin keys)", other: map[int]string{200: "text/plain"}},
		{method: "GET", path: "/openapi.json", id: "openAPI", summary: "This contract", public: true, other: map[int]string{200: "application/json"}},
		{method: "POST", path: "/v1/generate", id: "generate", summary: "Images from a prompt, optionally with a subject",
			body: cachet.GenerateRequest{}, answers: map[int]any{200: cachet.GenerateResult{}, 202: job}},
		{method: "POST", path: "/v1/subjects", id: "createSubject", summary: "Upload 1–8 reference images of one item",
			multipart: true, answers: map[int]any{201: cachet.Subject{}, 202: job}},
		{method: "GET", path: "/v1/subjects", id: "listSubjects", summary: "The tenant's subjects, newest first",
			query: []string{"limit", "offset", "status"}, answers: map[int]any{200: SubjectsBody{}}},
		{method: "GET", path: "/v1/subjects/{id}", id: "getSubject", summary: "One subject", answers: map[int]any{200: cachet.Subject{}}},
		{method: "DELETE", path: "/v1/subjects/{id}", id: "deleteSubject", summary: "Delete a subject and its objects", answers: map[int]any{204: nil}},
		{method: "GET", path: "/v1/subjects/{id}/refs/{n}", id: "subjectReference", summary: "A subject's reference image n (PNG, as stored)",
			other: map[int]string{200: "image/png"}},
		{method: "GET", path: "/v1/subjects/{id}/similar", id: "similarSubjects", summary: "Nearest subjects by pooled features",
			query: []string{"k"}, answers: map[int]any{200: SimilarBody{}}},
		{method: "POST", path: "/v1/subjects/{id}/retry", id: "retrySubject", summary: "Rebuild a subject's cache from its stored originals",
			query: []string{"async"}, answers: map[int]any{200: cachet.Subject{}, 202: job}},
		{method: "POST", path: "/v1/collections", id: "createCollection", summary: "A collection of labels",
			body: CreateCollectionBody{}, answers: map[int]any{201: cachet.Collection{}}},
		{method: "GET", path: "/v1/collections", id: "listCollections", summary: "The tenant's collections", answers: map[int]any{200: CollectionsBody{}}},
		{method: "GET", path: "/v1/collections/{id}", id: "getCollection", summary: "One collection", answers: map[int]any{200: cachet.Collection{}}},
		{method: "POST", path: "/v1/collections/{id}/samples", id: "addSamples", summary: "Add samples (labels optional)",
			body: AddSamplesBody{}, answers: map[int]any{200: cachet.Collection{}}},
		{method: "POST", path: "/v1/collections/{id}/build", id: "buildCollection", summary: "Build the collection's cache model",
			body: BuildBody{}, optionalBody: true, answers: map[int]any{200: cachet.Collection{}, 202: job}},
		{method: "POST", path: "/v1/classify", id: "classify", summary: "Top labels of images, zero-shot or against a collection",
			body: ClassifyBody{}, answers: map[int]any{200: cachet.ClassifyResult{}}},
		{method: "GET", path: "/v1/catalog", id: "catalog", summary: "Prompt grammar, sampling presets, step-cache policies and limits",
			answers: map[int]any{200: cachet.Catalog{}}},
		{method: "GET", path: "/v1/jobs/{id}", id: "getJob", summary: "A job: state, progress, timings, result or error", answers: map[int]any{200: job}},
		{method: "GET", path: "/v1/jobs/{id}/events", id: "jobEvents", summary: "A job's changes as Server-Sent Events",
			other: map[int]string{200: "text/event-stream"}},
		{method: "DELETE", path: "/v1/jobs/{id}", id: "cancelJob", summary: "Cancel a job", answers: map[int]any{200: job}},
	}
}

// Spec builds the OpenAPI 3.1 document of the API, its schemas made from the wire types.
func Spec(version string) (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: "3.1.0",
		Info: &openapi3.Info{Title: "Cachet", Version: version,
			Description: "Personalized image generation and training-free classification on cached diffusion-transformer features."},
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: openapi3.Schemas{}, SecuritySchemes: openapi3.SecuritySchemes{}},
		Security:   openapi3.SecurityRequirements{{"bearer": []string{}}},
	}
	doc.Components.SecuritySchemes["bearer"] = &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme().WithBearerFormat("API key")}
	gen := openapi3gen.NewGenerator(openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
		ExportComponentSchemas: true, ExportTopLevelSchema: true}), openapi3gen.SchemaCustomizer(wireSchema))
	schema := func(v any) (*openapi3.SchemaRef, error) {
		return gen.NewSchemaRefForValue(v, doc.Components.Schemas)
	}
	errSchema, err := schema(ErrorBody{})
	if err != nil {
		return nil, err
	}
	for _, o := range operations() {
		op := &openapi3.Operation{OperationID: o.id, Summary: o.summary, Responses: openapi3.NewResponses()}
		op.Responses.Delete("default") // set last, after the statuses
		if o.public {
			op.Security = &openapi3.SecurityRequirements{}
		}
		for _, seg := range strings.Split(o.path, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				op.AddParameter(openapi3.NewPathParameter(strings.TrimSuffix(name, "}")).WithSchema(openapi3.NewStringSchema()))
			}
		}
		for _, q := range o.query {
			op.AddParameter(openapi3.NewQueryParameter(q).WithSchema(openapi3.NewStringSchema()))
		}
		switch {
		case o.body != nil:
			s, err := schema(o.body)
			if err != nil {
				return nil, fmt.Errorf("api: %s's body: %w", o.id, err)
			}
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(!o.optionalBody).WithJSONSchemaRef(s)}
		case o.multipart:
			form := openapi3.NewObjectSchema().WithRequired([]string{"name", "images"}).
				WithProperty("name", openapi3.NewStringSchema()).WithProperty("class", openapi3.NewStringSchema()).
				WithProperty("async", openapi3.NewStringSchema()).
				WithProperty("images", openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema().WithFormat("binary")))
			op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().WithRequired(true).
				WithContent(openapi3.NewContentWithFormDataSchema(form))}
		}
		for status, v := range o.answers {
			r := openapi3.NewResponse().WithDescription(http.StatusText(status))
			if v != nil {
				s, err := schema(v)
				if err != nil {
					return nil, fmt.Errorf("api: %s's %d answer: %w", o.id, status, err)
				}
				r = r.WithJSONSchemaRef(s)
			}
			op.AddResponse(status, r)
		}
		for status, media := range o.other {
			op.AddResponse(status, openapi3.NewResponse().WithDescription(http.StatusText(status)).
				WithContent(openapi3.NewContentWithSchema(openapi3.NewStringSchema(), []string{media})))
		}
		op.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription("An error: a stable code and a message").WithJSONSchemaRef(errSchema)})
		doc.AddOperation(o.path, o.method, op)
	}
	return doc, nil
}

// wireSchema adjusts generated schemas to what the JSON really holds: a json.RawMessage is any JSON value,
// other byte slices travel as base64 strings.
func wireSchema(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
	switch {
	case t == reflect.TypeFor[json.RawMessage]():
		*s = openapi3.Schema{}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		*s = *openapi3.NewStringSchema().WithFormat("byte")
	}
	return nil
}

// SpecJSON is the contract as the server serves it at /openapi.json (version "dev" in the committed copy).
func SpecJSON(version string) ([]byte, error) {
	doc, err := Spec(version)
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func (s *Server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json; charset=utf-8", s.spec)
}
