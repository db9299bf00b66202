package latticesvc

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxRESTBody bounds a REST request body when the handler is used on its
// own; behind the gateway, server.max_body_bytes applies first.
var maxRESTBody int64 = 16 << 20

// restRoute is one endpoint. Patterns are full paths; a {id} segment
// matches one non-empty path segment.
type restRoute struct {
	method, pattern string
	handle          func(s *Service, w http.ResponseWriter, r *http.Request, id string)
}

// routes are exactly the endpoints documented in openapi.json (a test
// checks both ways).
var routes = []restRoute{
	{http.MethodGet, "/api/lattices", (*Service).restList},
	{http.MethodPost, "/api/lattices", (*Service).restCreate},
	{http.MethodGet, "/api/lattices/{id}", (*Service).restGet},
	{http.MethodDelete, "/api/lattices/{id}", (*Service).restDelete},
	{http.MethodPost, "/api/lattices/{id}/path", (*Service).restPath},
	{http.MethodPost, "/api/lattices/{id}/transform", (*Service).restTransform},
	{http.MethodGet, "/api/openapi.json", (*Service).restOpenAPI},
}

func (rt restRoute) match(path string) (id string, ok bool) {
	ps, qs := strings.Split(rt.pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return "", false
	}
	for i, p := range ps {
		switch {
		case p == "{id}":
			if qs[i] == "" {
				return "", false
			}
			id = qs[i]
		case p != qs[i]:
			return "", false
		}
	}
	return id, true
}

// RESTHandler serves the lattice REST API at its full paths (/api/lattices…,
// /api/openapi.json); mount it at /api/. The caller is principal.From of
// the request's context (the gateway attaches it before the handler), else
// Options.DefaultTenant. Errors are JSON objects {"error": {"code",
// "message"}} with a status that fits: 400 bad input, 403 no tenant, 404
// unknown id (also another tenant's) or route, 405, 413, 415, 422 over a
// limit, 503 store unavailable, 504 operation timeout.
func RESTHandler(svc *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, rt := range routes {
			id, ok := rt.match(r.URL.Path)
			if !ok {
				continue
			}
			if rt.method != r.Method {
				allowed = append(allowed, rt.method)
				continue
			}
			rt.handle(svc, w, r.WithContext(withFace(r.Context(), "rest")), id)
			return
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, errorf(CodeMethodNotAllowed, "%s is not supported on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
			return
		}
		writeError(w, errorf(CodeNotFound, "no endpoint %s %s; the API is described at /api/openapi.json", r.Method, truncate(r.URL.Path, 100)))
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var se *Error
	if !errors.As(err, &se) {
		se = wrapErr(CodeInternal, err, "internal error: %v", err)
	}
	status := se.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": se.Code, "message": se.Message}})
}

// body reads a JSON request body.
func body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, errorf(CodeUnsupportedMedia, "send the request body as JSON with Content-Type: application/json (got %q)", truncate(ct, 60))
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRESTBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(CodeBodyTooLarge, "request body exceeds %d bytes", mbe.Limit)
		}
		return nil, errorf(CodeInvalidArgument, "reading request body: %v", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, errorf(CodeInvalidArgument, "a JSON object is required as the request body")
	}
	return data, nil
}

func (s *Service) restList(w http.ResponseWriter, r *http.Request, _ string) {
	l, err := s.List(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, listResult{Lattices: l, Limit: s.Limits().MaxLattices})
}

func (s *Service) restCreate(w http.ResponseWriter, r *http.Request, _ string) {
	data, err := body(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	name, d, err := s.decodeCreate(data)
	if err != nil {
		writeError(w, err)
		return
	}
	in, err := s.Create(r.Context(), name, d)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/api/lattices/"+in.ID)
	writeJSON(w, http.StatusCreated, in)
}

func (s *Service) restGet(w http.ResponseWriter, r *http.Request, id string) {
	in, err := s.Get(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *Service) restDelete(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.Delete(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) restPath(w http.ResponseWriter, r *http.Request, id string) {
	st, err := s.lookup(r.Context(), id, "path")
	if err != nil {
		writeError(w, err)
		return
	}
	data, err := body(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	_, req, err := s.decodePath(data, false)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.Path(r.Context(), Target{ID: id, stored: st}, req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Service) restTransform(w http.ResponseWriter, r *http.Request, id string) {
	st, err := s.lookup(r.Context(), id, "transform")
	if err != nil {
		writeError(w, err)
		return
	}
	data, err := body(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	_, pts, ts, err := s.decodeTransform(data, false)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.Transform(r.Context(), Target{ID: id, stored: st}, pts, ts)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Service) restOpenAPI(w http.ResponseWriter, r *http.Request, _ string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPIDoc)
}
