// Package cachet holds Cachet's domain types, error codes and configuration.
// It has no dependencies: every other package may import it, it imports none of them.
package cachet

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. Clients switch on it; it never changes meaning.
type Code string

const (
	CodeInvalidArgument  Code = "invalid_argument"
	CodeNotFound         Code = "not_found"
	CodeConflict         Code = "conflict"
	CodePayloadTooLarge  Code = "payload_too_large"
	CodeUnsupportedMedia Code = "unsupported_media_type"
	CodeUnavailable      Code = "unavailable"
	CodeCanceled         Code = "canceled"
	CodeDeadlineExceeded Code = "deadline_exceeded"
	// CodeResourceExhausted: the job queue is full; retry after the Retry-After the answer names.
	CodeResourceExhausted Code = "resource_exhausted"
	// CodeUnauthenticated: no API key, or one that is unknown or revoked.
	CodeUnauthenticated Code = "unauthenticated"
	// CodePermissionDenied: the key may not do this (an admin route).
	CodePermissionDenied Code = "permission_denied"
	// CodeQuotaExceeded: the tenant holds as many of something as its key allows.
	CodeQuotaExceeded Code = "quota_exceeded"
	CodeInternal      Code = "internal"
)

// Error is a domain error: a stable code and a message a user can act on.
// Messages must not carry internal details (those are logged, not returned).
type Error struct {
	Code    Code
	Message string
	// Field, when set, is the input the error is about (a config or request field, snake_case); the
	// message starts with it. The CLI names the flag that sets it instead.
	Field string
	// Err is an optional cause, kept for logs and errors.Is/As; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: c}) match any domain error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// Errorf builds a domain error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is an invalid-argument error, the answer of every validation.
func Invalid(format string, args ...any) *Error { return Errorf(CodeInvalidArgument, format, args...) }

// InvalidField is an invalid-argument error about one input field: "field: message".
func InvalidField(field, format string, args ...any) *Error {
	return FieldError(CodeInvalidArgument, field, format, args...)
}

// FieldError is a domain error about one input field: "field: message".
func FieldError(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// Wrap builds a domain error that keeps cause for logs.
func Wrap(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// CodeOf returns the code of the first domain error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// HasCode reports whether err's chain holds a domain error with code c.
func HasCode(err error, c Code) bool { return errors.Is(err, &Error{Code: c}) }
