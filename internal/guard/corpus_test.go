package guard

import (
	"encoding/json"
	"os"
	"testing"
)

type benignCorpus struct {
	Servers []struct {
		Name   string `json:"name"`
		Source string `json:"source"`
		Items  []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
			Text string `json:"text"`
		} `json:"items"`
	} `json:"servers"`
}

type poisonedCorpus struct {
	Items []struct {
		ID     string `json:"id"`
		Source string `json:"source"`
		Text   string `json:"text"`
	} `json:"items"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestCorpusRates measures the detector on the two corpora
// (docs/guardrails.md, "Scanning"): the reference servers' definitions
// must produce no flag, and every poisoning example must be caught.
func TestCorpusRates(t *testing.T) {
	d, err := NewDetector(nil)
	if err != nil {
		t.Fatal(err)
	}
	var benign benignCorpus
	readJSON(t, "testdata/benign.json", &benign)
	var poisoned poisonedCorpus
	readJSON(t, "testdata/poisoned.json", &poisoned)

	total, flagged := 0, 0
	for _, s := range benign.Servers {
		for _, it := range s.Items {
			total++
			if v := d.Scan(it.Text); v.Flagged() {
				flagged++
				t.Errorf("false flag: %s %s %s (%s): %+v\n%q", s.Name, it.Kind, it.Name, s.Source, v.Findings, it.Text)
			}
		}
	}
	caught := 0
	for _, it := range poisoned.Items {
		v := d.Scan(it.Text)
		if v.Flagged() {
			caught++
			t.Logf("caught %s: %v", it.ID, v.Rules())
		} else {
			t.Errorf("missed: %s (%s)\n%q", it.ID, it.Source, it.Text)
		}
	}
	if total < 250 || len(poisoned.Items) < 25 {
		t.Fatalf("corpora too small: %d benign, %d poisoned", total, len(poisoned.Items))
	}
	t.Logf("benign: %d items from %d servers, %d flagged (false-positive rate %.1f%%)", total, len(benign.Servers), flagged, 100*float64(flagged)/float64(total))
	t.Logf("poisoned: %d items, %d caught (detection rate %.1f%%)", len(poisoned.Items), caught, 100*float64(caught)/float64(len(poisoned.Items)))
}
