package hub

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

// TestBatchAuditWireForm: a batch carries its audit entries' detail as
// base64, the form hubs of every version read, and reads both that and
// the JSON-object form of newer exports back to the same bytes.
func TestBatchAuditWireForm(t *testing.T) {
	b := Batch{DeviceID: "d", AuditFrom: 0, Audit: []store.AuditEntry{{Seq: 1, Actor: "a", ActorKind: "key", Action: "x", Outcome: "ok", Detail: []byte(`{"k":1}`)}}}
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"detail":"eyJrIjoxfQ=="`) || !strings.Contains(string(out), `"device_id":"d"`) || strings.Count(string(out), `"audit":`) != 1 {
		t.Fatalf("batch on the wire: %s", out)
	}
	for _, in := range []string{string(out), strings.Replace(string(out), `"eyJrIjoxfQ=="`, `{"k":1}`, 1)} {
		var back Batch
		if err := json.Unmarshal([]byte(in), &back); err != nil || len(back.Audit) != 1 || string(back.Audit[0].Detail) != `{"k":1}` {
			t.Errorf("reading %s: %v %+v", in, err, back.Audit)
		}
	}
}
