package gateway

import (
	"strings"
	"testing"
	"time"
)

// Each scenario runs the gateway in a child process against a hand-written
// upstream sending data the gateway does not expect, and fails if the child
// dies. docs/security.md: "A malicious or broken upstream taking the gateway
// down" is defended against.

func hostileScenario(results map[string]string) func(t *testing.T) {
	return func(t *testing.T) {
		url := hostileUpstream(t, results)
		_, _ = startGateway(t, "[server]\n"+upstreamBlock("hostile", url))
		time.Sleep(1 * time.Second) // give the supervisor time to register
	}
}

func checkChildSurvived(t *testing.T, out string, ok bool) {
	t.Helper()
	if !ok || strings.Contains(out, "panic:") {
		t.Fatalf("the gateway process died:\n%s", firstLines(out, 12))
	}
}

// A prompts/list result with a null entry: the SDK client filters nil tools
// but not nil prompts, resources or templates.
func TestHostileNullPromptCrashesGateway(t *testing.T) {
	out, ok := inChild(t, hostileScenario(map[string]string{
		"initialize":               hostileInit,
		"tools/list":               `{"tools":[]}`,
		"prompts/list":             `{"prompts":[null]}`,
		"resources/list":           `{"resources":[]}`,
		"resources/templates/list": `{"resourceTemplates":[]}`,
	}))
	checkChildSurvived(t, out, ok)
}

// A resource whose URI net/url cannot parse: mcp.Server.AddResource panics
// on it, and catalogChanged does not check resource URIs (it does check
// templates and tool schemas).
func TestHostileBadResourceURICrashesGateway(t *testing.T) {
	out, ok := inChild(t, hostileScenario(map[string]string{
		"initialize":               hostileInit,
		"tools/list":               `{"tools":[]}`,
		"prompts/list":             `{"prompts":[]}`,
		"resources/list":           `{"resources":[{"uri":"%zz","name":"bad"}]}`,
		"resources/templates/list": `{"resourceTemplates":[]}`,
	}))
	checkChildSurvived(t, out, ok)
}

// notifications/resources/updated is registered in the SDK client with
// missingParamsOK, so r.Params can be nil; sink.ResourceUpdated hands it to
// mcp.Server.ResourceUpdated, which reads params.URI.
func TestHostileParamlessResourceUpdatedCrashesGateway(t *testing.T) {
	out, ok := inChild(t, hostileScenario(map[string]string{
		"initialize":               hostileInit,
		"tools/list":               `{"tools":[]}`,
		"prompts/list":             `{"prompts":[]}`,
		"resources/list":           `SSE:{"jsonrpc":"2.0","method":"notifications/resources/updated"}` + "\n\n" + `{"resources":[]}`,
		"resources/templates/list": `{"resourceTemplates":[]}`,
	}))
	checkChildSurvived(t, out, ok)
}

// For reference (an SDK bug, not the gateway's): the go-sdk client itself
// dereferences req.Params of a paramless notifications/elicitation/complete.
func TestHostileParamlessElicitationCompleteCrashesGateway(t *testing.T) {
	out, ok := inChild(t, hostileScenario(map[string]string{
		"initialize":               hostileInit,
		"tools/list":               `{"tools":[]}`,
		"prompts/list":             `{"prompts":[]}`,
		"resources/list":           `SSE:{"jsonrpc":"2.0","method":"notifications/elicitation/complete"}` + "\n\n" + `{"resources":[]}`,
		"resources/templates/list": `{"resourceTemplates":[]}`,
	}))
	checkChildSurvived(t, out, ok)
}
