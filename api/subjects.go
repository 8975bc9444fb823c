package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// Wire types of the subject endpoints.
type (
	// SubjectsBody is GET /v1/subjects.
	SubjectsBody struct {
		Subjects []*cachet.Subject `json:"subjects"`
	}
	// SimilarBody is GET /v1/subjects/{id}/similar.
	SimilarBody struct {
		Subjects []*cachet.SimilarSubject `json:"subjects"`
	}
)

// multipartSlack is what a multipart body may carry beyond its images (boundaries, headers, fields).
const multipartSlack = 1 << 20

// subjectRoutes registers the subject endpoints.
func (s *Server) subjectRoutes(e *gin.Engine) {
	e.POST("/v1/subjects", s.createSubject)
	e.GET("/v1/subjects", s.listSubjects)
	e.GET("/v1/subjects/:id", s.getSubject)
	e.DELETE("/v1/subjects/:id", s.deleteSubject)
	e.GET("/v1/subjects/:id/refs/:n", s.subjectReference)
	e.GET("/v1/subjects/:id/similar", s.similarSubjects)
	e.POST("/v1/subjects/:id/retry", s.retrySubject)
}

func (s *Server) subjectService(c *gin.Context) cachet.SubjectService {
	if s.opts.Subjects == nil {
		writeError(c, cachet.Errorf(cachet.CodeUnavailable, "subjects are not served by this server"))
		return nil
	}
	return s.opts.Subjects
}

// createSubject reads a multipart upload (fields name, class, and 1–8 files named images), enforcing the
// byte limits while it reads, so an oversized upload is refused without being buffered.
func (s *Server) createSubject(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	if err := s.checkQuota(c, "subjects", "jobs", "bytes"); err != nil {
		writeError(c, err)
		return
	}
	lim := svc.UploadLimits()
	mediaType, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		writeError(c, cachet.Errorf(cachet.CodeUnsupportedMedia,
			"send multipart/form-data with the fields name, class (optional) and 1 to %d PNG or JPEG files named images", lim.MaxImages))
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, lim.MaxTotalBytes+multipartSlack)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		writeError(c, cachet.Wrap(cachet.CodeInvalidArgument, err, "malformed multipart body: %v", err))
		return
	}
	var in cachet.NewSubject
	async := false
	if in.IdempotencyKey, err = idempotencyKey(c); err != nil {
		writeError(c, err)
		return
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeError(c, bodyError(err, lim))
			return
		}
		switch name := part.FormName(); name {
		case "name", "class", "async":
			v, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				writeError(c, bodyError(err, lim))
				return
			}
			switch name {
			case "name":
				in.Name = string(v)
			case "class":
				in.Class = string(v)
			default:
				if async, err = strconv.ParseBool(strings.TrimSpace(string(v))); err != nil {
					writeError(c, cachet.Errorf(cachet.CodeInvalidArgument, "async must be true or false (got %q)", v))
					return
				}
			}
		case "images", "image", "images[]":
			if len(in.Images) == lim.MaxImages {
				writeError(c, cachet.Errorf(cachet.CodeInvalidArgument, "more than %d images: a subject takes 1 to %d reference images", lim.MaxImages, lim.MaxImages))
				return
			}
			data, err := io.ReadAll(io.LimitReader(part, lim.MaxImageBytes+1))
			if err != nil {
				writeError(c, bodyError(err, lim))
				return
			}
			if int64(len(data)) > lim.MaxImageBytes {
				writeError(c, cachet.Errorf(cachet.CodePayloadTooLarge, "image %d (%s) is over %d bytes; each image may have at most %d",
					len(in.Images), part.FileName(), lim.MaxImageBytes, lim.MaxImageBytes))
				return
			}
			in.Images = append(in.Images, cachet.Upload{Filename: part.FileName(), Data: data})
		default:
			writeError(c, cachet.Errorf(cachet.CodeInvalidArgument, "unknown form field %q; send name, class, images and optionally async", name))
			return
		}
	}
	sub, err := svc.CreateSubject(c.Request.Context(), in)
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerSubject(c, sub, async, http.StatusCreated)
}

// answerSubject answers a created or retried subject: at once when it is built (or the client asked for
// async: 202 with its job), else as its job (answerJob).
func (s *Server) answerSubject(c *gin.Context, sub *cachet.Subject, async bool, ok int) {
	if s.opts.Jobs == nil || sub.Status != cachet.SubjectPending || sub.JobID == "" {
		c.JSON(ok, sub)
		return
	}
	job, err := s.opts.Jobs.Job(c.Request.Context(), sub.JobID)
	switch {
	case err != nil:
		writeError(c, err)
	case async && !job.State.Done():
		accepted(c, job)
	default: // a subject job's result is the built subject
		s.answerJob(c, job, ok)
	}
}

func bodyError(err error, lim cachet.UploadLimits) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return cachet.Errorf(cachet.CodePayloadTooLarge, "the upload is over %d bytes; the images may have at most %d together", tooBig.Limit, lim.MaxTotalBytes)
	}
	return cachet.Wrap(cachet.CodeInvalidArgument, err, "malformed multipart body: %v", err)
}

// queryInt reads an optional integer query parameter.
func queryInt(c *gin.Context, name string) (int, bool) {
	raw := c.Query(name)
	if raw == "" {
		return 0, true
	}
	v, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil {
		writeError(c, cachet.Errorf(cachet.CodeInvalidArgument, "%s must be an integer (got %q)", name, raw))
		return 0, false
	}
	return v, true
}

func (s *Server) listSubjects(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	limit, ok := queryInt(c, "limit")
	if !ok {
		return
	}
	offset, ok := queryInt(c, "offset")
	if !ok {
		return
	}
	subs, err := svc.Subjects(c.Request.Context(), cachet.SubjectQuery{Limit: limit, Offset: offset, Status: cachet.SubjectStatus(c.Query("status"))})
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, SubjectsBody{Subjects: subs})
}

func (s *Server) getSubject(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	sub, err := svc.Subject(c.Request.Context(), c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, sub)
}

func (s *Server) deleteSubject(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	if err := svc.DeleteSubject(c.Request.Context(), c.Param("id")); err != nil {
		writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) similarSubjects(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	k, ok := queryInt(c, "k")
	if !ok {
		return
	}
	near, err := svc.SimilarSubjects(c.Request.Context(), c.Param("id"), k)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, SimilarBody{Subjects: near})
}

func (s *Server) retrySubject(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	sub, err := svc.RetrySubject(c.Request.Context(), c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	s.answerSubject(c, sub, c.Query("async") == "true", http.StatusOK)
}

// subjectReference answers a stored reference image (the console's thumbnails).
func (s *Server) subjectReference(c *gin.Context) {
	svc := s.subjectService(c)
	if svc == nil {
		return
	}
	n, err := strconv.Atoi(c.Param("n"))
	if err != nil {
		writeError(c, cachet.Errorf(cachet.CodeInvalidArgument, "the reference number must be an integer (got %q)", c.Param("n")))
		return
	}
	data, err := svc.SubjectReference(c.Request.Context(), c.Param("id"), n)
	if err != nil {
		writeError(c, err)
		return
	}
	// A subject's references never change (a new upload is a new subject).
	c.Header("Cache-Control", "private, max-age=3600")
	c.Data(http.StatusOK, "image/png", data)
}
