package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "prometheus/mcpedge.rules.yml"
	rulesTestFile = "prometheus/mcpedge.rules.test.yml"
	dashboardFile = "grafana/mcpedge.json"
)

// fromElsewhere are series that are not the gateway's: Prometheus's own
// scrape health and kube-state-metrics in Kubernetes.
func fromElsewhere(name string) bool {
	return name == "up" || strings.HasPrefix(name, "kube_")
}

// --------------------------------------------------------------- files

type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Record      string            `json:"record,omitempty"`
			Alert       string            `json:"alert,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// exprs returns every PromQL expression of the rules and the dashboard,
// each with where it comes from.
func exprs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			out[r.Expr] = "rule " + r.Record + r.Alert
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			out[tg.Expr] = "panel " + p.Title
		}
	}
	return out
}

// metricNameRE finds the series names an expression selects: the
// gateway's (mcpedge_, the Go and process collectors'), Prometheus's up,
// and kube-state-metrics' kube_. Recording rules' names (mcpedge:…) have a
// colon and are not matched.
var metricNameRE = regexp.MustCompile(`\b(?:mcpedge_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+|kube_[a-z0-9_]+|up)\b`)

func namedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	names := map[string][]string{}
	for e, from := range exprs(t) {
		for _, n := range metricNameRE.FindAllString(e, -1) {
			if !slices.Contains(names[n], from) {
				names[n] = append(names[n], from)
			}
		}
	}
	return names
}

// --------------------------------------------------------------- promtool

func TestPrometheusRulesCheck(t *testing.T) {
	promtool := lookTool(t, "promtool", "apt-get install prometheus")
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestPrometheusRulesUnitTests(t *testing.T) {
	promtool := lookTool(t, "promtool", "apt-get install prometheus")
	out, err := exec.Command(promtool, "test", "rules", rulesTestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// Every alert has a case where it fires.
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !fires[r.Alert] {
				t.Errorf("alert %s has no unit test in which it fires", r.Alert)
			}
		}
	}
}

// Every alert carries what a receiver needs to route and explain it.
func TestAlertRulesAreComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			if seen[name] {
				t.Errorf("rule %s is defined twice", name)
			}
			seen[name] = true
			if r.Alert == "" {
				if !strings.HasPrefix(r.Record, "mcpedge:") {
					t.Errorf("recording rule %s: name it mcpedge:<what>:<how>", r.Record)
				}
				continue
			}
			if !strings.HasPrefix(r.Alert, "MCPEdge") {
				t.Errorf("alert %s: name it MCPEdge…", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a summary and a description", r.Alert)
			}
		}
	}
}

// --------------------------------------------------------------- dashboard

func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatalf("dashboard needs a uid and a title: %q %q", d.UID, d.Title)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "job", "instance", "upstream"} {
		if !vars[want] {
			t.Errorf("template variable $%s missing", want)
		}
	}
	varRE := regexp.MustCompile(`\$\{?([a-zA-Z_]+)`)
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: empty query %s", p.Title, tg.RefID)
			}
			for _, m := range varRE.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] && m[1] != "__rate_interval" && m[1] != "__interval" {
					t.Errorf("panel %q uses undefined variable $%s", p.Title, m[1])
				}
			}
		}
	}
	t.Logf("%d panels, %d queries", len(d.Panels), queries)
}

// --------------------------------------------------------------- a real gateway and Prometheus

// scrape reads the gateway's /metrics and returns every series name in it.
func scrape(t *testing.T, g *gateway) map[string]bool {
	t.Helper()
	code, body := g.get(t, "/metrics", adminKey)
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d: %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		switch f.GetType().String() {
		case "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// TestMonitoringAgainstGateway runs a gateway that has served calls
// (servedGateway), checks that every metric the rules and the dashboard
// name is on its /metrics, then has a real Prometheus scrape it and
// evaluate the rules and every dashboard query.
func TestMonitoringAgainstGateway(t *testing.T) {
	prom := lookTool(t, "prometheus", "apt-get install prometheus")
	g := servedGateway(t)

	t.Run("every named metric exists", func(t *testing.T) {
		// The queue's gauges come from a snapshot the gateway caches for
		// a few seconds: scrape until the queued call shows (or give up).
		named := namedMetrics(t)
		have := scrape(t, g)
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !have["mcpedge_queue_oldest_pending_seconds"]; {
			time.Sleep(250 * time.Millisecond)
			have = scrape(t, g)
		}
		var missingNames []string
		for name, from := range named {
			if !have[name] && !fromElsewhere(name) {
				missingNames = append(missingNames, fmt.Sprintf("%s (named by %s)", name, strings.Join(from, "; ")))
			}
		}
		sort.Strings(missingNames)
		for _, m := range missingNames {
			t.Errorf("not on /metrics of a gateway that served calls: %s", m)
		}
	})

	t.Run("prometheus scrapes and evaluates", func(t *testing.T) {
		p := startPrometheus(t, prom, g)
		// The recording rules produce series from the gateway's calls.
		for _, q := range []string{
			`mcpedge:requests:rate5m{upstream="everything", method="tools/call"}`,
			`mcpedge:request_errors:rate5m{upstream="everything", kind="timeout"}`,
			`mcpedge:request_duration_seconds:p95_5m{upstream="everything"}`,
			`mcpedge:auth_failures:rate5m{reason="unauthenticated"}`,
			`mcpedge:upstream_breaker_rejections:rate5m{upstream="everything"}`,
			`mcpedge:queue_pending:sum`,
		} {
			p.waitNonEmpty(t, q, 60*time.Second)
		}
		p.checkRulesHealthy(t)
		// The breaker the timeout opened is seen by its alert (pending
		// for its 2 minutes).
		p.waitAlert(t, "MCPEdgeBreakerOpen", 30*time.Second)
		// Its certificate expires in 12 hours.
		p.waitAlert(t, "MCPEdgeCertificateExpiryCritical", 30*time.Second)

		// Every dashboard query is valid PromQL that Prometheus runs, and
		// the panels about what the gateway did show data.
		mustShow := map[string]bool{"Call rate": true, "Errors": true, "Latency p50 / p95 / p99": true,
			"Upstream ready": true, "Circuit breaker": true, "Breaker rejections": true, "Authentication failures": true,
			"Queue depth": true, "Oldest waiting entry": true, "Queued and refused": true, "Audit throughput": true, "Replicas up": true,
			"Certificate expires in": true}
		repl := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$job", ".*", "$instance", ".*", "$upstream", ".*")
		for _, pn := range loadDashboard(t).Panels {
			shown := false
			for _, tg := range pn.Targets {
				n, err := p.query(repl.Replace(tg.Expr))
				if err != nil {
					t.Errorf("panel %q query %s: %v", pn.Title, tg.RefID, err)
				}
				shown = shown || n > 0
			}
			if mustShow[pn.Title] && !shown {
				t.Errorf("panel %q shows nothing for a gateway that served calls", pn.Title)
			}
		}
	})
}

// prometheus is a running Prometheus server.
type prometheus struct {
	url    string
	stderr *lockedBuffer
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs Prometheus scraping g every second with the
// operator key, loading the rules with every group evaluated every second
// (the file's own intervals would make the test wait).
func startPrometheus(t *testing.T, bin string, g *gateway) *prometheus {
	t.Helper()
	dir := t.TempDir()
	var rf map[string]any
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	for _, grp := range rf["groups"].([]any) {
		grp.(map[string]any)["interval"] = "1s"
	}
	fast, _ := yaml.Marshal(rf)
	rules := filepath.Join(dir, "mcpedge.rules.yml")
	if err := os.WriteFile(rules, fast, 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(g.URL)
	tlsCfg := ""
	if u.Scheme == "https" {
		tlsCfg = fmt.Sprintf("    tls_config:\n      ca_file: %q\n", g.caFile)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: mcpedge
    scheme: %s
    authorization:
      credentials: %q
%s    static_configs:
      - targets: [%q]
`, rules, u.Scheme, adminKey, tlsCfg, u.Host)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	p := &prometheus{url: "http://" + addr, stderr: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s: %v\n%s", err, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// api GETs a Prometheus HTTP API path and decodes its data.
func (p *prometheus) api(path string, q url.Values, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if env.Status != "success" {
		return fmt.Errorf("%s", env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// query runs an instant query and returns how many series it gave.
func (p *prometheus) query(q string) (int, error) {
	var res struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {q}}, &res); err != nil {
		return 0, err
	}
	if res.ResultType == "scalar" {
		return 1, nil
	}
	return len(res.Result), nil
}

func (p *prometheus) waitNonEmpty(t *testing.T, q string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := p.query(q)
		if err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %s gave nothing within %s\n%s", q, within, p.stderr.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkRulesHealthy fails on any rule Prometheus could not evaluate, and
// checks that every rule of the file was loaded.
func (p *prometheus) checkRulesHealthy(t *testing.T) {
	t.Helper()
	var res struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("/api/v1/rules", nil, &res); err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, g := range res.Groups {
		for _, r := range g.Rules {
			loaded++
			if r.Health == "err" || r.LastError != "" {
				t.Errorf("rule %s/%s: %s %s", g.Name, r.Name, r.Health, r.LastError)
			}
		}
	}
	want := 0
	for _, g := range loadRules(t).Groups {
		want += len(g.Rules)
	}
	if loaded != want {
		t.Errorf("prometheus loaded %d rules, the file has %d", loaded, want)
	}
}

func (p *prometheus) waitAlert(t *testing.T, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var res struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := p.api("/api/v1/alerts", nil, &res); err != nil {
			t.Fatal(err)
		}
		for _, a := range res.Alerts {
			if a.Labels["alertname"] == name && (a.State == "pending" || a.State == "firing") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert %s not pending or firing within %s: %+v", name, within, res.Alerts)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
