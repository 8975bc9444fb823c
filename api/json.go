package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// decodeJSON reads one JSON object of at most limit bytes into v, refusing unknown fields and anything
// after the object. The body must be declared application/json: a browser sends that type cross-site only
// after a CORS preflight, so a plain form POST from another page cannot run model work here. An optional
// body may be empty (with or without a Content-Type).
func decodeJSON(c *gin.Context, v any, limit int64, optional bool) error {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	ct := c.GetHeader("Content-Type")
	if ct == "" && optional {
		if n, _ := body.Read(make([]byte, 1)); n == 0 {
			return nil
		}
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return cachet.Errorf(cachet.CodeUnsupportedMedia, "send the body as JSON with the header Content-Type: application/json (curl --json '…' does both); got %q", ct)
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// Exactly one value: trailing bytes mean a client that sends something else than it thinks.
		var extra json.RawMessage
		if err = dec.Decode(&extra); errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			return cachet.Errorf(cachet.CodeInvalidArgument, "invalid JSON body: more than one JSON value; send a single object")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return cachet.Errorf(cachet.CodePayloadTooLarge, "request body over %d KiB", limit>>10)
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		return cachet.Errorf(cachet.CodeInvalidArgument, "empty request body; send a JSON object")
	}
	return cachet.Wrap(cachet.CodeInvalidArgument, err, "invalid JSON body: %s", err.Error())
}
