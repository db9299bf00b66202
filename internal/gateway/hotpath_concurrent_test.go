package gateway

// Many hot-path calls at once: the reader's buffers are reused from one
// answer to the next, so an answer must never carry bytes of another.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// TestHotPathConcurrentCalls: sessions calling at once, with arguments of
// sizes from a few bytes to a MiB (buffers of every size are reused from
// one answer to the next), each get the answer to their own call.
func TestHotPathConcurrentCalls(t *testing.T) {
	up := startHTTPUpstream(t, catalogueUpstream())
	g, url := hotGateway(t, upstreamBlock("cat", up), true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	const sessions, workers, calls = 4, 4, 20
	var wg sync.WaitGroup
	errs := make(chan string, sessions*workers*calls)
	for s := range sessions {
		c := newRawClientWith(t, url+"/mcp", "", `{}`)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					size := 16 << (i % 8) // 16 B .. 2 KiB
					if i == 4 && w == 0 {
						size = 1<<20 + 4096*s
					}
					args := map[string]any{"s": float64(s), "w": float64(w), "i": float64(i), "pad": strings.Repeat(string(rune('a'+(s*workers+w)%26)), size)}
					b, _ := json.Marshal(args)
					id := w*1000 + i // the same ids on every session
					a := c.callTool(id, fmt.Sprintf(`{"name":"cat__echo","arguments":%s}`, b))
					var res struct {
						StructuredContent struct{ Arguments map[string]any }
					}
					if a.Status != http.StatusOK || a.decoded("id") != float64(id) || json.Unmarshal(a.Msg["result"], &res) != nil {
						errs <- fmt.Sprintf("session %d worker %d call %d: HTTP %d: %.200s", s, w, i, a.Status, a.Body)
						continue
					}
					if !reflect.DeepEqual(res.StructuredContent.Arguments, args) {
						errs <- fmt.Sprintf("session %d worker %d call %d: got the answer to another call (%.120s)", s, w, i, a.Body)
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		if n++; n <= 10 {
			t.Error(e)
		}
	}
	if !hotReached(t, g, "hot", "", sessions*workers*calls) {
		t.Errorf("%v calls on the hot path, want %d", hotCount(t, g, "hot", ""), sessions*workers*calls)
	}
}
