package storage

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/minio/minio-go/v7"
)

// IsUnavailable says whether err means that Postgres or the object store cannot be reached or refuses
// work for now (down, restarting, overloaded): a request failing so should be retried, not reported as a
// server bug.
func IsUnavailable(err error) bool {
	// A context's end is the caller's deadline or cancellation, not the service's state (and context
	// errors pass for net.Errors).
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed), errors.As(err, &connErr):
		return true
	case errors.As(err, &pgErr):
		// 08: connection exceptions; 57P01–57P03: the server shuts down, crashed, or is starting.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	case errors.As(err, &netErr):
		return true
	}
	resp := minio.ToErrorResponse(err)
	return resp.StatusCode == http.StatusServiceUnavailable || resp.Code == "SlowDown" || resp.Code == "ServiceUnavailable"
}
