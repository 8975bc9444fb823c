package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// maxGenerateBody bounds a generate request (a prompt and a few numbers).
const maxGenerateBody = 64 << 10

func (s *Server) generate(c *gin.Context) {
	if s.opts.Generator == nil {
		writeError(c, cachet.Errorf(cachet.CodeUnavailable, "generation needs the denoiser, and this server runs without one; train it with `cachet train base` or start with --weights"))
		return
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxGenerateBody))
	dec.DisallowUnknownFields()
	var req cachet.GenerateRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(c, cachet.Errorf(cachet.CodePayloadTooLarge, "request body over %d KiB", maxGenerateBody>>10))
		case errors.Is(err, io.EOF):
			writeError(c, cachet.Errorf(cachet.CodeInvalidArgument, `empty request body; send e.g. {"prompt": "a small sneaker on the left", "n": 1}`))
		default:
			writeError(c, cachet.Wrap(cachet.CodeInvalidArgument, err, "invalid JSON body: %s", err.Error()))
		}
		return
	}
	res, err := s.opts.Generator.Generate(c.Request.Context(), req)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
