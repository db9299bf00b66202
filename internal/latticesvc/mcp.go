package latticesvc

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// openAPIDoc is the REST API's OpenAPI 3.1 document. Its component schemas
// are also the source of the MCP tools' input and output schemas, so the
// two faces cannot drift apart.
//
//go:embed openapi.json
var openAPIDoc []byte

var components = func() map[string]any {
	var doc struct {
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		panic("latticesvc: openapi.json: " + err.Error())
	}
	return doc.Components.Schemas
}()

// schema returns the named component schema with every $ref inlined (the
// components have no cycles).
func schema(name string) map[string]any {
	s, ok := components[name]
	if !ok {
		panic("latticesvc: no component schema " + name)
	}
	return inline(s).(map[string]any)
}

func inline(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok && len(x) == 1 {
			return schema(strings.TrimPrefix(ref, "#/components/schemas/"))
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = inline(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = inline(e)
		}
		return out
	}
	return v
}

// field picks one property of a component schema.
type field struct{ component, property string }

// objectSchema builds a closed object schema from component properties.
func objectSchema(description string, required []string, fields ...field) map[string]any {
	props := map[string]any{}
	for _, f := range fields {
		p, ok := schema(f.component)["properties"].(map[string]any)[f.property]
		if !ok {
			panic("latticesvc: no property " + f.component + "." + f.property)
		}
		props[f.property] = p
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if description != "" {
		s["description"] = description
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

var (
	inlineFields  = []field{{"LatticeDefinition", "dims"}, {"LatticeDefinition", "boundary"}, {"LatticeDefinition", "blocked"}}
	latticeIDProp = func() map[string]any {
		p := schema("LatticeID")
		p["description"] = "Id of a stored lattice (from lattice_create or lattice_list)."
		return p
	}()
)

func withLatticeID(s map[string]any) map[string]any {
	s["properties"].(map[string]any)["lattice_id"] = latticeIDProp
	return s
}

const inlineNote = " The lattice is either a stored one (lattice_id) or given inline: dims (axis lengths), boundary (open or periodic) and blocked (a list of points, or {\"random\": {\"density\": 0.2, \"seed\": 7}})."

// NewMCPServer returns an in-process MCP server ("mcpedge-lattice") with the
// lattice tools: lattice_create, lattice_get, lattice_list, lattice_delete,
// lattice_path and lattice_transform. Every tool has an input and an output
// schema and returns structured content with a one-line text summary; bad
// input and engine errors are isError results whose text starts with the
// error code.
func NewMCPServer(svc *Service) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcpedge-lattice", Title: "mcpedge lattice engine", Version: svc.version}, &mcp.ServerOptions{
		Instructions: "Box lattices (grids of 1 to 32 axes, open or periodic, with blocked cells): shortest paths with a memory account, and reversible transforms of point sets. Store a lattice with lattice_create to reuse it by id, or pass it inline to lattice_path and lattice_transform.",
	})
	f := false
	t := true
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: &f}

	srv.AddTool(&mcp.Tool{
		Name:         "lattice_create",
		Title:        "Store a lattice",
		Description:  "Stores a lattice definition in your tenant and returns its id (lat_…) for lattice_path, lattice_transform, lattice_get and lattice_delete. dims are the axis lengths (1 to 32 axes, each ≥ 1); boundary is open (default) or periodic; blocked is a list of points or {\"random\": {\"density\": 0.2, \"seed\": 7}}.",
		InputSchema:  schema("LatticeDefinition"),
		OutputSchema: schema("Lattice"),
		Annotations:  &mcp.ToolAnnotations{DestructiveHint: &f, OpenWorldHint: &f},
	}, tool(svc, func(ctx context.Context, raw []byte) (any, string, error) {
		name, d, err := svc.decodeCreate(raw)
		if err != nil {
			return nil, "", err
		}
		in, err := svc.Create(ctx, name, d)
		if err != nil {
			return nil, "", err
		}
		return in, fmt.Sprintf("stored lattice %s: %s, %d points", in.ID, describeInfo(in), in.Points), nil
	}))

	srv.AddTool(&mcp.Tool{
		Name:         "lattice_get",
		Title:        "Get a stored lattice",
		Description:  "Returns a stored lattice's full definition.",
		InputSchema:  withLatticeID(objectSchema("", []string{"lattice_id"})),
		OutputSchema: schema("Lattice"),
		Annotations:  ro,
	}, tool(svc, func(ctx context.Context, raw []byte) (any, string, error) {
		id, err := decodeID(raw)
		if err != nil {
			return nil, "", err
		}
		in, err := svc.Get(ctx, id)
		if err != nil {
			return nil, "", err
		}
		return in, fmt.Sprintf("lattice %s: %s, %d points", in.ID, describeInfo(in), in.Points), nil
	}))

	srv.AddTool(&mcp.Tool{
		Name:         "lattice_list",
		Title:        "List stored lattices",
		Description:  "Lists your tenant's stored lattices, oldest first (without their explicit blocked-cell lists; blocked_cells counts them).",
		InputSchema:  objectSchema("", nil),
		OutputSchema: schema("LatticeList"),
		Annotations:  ro,
	}, tool(svc, func(ctx context.Context, raw []byte) (any, string, error) {
		if err := decodeEmpty(raw); err != nil {
			return nil, "", err
		}
		l, err := svc.List(ctx)
		if err != nil {
			return nil, "", err
		}
		return listResult{Lattices: l, Limit: svc.Limits().MaxLattices}, fmt.Sprintf("%d stored lattices (limit %d)", len(l), svc.Limits().MaxLattices), nil
	}))

	srv.AddTool(&mcp.Tool{
		Name:         "lattice_delete",
		Title:        "Delete a stored lattice",
		Description:  "Deletes a stored lattice.",
		InputSchema:  withLatticeID(objectSchema("", []string{"lattice_id"})),
		OutputSchema: schema("DeleteResult"),
		Annotations:  &mcp.ToolAnnotations{DestructiveHint: &t, IdempotentHint: true, OpenWorldHint: &f},
	}, tool(svc, func(ctx context.Context, raw []byte) (any, string, error) {
		id, err := decodeID(raw)
		if err != nil {
			return nil, "", err
		}
		if err := svc.Delete(ctx, id); err != nil {
			return nil, "", err
		}
		return deleteResult{ID: id, Deleted: true}, "deleted lattice " + id, nil
	}))

	pathFields := append(append([]field(nil), inlineFields...),
		field{"PathRequest", "from"}, field{"PathRequest", "to"}, field{"PathRequest", "catalytic"},
		field{"PathRequest", "algorithm"}, field{"PathRequest", "length_only"})
	srv.AddTool(&mcp.Tool{
		Name:  "lattice_path",
		Title: "Shortest path on a lattice",
		Description: "Finds a shortest path between two open points, with its length, the path (a list of points) and a memory account (clean bytes measured, bytes borrowed in catalytic mode, and what explicit adjacency lists would need)." + inlineNote +
			" An unreachable target is not an error: reachable is false and length -1.",
		InputSchema:  withLatticeID(objectSchema("", []string{"from", "to"}, pathFields...)),
		OutputSchema: schema("PathResult"),
		Annotations:  ro,
	}, tool(svc, func(ctx context.Context, raw []byte) (any, string, error) {
		tg, r, err := svc.decodePath(raw, true)
		if err != nil {
			return nil, "", err
		}
		res, err := svc.Path(ctx, tg, r)
		if err != nil {
			return nil, "", err
		}
		return res, describePath(r, res), nil
	}))

	trFields := append(append([]field(nil), inlineFields...), field{"TransformRequest", "points"}, field{"TransformRequest", "transform"})
	srv.AddTool(&mcp.Tool{
		Name:         "lattice_transform",
		Title:        "Transform points of a lattice",
		Description:  "Applies a reversible map of the lattice onto itself to a list of points and checks that its inverse gives them back (inverse_check). transform is {\"kind\": \"rotate\", \"plane\": [0, 1], \"quarter_turns\": 1}, {\"kind\": \"reflect\", \"axis\": 0}, {\"kind\": \"translate\", \"offset\": […]}, {\"kind\": \"permute\", \"order\": […]}, {\"kind\": \"xor\", \"mask\": […]} or {\"kind\": \"compose\", \"steps\": […]}." + inlineNote,
		InputSchema:  withLatticeID(objectSchema("", []string{"points", "transform"}, trFields...)),
		OutputSchema: schema("TransformResult"),
		Annotations:  ro,
	}, tool(svc, func(ctx context.Context, raw []byte) (any, string, error) {
		tg, pts, ts, err := svc.decodeTransform(raw, true)
		if err != nil {
			return nil, "", err
		}
		res, err := svc.Transform(ctx, tg, pts, ts)
		if err != nil {
			return nil, "", err
		}
		return res, fmt.Sprintf("%s applied to %d points (inverse %s, inverse check %v)", res.Transform, len(res.Points), res.Inverse, res.InverseCheck), nil
	}))
	return srv
}

type listResult struct {
	Lattices []Info `json:"lattices"`
	Limit    int    `json:"limit"`
}

type deleteResult struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

// tool adapts a handler returning (structured result, summary, error) to
// an MCP tool handler: the caller comes from the call's _meta, and service
// errors become isError results.
func tool(svc *Service, h func(ctx context.Context, raw []byte) (any, string, error)) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var raw []byte
		if req.Params != nil {
			raw = req.Params.Arguments
		}
		out, summary, err := h(mcpContext(ctx, req), raw)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				se = wrapErr(CodeInternal, err, "internal error: %v", err)
			}
			res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: se.Code + ": " + se.Message}}}
			res.SetError(se)
			return res, nil
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: summary}},
			StructuredContent: out,
		}, nil
	}
}

func describeInfo(in Info) string {
	s := fmt.Sprintf("%v %s", in.Dims, in.Boundary)
	if in.Blocked != nil {
		if in.BlockedCells > 0 {
			s += fmt.Sprintf(", %d blocked cells", in.BlockedCells)
		}
		if r := in.Blocked.Random; r != nil {
			s += fmt.Sprintf(", random blocking %g (seed %d)", r.Density, r.Seed)
		}
	}
	if in.Name != "" {
		s = fmt.Sprintf("%q %s", in.Name, s)
	}
	return s
}

func describePath(r PathRequest, res PathResult) string {
	if !res.Reachable {
		return fmt.Sprintf("%v is not reachable from %v (%s, %d points visited, %.3g ms)", r.To, r.From, res.Algorithm, res.Visited, res.DurationMS)
	}
	s := fmt.Sprintf("shortest path from %v to %v: length %d (%s, %d points visited, %.3g ms); clean memory %s", r.From, r.To, res.Length, res.Algorithm, res.Visited, res.DurationMS, human(float64(res.Memory.CleanBytes)))
	if res.Memory.BorrowedBytes > 0 {
		s += ", borrowed " + human(float64(res.Memory.BorrowedBytes))
	}
	s += ", explicit adjacency lists would need " + human(res.Memory.ExplicitAdjacencyBytes)
	if res.PathOmitted != "" {
		s += "; path omitted: " + res.PathOmitted
	}
	return s
}

func human(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}
