package auth

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxAuthBody bounds the JSON body of the auth endpoints.
const maxAuthBody = 16 << 10

// Routes mounts the session endpoints on mux:
//
//	POST /api/auth/login   {"tenant","user","password"} → 200 Tokens
//	POST /api/auth/refresh {"refresh_token"}            → 200 Tokens
//	POST /api/auth/logout  (Authorization: Bearer <access token>) → 204
//
// Errors have the shape of every other API error (internal/admin),
// {"error": {"code": code, "message": text}}, with 400 (malformed
// request), 401 (any refused credential, including a locked account, so
// that the status does not tell which accounts exist) or 403 (tenant
// disabled, client address not allowed). clientIP returns the caller's
// address as the edge determined it (trusted proxies applied); nil means
// the connection's remote address.
func (s *Service) Routes(mux *http.ServeMux, clientIP func(*http.Request) string) {
	if clientIP == nil {
		clientIP = remoteIP
	}
	mux.HandleFunc("POST /api/auth/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Tenant   string `json:"tenant"`
			User     string `json:"user"`
			Password string `json:"password"`
		}
		if !decodeBody(w, r, &in) {
			return
		}
		if in.Tenant == "" || in.User == "" || in.Password == "" {
			writeError(w, http.StatusBadRequest, "invalid_argument", "tenant, user and password are required")
			return
		}
		tok, err := s.Login(r.Context(), in.Tenant, in.User, in.Password, clientIP(r))
		if err != nil {
			s.writeAuthError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, tok)
	})
	mux.HandleFunc("POST /api/auth/refresh", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			RefreshToken string `json:"refresh_token"`
		}
		if !decodeBody(w, r, &in) {
			return
		}
		if in.RefreshToken == "" {
			writeError(w, http.StatusBadRequest, "invalid_argument", "refresh_token is required")
			return
		}
		tok, err := s.Refresh(r.Context(), in.RefreshToken, clientIP(r))
		if err != nil {
			s.writeAuthError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, tok)
	})
	mux.HandleFunc("POST /api/auth/logout", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := BearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", "a bearer access token is required")
			return
		}
		p, err := s.Authenticate(r.Context(), tok, clientIP(r))
		if err != nil {
			s.writeAuthError(w, r, err)
			return
		}
		if err := s.Logout(r.Context(), p); err != nil {
			s.writeAuthError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
}

// BearerToken returns the credential of an "Authorization: Bearer …"
// header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAuthBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body is too large")
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_json", "the body must be a JSON object with the documented fields")
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid_json", "the body must hold one JSON object")
		return false
	}
	return true
}

// writeAuthError maps an error of this package to its status.
func (s *Service) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", reasonOr(err, "unauthenticated"))
	case errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden", reasonOr(err, "forbidden"))
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid_argument", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the request was cancelled")
	default:
		s.log.Error("auth: request failed", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

func reasonOr(err error, def string) string {
	if r := Reason(err); r != "" {
		return r
	}
	return def
}

// writeError answers an error in the shape of every other API error:
// {"error": {"code": …, "message": …}}, with the admin API's codes
// (invalid_json, invalid_argument, unauthenticated, forbidden, …).
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
