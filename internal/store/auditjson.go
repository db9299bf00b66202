package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// auditEntryFields is AuditEntry without its JSON methods.
type auditEntryFields AuditEntry

// MarshalJSON writes the entry with detail as the JSON object it holds,
// byte for byte as sealed (the hash covers those bytes), so an export is
// readable and still verifiable. A detail that is not compact JSON (no
// entry the gateway writes) is written as a base64 string instead, as
// encoding/json writes []byte, so that no byte of it is lost. The HTML
// escaping of the caller's encoder applies: audit.Export turns it off to
// keep the bytes exact.
func (e AuditEntry) MarshalJSON() ([]byte, error) {
	var detail any
	if len(e.Detail) > 0 {
		detail = e.Detail // base64
		if rawDetail(e.Detail) {
			detail = json.RawMessage(e.Detail)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// The fields of AuditEntry in its order, detail in its place.
	err := enc.Encode(struct {
		Seq       int64     `json:"seq"`
		Time      time.Time `json:"time"`
		TenantID  string    `json:"tenant_id,omitempty"`
		Actor     string    `json:"actor"`
		ActorKind string    `json:"actor_kind"`
		Action    string    `json:"action"`
		Target    string    `json:"target,omitempty"`
		Outcome   string    `json:"outcome"`
		LatencyUS int64     `json:"latency_us,omitempty"`
		ClientIP  string    `json:"client_ip,omitempty"`
		Detail    any       `json:"detail,omitempty"`
		PrevHash  []byte    `json:"prev_hash"`
		Hash      []byte    `json:"hash"`
		PIISalt   []byte    `json:"pii_salt,omitempty"`
		PIIDigest []byte    `json:"pii_digest,omitempty"`
		Erased    bool      `json:"erased,omitempty"`
	}{e.Seq, e.Time, e.TenantID, e.Actor, e.ActorKind, e.Action, e.Target, e.Outcome, e.LatencyUS, e.ClientIP, detail, e.PrevHash, e.Hash, e.PIISalt, e.PIIDigest, e.Erased})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// rawDetail reports whether d can be written as itself: a JSON object
// or array that is already compact, so that writing it changes no byte.
func rawDetail(d []byte) bool {
	if d[0] != '{' && d[0] != '[' {
		return false
	}
	var c bytes.Buffer
	if err := json.Compact(&c, d); err != nil {
		return false
	}
	return bytes.Equal(c.Bytes(), d)
}

// UnmarshalJSON reads what MarshalJSON writes: detail as a JSON object
// (kept byte for byte) or, as older exports have it, a base64 string.
func (e *AuditEntry) UnmarshalJSON(b []byte) error {
	aux := struct {
		*auditEntryFields
		Detail json.RawMessage `json:"detail"`
	}{auditEntryFields: (*auditEntryFields)(e)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	e.Detail = nil
	switch d := bytes.TrimSpace(aux.Detail); {
	case len(d) == 0 || string(d) == "null":
	case d[0] == '"':
		var raw []byte
		if err := json.Unmarshal(d, &raw); err != nil {
			return fmt.Errorf("audit entry detail: %w", err)
		}
		e.Detail = raw
	case d[0] == '{' || d[0] == '[':
		e.Detail = bytes.Clone(d)
	default:
		return fmt.Errorf("audit entry detail: want a JSON object or a base64 string, got %.20s", d)
	}
	return nil
}
