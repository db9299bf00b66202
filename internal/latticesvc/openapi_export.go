package latticesvc

import "bytes"

// OpenAPIDocument returns the lattice REST API's OpenAPI 3.1 document (the
// one served at /api/openapi.json by [RESTHandler]), so that a handler
// serving more of /api can merge its paths and components into one
// document. The result is a copy; callers may keep or modify it.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDoc) }
