package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/latticesvc"
)

// The lattices view calls the lattice REST API (/api/lattices…) in
// process as the signed-in person: create and delete lattices, run a
// path query, and see the path drawn (an inline SVG: markup, no script)
// with the search's measured memory figures.

type latticesData struct {
	CSRF, Flash string
	Lattices    []latticesvc.Info
	Limit       int
}

func (c *Console) lattices(w http.ResponseWriter, r *http.Request, v *viewer) {
	d := latticesData{CSRF: v.s.csrf, Flash: c.takeFlash(v)}
	hd := &head{Title: "Lattices", Nav: "lattices", Me: v.p, CSRF: v.s.csrf}
	var out struct {
		Lattices []latticesvc.Info `json:"lattices"`
		Limit    int               `json:"limit"`
	}
	status := http.StatusOK
	if err := c.api(r, v, http.MethodGet, "/api/lattices", nil, &out); err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Lattices, d.Limit = out.Lattices, out.Limit
	c.write(w, status, hd, func(m *markup) { latticesMain(m, &d) })
}

func dimsText(dims []int64) string {
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = strconv.FormatInt(d, 10)
	}
	return strings.Join(s, " × ")
}

func latticesMain(m *markup, d *latticesData) {
	flashNote(m, d.Flash)
	m.raw("<table id=\"lattices\">\n<caption>Lattices (at most ")
	m.int(int64(d.Limit))
	m.raw(")</caption>\n")
	theadRow(m, "Name", "Id", "Size", "Boundary", "Blocked cells", "Points", "Created", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, l := range d.Lattices {
		m.raw("<tr")
		m.attr("data-lattice", l.Name)
		m.raw(">")
		cell(m, l.Name)
		codeCell(m, l.ID)
		cell(m, dimsText(l.Dims))
		cell(m, l.Boundary)
		cell(m, strconv.Itoa(l.BlockedCells))
		cell(m, strconv.FormatInt(l.Points, 10))
		cell(m, when(l.Created))
		m.raw("<td><a")
		m.href("href", "/ui/lattices/view?id="+url.QueryEscape(l.ID))
		m.attr("aria-label", "Find a path in "+l.Name+" "+l.ID)
		m.raw(">Find a path</a> ")
		actionForm(m, d.CSRF, "/ui/lattices/delete", "Delete", "Delete lattice "+l.Name+" "+l.ID, "id", l.ID)
		m.raw("</td></tr>\n")
	}
	if len(d.Lattices) == 0 {
		m.raw("<tr><td colspan=\"8\">No lattices.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n<form method=\"post\" action=\"/ui/lattices\" class=\"card\" id=\"create-lattice\">\n<h2>Create a lattice</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.raw("\n<label for=\"lat-name\">Name</label>\n<input id=\"lat-name\" name=\"name\" maxlength=\"64\">\n",
		"<label for=\"lat-dims\">Size per dimension (e.g. 40, 30 or 20, 20, 20)</label>\n<input id=\"lat-dims\" name=\"dims\" required>\n",
		"<label for=\"lat-boundary\">Boundary</label>\n<select id=\"lat-boundary\" name=\"boundary\"><option value=\"open\">open</option><option value=\"periodic\">periodic</option></select>\n",
		"<label for=\"lat-density\">Randomly blocked share of cells (0 to 1)</label>\n<input id=\"lat-density\" name=\"density\" type=\"number\" min=\"0\" max=\"1\" step=\"any\" value=\"0\">\n",
		"<label for=\"lat-seed\">Seed</label>\n<input id=\"lat-seed\" name=\"seed\" type=\"number\" min=\"0\" step=\"1\" value=\"1\">\n",
		"<button type=\"submit\">Create lattice</button>\n</form>\n")
}

// ints reads "1, 2, 3" (commas or spaces) as integers.
func ints(s string) ([]int64, bool) {
	parts := splitList(s)
	if len(parts) == 0 || len(parts) > 16 {
		return nil, false
	}
	out := make([]int64, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

func (c *Console) createLattice(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := r.PostForm
	dims, ok := ints(f.Get("dims"))
	if !ok {
		c.refuse(w, v, "Lattices", "/ui/lattices", invalid("the size is whole numbers separated by commas, e.g. 40, 30"))
		return
	}
	body := map[string]any{"dims": dims, "boundary": f.Get("boundary")}
	if n := strings.TrimSpace(f.Get("name")); n != "" {
		body["name"] = n
	}
	if ds := strings.TrimSpace(f.Get("density")); ds != "" && ds != "0" {
		density, err := strconv.ParseFloat(ds, 64)
		seed, err2 := strconv.ParseUint(strings.TrimSpace(f.Get("seed")), 10, 64)
		if err != nil || err2 != nil {
			c.refuse(w, v, "Lattices", "/ui/lattices", invalid("the blocked share is a number from 0 to 1 and the seed a whole number"))
			return
		}
		body["blocked"] = map[string]any{"random": map[string]any{"density": density, "seed": seed}}
	}
	var in latticesvc.Info
	if err := c.api(r, v, http.MethodPost, "/api/lattices", body, &in); err != nil {
		c.refuse(w, v, "Lattices", "/ui/lattices", err)
		return
	}
	c.done(w, r, v, "/ui/lattices", "Lattice "+in.ID+" created.")
}

func (c *Console) deleteLattice(w http.ResponseWriter, r *http.Request, v *viewer) {
	id := r.PostForm.Get("id")
	if id == "" || strings.ContainsAny(id, "/?#") {
		c.refuse(w, v, "Lattices", "/ui/lattices", invalid("no such lattice"))
		return
	}
	if err := c.api(r, v, http.MethodDelete, "/api/lattices/"+url.PathEscape(id), nil, nil); err != nil {
		c.refuse(w, v, "Lattices", "/ui/lattices", err)
		return
	}
	c.done(w, r, v, "/ui/lattices", "Lattice deleted.")
}

type latticeView struct {
	CSRF      string
	Info      latticesvc.Info
	From, To  string
	Catalytic bool
	Result    *latticesvc.PathResult
}

func (c *Console) latticeView(w http.ResponseWriter, r *http.Request, v *viewer) {
	c.showLattice(w, r, v, r.URL.Query().Get("id"), nil)
}

func (c *Console) showLattice(w http.ResponseWriter, r *http.Request, v *viewer, id string, fill func(*latticeView) error) {
	hd := &head{Title: "Lattice", Nav: "lattices", Me: v.p, CSRF: v.s.csrf}
	if id == "" || strings.ContainsAny(id, "/?#") {
		c.refuse(w, v, hd.Title, "/ui/lattices", invalid("no such lattice"))
		return
	}
	d := latticeView{CSRF: v.s.csrf}
	if err := c.api(r, v, http.MethodGet, "/api/lattices/"+url.PathEscape(id), nil, &d.Info); err != nil {
		c.refuse(w, v, hd.Title, "/ui/lattices", err)
		return
	}
	hd.Title = "Lattice " + d.Info.ID
	if d.Info.Name != "" {
		hd.Title = "Lattice " + d.Info.Name
	}
	// The default query: corner to corner.
	from, to := make([]string, len(d.Info.Dims)), make([]string, len(d.Info.Dims))
	for i, n := range d.Info.Dims {
		from[i], to[i] = "0", strconv.FormatInt(n-1, 10)
	}
	d.From, d.To = strings.Join(from, ", "), strings.Join(to, ", ")
	status := http.StatusOK
	if fill != nil {
		if err := fill(&d); err != nil {
			status, hd.Error = errorOf(err)
		}
	}
	c.write(w, status, hd, func(m *markup) { latticeViewMain(m, &d) })
}

func (c *Console) latticePath(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := r.PostForm
	c.showLattice(w, r, v, f.Get("id"), func(d *latticeView) error {
		d.From, d.To, d.Catalytic = f.Get("from"), f.Get("to"), f.Get("catalytic") == "yes"
		from, ok1 := ints(d.From)
		to, ok2 := ints(d.To)
		if !ok1 || !ok2 {
			return invalid("from and to are coordinates: whole numbers separated by commas, one per dimension")
		}
		var res latticesvc.PathResult
		if err := c.api(r, v, http.MethodPost, "/api/lattices/"+url.PathEscape(d.Info.ID)+"/path", map[string]any{"from": from, "to": to, "catalytic": d.Catalytic}, &res); err != nil {
			return err
		}
		d.Result = &res
		return nil
	})
}

func latticeViewMain(m *markup, d *latticeView) {
	in := &d.Info
	m.raw("<p>")
	m.text(dimsText(in.Dims))
	m.raw(", ")
	m.text(in.Boundary)
	m.raw(" boundary, ")
	m.int(int64(in.BlockedCells))
	m.raw(" blocked cells of ")
	m.int(in.Points)
	m.raw(".</p>\n<form method=\"post\" action=\"/ui/lattices/path\" class=\"card\" id=\"path-form\">\n<h2>Find a path</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.hidden("id", in.ID)
	m.raw("\n<label for=\"path-from\">From</label>\n<input id=\"path-from\" name=\"from\" required")
	m.attr("value", d.From)
	m.raw(">\n<label for=\"path-to\">To</label>\n<input id=\"path-to\" name=\"to\" required")
	m.attr("value", d.To)
	m.raw(">\n<label class=\"check\"><input type=\"checkbox\" name=\"catalytic\" value=\"yes\"")
	m.flag("checked", d.Catalytic)
	m.raw("> catalytic (borrows memory and gives it back: less clean memory, more time)</label>\n<button type=\"submit\">Find the path</button>\n</form>\n")
	if res := d.Result; res != nil {
		m.raw("<section id=\"path-result\" aria-labelledby=\"path-h\">\n<h2 id=\"path-h\">")
		if res.Reachable {
			m.raw("Reachable in ")
			m.int(res.Length)
			m.raw(" steps")
		} else {
			m.raw("Not reachable")
		}
		m.raw("</h2>\n<table id=\"memory\">\n<caption>The search (")
		m.text(res.Algorithm)
		m.raw(")</caption>\n<tbody>\n")
		row := func(k, v string) {
			m.raw(`<tr><th scope="row">`, k, "</th>")
			cell(m, v)
			m.raw("</tr>\n")
		}
		mem := res.Memory
		row("Points visited", strconv.FormatInt(res.Visited, 10))
		row("Time", strconv.FormatFloat(res.DurationMS, 'f', 2, 64)+" ms")
		row("Clean memory", bytesText(mem.CleanBytes))
		row("Borrowed memory", bytesText(mem.BorrowedBytes))
		row("Accounted peak", bytesText(mem.AccountedPeakBytes))
		row("Scratch", bytesText(mem.ScratchBytes))
		row("Budget", bytesText(mem.BudgetBytes))
		row("An explicit adjacency list would take", bytesText(int64(mem.ExplicitAdjacencyBytes)))
		row("Reduction against it", strconv.FormatFloat(mem.ReductionVsAdjacencyList, 'f', 1, 64)+"×")
		if mem.CatalyticNote != "" {
			row("Note", mem.CatalyticNote)
		}
		m.raw("</tbody>\n</table>\n")
		if res.PathOmitted != "" {
			m.raw("<p>")
			m.text(res.PathOmitted)
			m.raw("</p>\n")
		}
		latticeSVG(m, in, res.Path)
		m.raw("</section>\n")
	}
	m.raw("<p><a href=\"/ui/lattices\">Back to the lattices</a></p>\n")
}

func bytesText(n int64) string {
	switch {
	case n >= 10<<20:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 10<<10:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// maxDrawn bounds the cells of a 2-D grid drawn cell by cell, and
// maxDrawnPath the points of a path drawn at all.
const (
	maxDrawn     = 100 * 100
	maxDrawnPath = 20000
)

// latticeSVG draws the path: a 2-D lattice as its grid (with its listed
// blocked cells) in a square per cell, a 3-D one as its box in an oblique
// projection. Only numbers go into the SVG.
func latticeSVG(m *markup, in *latticesvc.Info, path [][]int64) {
	if len(in.Dims) < 2 || len(in.Dims) > 3 || len(path) == 0 || len(path) > maxDrawnPath {
		return
	}
	const cell = 10.0
	w, h := float64(in.Dims[0]), float64(in.Dims[1])
	var depth float64
	if len(in.Dims) == 3 {
		depth = float64(in.Dims[2])
	}
	// Oblique projection: z moves a point right and up by half a cell.
	pt := func(p []int64) (float64, float64) {
		x, y := float64(p[0])*cell+cell/2, float64(p[1])*cell+cell/2
		if len(p) == 3 {
			z := float64(p[2]) * cell / 2
			x += z
			y += depth*cell/2 - z
		}
		return x, y
	}
	vw, vh := w*cell+depth*cell/2, h*cell+depth*cell/2
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
	m.raw(`<svg class="lattice" role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 `, num(vw), " ", num(vh), `" width="`, num(min(vw, 800)), `"`)
	m.attr("aria-label", "The path drawn on the lattice")
	m.raw(">")
	if depth == 0 {
		m.raw(`<rect class="edge" fill="none" x="0" y="0" width="`, num(vw), `" height="`, num(vh), `"/>`)
		if in.Dims[0]*in.Dims[1] <= maxDrawn && in.Blocked != nil {
			for _, c := range in.Blocked.Cells {
				if len(c) == 2 {
					m.raw(`<rect class="pt" x="`, num(float64(c[0])*cell), `" y="`, num(float64(c[1])*cell), `" width="`, num(cell), `" height="`, num(cell), `"/>`)
				}
			}
		}
	} else {
		// The box's front and back faces.
		for _, z := range []float64{0, depth - 1} {
			x0, y0 := pt([]int64{0, 0, int64(z)})
			x1, y1 := pt([]int64{int64(w - 1), int64(h - 1), int64(z)})
			m.raw(`<rect class="edge" fill="none" x="`, num(x0-cell/2), `" y="`, num(y0-cell/2), `" width="`, num(x1-x0+cell), `" height="`, num(y1-y0+cell), `"/>`)
		}
	}
	m.raw(`<polyline class="path" points="`)
	for i, p := range path {
		if len(p) != len(in.Dims) {
			continue
		}
		x, y := pt(p)
		if i > 0 {
			m.raw(" ")
		}
		m.raw(num(x), ",", num(y))
	}
	m.raw(`"/>`)
	for _, p := range [][]int64{path[0], path[len(path)-1]} {
		if len(p) == len(in.Dims) {
			x, y := pt(p)
			m.raw(`<circle class="on" r="`, num(cell/2.5), `" cx="`, num(x), `" cy="`, num(y), `"/>`)
		}
	}
	m.raw("</svg>\n")
}
