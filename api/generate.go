package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// maxGenerateBody bounds a generate request (a prompt and a few numbers).
const maxGenerateBody = 64 << 10

func (s *Server) generate(c *gin.Context) {
	if s.opts.Generator == nil && s.opts.Jobs == nil {
		writeError(c, cachet.Errorf(cachet.CodeUnavailable, "generation needs the denoiser, and this server runs without one; train it with `cachet train base` or start with --weights"))
		return
	}
	var req cachet.GenerateRequest
	if err := decodeJSON(c, &req, maxGenerateBody, false); err != nil {
		writeError(c, err)
		return
	}
	if req.Output == "url" { // stored images count against the tenant's bytes
		if err := s.checkQuota(c, "bytes"); err != nil {
			writeError(c, err)
			return
		}
	}
	if s.opts.Jobs != nil {
		// A server with the model checks the request before it is queued; one without leaves it to the worker.
		if s.opts.Generator != nil {
			if err := s.opts.Generator.Validate(req); err != nil {
				writeError(c, err)
				return
			}
		}
		async := req.Async
		req.Async = false
		s.submit(c, cachet.NewJob{Kind: cachet.JobGenerate, Args: req}, async, http.StatusOK)
		return
	}
	res, err := s.opts.Generator.Generate(c.Request.Context(), req)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}
