package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

// retryAfterSeconds is what a 503 or 429 asks clients to wait: services restart, and a full queue drains
// a job a second or faster, in seconds.
const retryAfterSeconds = "2"

// httpStatus is the one mapping from domain error codes to HTTP statuses.
var httpStatus = map[cachet.Code]int{
	cachet.CodeInvalidArgument:   http.StatusBadRequest,
	cachet.CodeNotFound:          http.StatusNotFound,
	cachet.CodeConflict:          http.StatusConflict,
	cachet.CodePayloadTooLarge:   http.StatusRequestEntityTooLarge,
	cachet.CodeUnsupportedMedia:  http.StatusUnsupportedMediaType,
	cachet.CodeUnavailable:       http.StatusServiceUnavailable,
	cachet.CodeCanceled:          499, // client closed request
	cachet.CodeDeadlineExceeded:  http.StatusGatewayTimeout,
	cachet.CodeResourceExhausted: http.StatusTooManyRequests,
	cachet.CodeUnauthenticated:   http.StatusUnauthorized,
	cachet.CodePermissionDenied:  http.StatusForbidden,
	cachet.CodeQuotaExceeded:     http.StatusForbidden,
	cachet.CodeInternal:          http.StatusInternalServerError,
}

// StatusOf maps a domain code to its HTTP status (500 for unknown codes).
func StatusOf(code cachet.Code) int {
	if s, ok := httpStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON error envelope every failing endpoint returns.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the envelope's content: a stable code and a message a user can act on.
type ErrorDetail struct {
	Code    cachet.Code `json:"code"`
	Message string      `json:"message"`
}

// writeError answers with err's domain code and message. Anything that is not a domain error is
// logged with its details and answered as a bare internal error.
func writeError(c *gin.Context, err error) {
	var de *cachet.Error
	switch {
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		de = cachet.Errorf(cachet.CodeCanceled, "the request was canceled")
	case errors.Is(err, context.DeadlineExceeded) && c.Request.Context().Err() != nil:
		de = cachet.Errorf(cachet.CodeDeadlineExceeded, "the request ran past the server's time limit; ask for fewer images or steps")
	case errors.As(err, &de) && de.Code != cachet.CodeInternal:
	case storage.IsUnavailable(err):
		slog.WarnContext(c.Request.Context(), "a storage service is unavailable", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		de = cachet.Errorf(cachet.CodeUnavailable, "a storage service is unavailable; retry shortly")
	default:
		slog.ErrorContext(c.Request.Context(), "internal error", "method", c.Request.Method, "path", c.FullPath(), "err", err)
		de = cachet.Errorf(cachet.CodeInternal, "internal error; the server log has the details")
	}
	if (de.Code == cachet.CodeUnavailable || de.Code == cachet.CodeResourceExhausted) && c.Writer.Header().Get("Retry-After") == "" {
		c.Header("Retry-After", retryAfterSeconds)
	}
	c.AbortWithStatusJSON(StatusOf(de.Code), ErrorBody{Error: ErrorDetail{Code: de.Code, Message: de.Message}})
}
