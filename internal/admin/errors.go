package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Error codes: the stable, machine-readable half of an API error.
const (
	CodeInvalidJSON      = "invalid_json"           // 400: malformed body, unknown field
	CodeInvalidArgument  = "invalid_argument"       // 400: a value breaks a rule
	CodeUnauthenticated  = "unauthenticated"        // 401: no caller
	CodeForbidden        = "forbidden"              // 403: the caller may not do this
	CodeNotFound         = "not_found"              // 404: no such object (or not yours)
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeConflict         = "conflict"               // 409: name taken, object in use
	CodeLastOwner        = "last_owner"             // 409: would leave a tenant without an owner
	CodeBodyTooLarge     = "body_too_large"         // 413
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeInternal         = "internal"               // 500
	CodeUnavailable      = "unavailable"            // 503: store down, request canceled
)

var codeStatus = map[string]int{
	CodeInvalidJSON:      http.StatusBadRequest,
	CodeInvalidArgument:  http.StatusBadRequest,
	CodeUnauthenticated:  http.StatusUnauthorized,
	CodeForbidden:        http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeConflict:         http.StatusConflict,
	CodeLastOwner:        http.StatusConflict,
	CodeBodyTooLarge:     http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeInternal:         http.StatusInternalServerError,
	CodeUnavailable:      http.StatusServiceUnavailable,
}

// An Error is a failure with its meaning on the wire. Ops returns them
// for every failure a caller can act on; other errors are internal.
type Error struct {
	Code    string
	Message string
	Err     error // the cause, if any (not shown to API callers)
	// audited is set when the failure already has its own audit entry
	// (authz.denied), so the attempted action is not recorded twice.
	audited bool
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of e.
func (e *Error) Status() int {
	if s, ok := codeStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error { return errorf(CodeInvalidArgument, format, args...) }

// AsError returns err as an *Error, mapping the store's sentinel errors
// and context errors; what is left is internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, auth.ErrInvalid):
		return &Error{Code: CodeInvalidArgument, Message: strings.TrimPrefix(err.Error(), auth.ErrInvalid.Error()+": "), Err: err}
	case errors.Is(err, auth.ErrForbidden):
		return &Error{Code: CodeForbidden, Message: strings.TrimPrefix(err.Error(), auth.ErrForbidden.Error()+": "), Err: err}
	case errors.Is(err, store.ErrLastOwner):
		return &Error{Code: CodeLastOwner, Message: "a tenant must keep at least one owner: add or promote another owner first", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: "not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: "already exists", Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Message: "the request was canceled or timed out", Err: err}
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// storeErr maps a store error, giving not-found and conflict a message
// about what: what is e.g. `user "bob"`.
func storeErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: what + " not found", Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: what + " already exists", Err: err}
	}
	return err
}

// IsCode reports whether err is an *Error with this code (after AsError).
func IsCode(err error, code string) bool { return err != nil && AsError(err).Code == code }
