package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
)

// eventsPath is the job event stream's route: exempt from the request deadline.
const eventsPath = "/v1/jobs/:id/events"

// maxIdempotencyKey bounds an Idempotency-Key header.
const maxIdempotencyKey = 255

// jobRoutes registers the job endpoints.
func (s *Server) jobRoutes(e *gin.Engine) {
	e.GET("/v1/jobs/:id", s.getJob)
	e.GET(eventsPath, s.jobEvents)
	e.DELETE("/v1/jobs/:id", s.cancelJob)
}

func (s *Server) jobs(c *gin.Context) cachet.Jobs {
	if s.opts.Jobs == nil {
		writeError(c, cachet.Errorf(cachet.CodeUnavailable, "this server runs model work in its requests and keeps no jobs"))
		return nil
	}
	return s.opts.Jobs
}

// idempotencyKey reads the Idempotency-Key header ("" when absent).
func idempotencyKey(c *gin.Context) (string, error) {
	key := strings.TrimSpace(c.GetHeader("Idempotency-Key"))
	if len(key) > maxIdempotencyKey {
		return "", cachet.Errorf(cachet.CodeInvalidArgument, "Idempotency-Key has %d bytes; at most %d", len(key), maxIdempotencyKey)
	}
	return key, nil
}

// submit queues a job for a POST and answers it: at once with 202 when the client asked for async, else
// the job's result with status ok once it is done, or 202 if it is still running after the sync wait.
func (s *Server) submit(c *gin.Context, j cachet.NewJob, async bool, ok int) {
	key, err := idempotencyKey(c)
	if err != nil {
		writeError(c, err)
		return
	}
	j.IdempotencyKey = key
	if err := s.checkQuota(c, "jobs"); err != nil {
		writeError(c, err)
		return
	}
	job, _, err := s.opts.Jobs.Submit(c.Request.Context(), j)
	if err != nil {
		writeError(c, err)
		return
	}
	if async {
		accepted(c, job)
		return
	}
	s.answerJob(c, job, ok)
}

// answerJob waits up to the sync wait for job and answers its result, its error or 202.
func (s *Server) answerJob(c *gin.Context, job *cachet.Job, ok int) {
	if !job.State.Done() {
		var err error
		if job, err = s.opts.Jobs.Wait(c.Request.Context(), job.ID, s.opts.SyncWait); err != nil {
			writeError(c, err)
			return
		}
	}
	switch job.State {
	case cachet.JobSucceeded:
		c.Data(ok, "application/json; charset=utf-8", job.Result)
	case cachet.JobFailed, cachet.JobCanceled:
		writeError(c, job.Err())
	default:
		accepted(c, job)
	}
}

func accepted(c *gin.Context, job *cachet.Job) {
	c.Header("Location", "/v1/jobs/"+job.ID)
	c.JSON(http.StatusAccepted, job)
}

func (s *Server) getJob(c *gin.Context) {
	q := s.jobs(c)
	if q == nil {
		return
	}
	job, err := q.Job(c.Request.Context(), c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, job)
}

func (s *Server) cancelJob(c *gin.Context) {
	q := s.jobs(c)
	if q == nil {
		return
	}
	job, err := q.Cancel(c.Request.Context(), c.Param("id"))
	if err == nil && !job.State.Done() {
		// A running job stops within one sampler step: answer its end rather than "running".
		job, err = q.Wait(c.Request.Context(), job.ID, cancelWait)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, job)
}

// cancelWait bounds how long DELETE waits for a running job to stop.
const cancelWait = 10 * time.Second

// sseHeartbeat keeps idle event streams open through proxies.
const sseHeartbeat = 15 * time.Second

// jobEvents streams a job as Server-Sent Events: one event per change, named after the job's state
// (queued, running — with each step's progress —, then succeeded, failed or canceled), the job as data.
// The stream ends after the last.
func (s *Server) jobEvents(c *gin.Context) {
	q := s.jobs(c)
	if q == nil {
		return
	}
	// An event stream outlives the server's write timeout: it ends with the job or the client.
	ctx := c.Request.Context()
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Time{})
	updates, err := q.Watch(ctx, c.Param("id"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-cache")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	c.Writer.Flush()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			fmt.Fprint(c.Writer, ": keep-alive\n\n")
			c.Writer.Flush()
		case job, open := <-updates:
			if !open {
				return
			}
			data, err := json.Marshal(job)
			if err != nil {
				return
			}
			fmt.Fprintf(c.Writer, "event: %s\nid: %s-%d-%d\ndata: %s\n\n", job.State, job.ID, job.Attempt, job.Progress.Step, data)
			c.Writer.Flush()
		}
	}
}
