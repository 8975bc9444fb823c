package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"refused", fmt.Errorf("listing: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), true},
		{"reset", fmt.Errorf("put: %w", syscall.ECONNRESET), true},
		{"cut mid-answer", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		{"pool connection closed by a restart", fmt.Errorf("writing: %w", pgconn.ErrConnClosed), true},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"constraint", &pgconn.PgError{Code: "23505"}, false},
		{"a bug", errors.New("index out of range"), false},
		{"a domain error", cachet.Errorf(cachet.CodeNotFound, "no subject"), false},
		{"the caller's deadline", context.DeadlineExceeded, false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := storage.IsUnavailable(tc.err); got != tc.want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
