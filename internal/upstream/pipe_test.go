package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeChild is the far end of a Pipe without a process: what the pipe
// writes arrives on in, what the test writes to out the pipe reads.
type fakeChild struct {
	in  *bufio.Reader
	out *io.PipeWriter
	p   *Pipe
}

func newFakeChild(t *testing.T) *fakeChild {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	f := &fakeChild{in: bufio.NewReader(inR), out: outW, p: newPipe(nil, inW, outR, time.Second)}
	t.Cleanup(func() { _ = outW.Close(); _ = inR.Close() })
	return f
}

func (f *fakeChild) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(f.out, line+"\n"); err != nil {
		t.Fatalf("child writing: %v", err)
	}
}

// sayAsync is say for a goroutine: a failed write shows as a missing
// line where the test waits for it.
func (f *fakeChild) sayAsync(line string) { _, _ = io.WriteString(f.out, line+"\n") }

func (f *fakeChild) heard(t *testing.T) string {
	t.Helper()
	l, err := f.in.ReadString('\n')
	if err != nil {
		t.Fatalf("child reading: %v", err)
	}
	return strings.TrimSuffix(l, "\n")
}

// sdkLines reads what the SDK side of the pipe gets, line by line, in the
// background.
func sdkLines(f *fakeChild) <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		br := bufio.NewReader(sdkReader{f.p})
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			ch <- strings.TrimSuffix(l, "\n")
		}
	}()
	return ch
}

func within(t *testing.T, what string, ch <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the SDK side ended", what)
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10s", what)
	}
	return ""
}

func TestPipeHandsTheHotAnswerToItsCallAndTheRestToTheSDK(t *testing.T) {
	f := newFakeChild(t)
	sdk := sdkLines(f)
	type got struct {
		msg  []byte
		sent bool
		err  error
	}
	done := make(chan got, 1)
	go func() {
		m, s, err := f.p.Call(context.Background(), "mcpedge-7", []byte(`{"jsonrpc":"2.0","id":"mcpedge-7","method":"tools/call","params":{"name":"x"}}`+"\n"))
		done <- got{m, s, err}
	}()
	if h := f.heard(t); h != `{"jsonrpc":"2.0","id":"mcpedge-7","method":"tools/call","params":{"name":"x"}}` {
		t.Fatalf("the child read %s", h)
	}
	// Before the answer: a notification, the SDK's own answer, and a
	// request of the child's whose id is the hot call's (ids are per
	// direction): all for the SDK.
	f.say(t, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`)
	f.say(t, `{"jsonrpc":"2.0","id":3,"result":{}}`)
	f.say(t, `{"jsonrpc":"2.0","id":"mcpedge-7","method":"sampling/createMessage","params":{}}`)
	f.say(t, `   `)
	f.say(t, `{"jsonrpc":"2.0","id":"mcpedge-7","result":{"content":[]}}`)
	f.say(t, `{"jsonrpc":"2.0","id":"mcpedge-7","result":{"late":true}}`) // no call waits for it any more
	for _, want := range []string{
		`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}`,
		`{"jsonrpc":"2.0","id":3,"result":{}}`,
		`{"jsonrpc":"2.0","id":"mcpedge-7","method":"sampling/createMessage","params":{}}`,
		`{"jsonrpc":"2.0","id":"mcpedge-7","result":{"late":true}}`,
	} {
		if l := within(t, "SDK line", sdk); l != want {
			t.Fatalf("the SDK read %s, want %s", l, want)
		}
	}
	r := <-done
	if r.err != nil || !r.sent || string(r.msg) != `{"jsonrpc":"2.0","id":"mcpedge-7","result":{"content":[]}}` {
		t.Fatalf("the call got %q sent=%v err=%v", r.msg, r.sent, r.err)
	}
	if n := f.p.Answered(); n != 1 {
		t.Fatalf("Answered() = %d, want 1", n)
	}
}

func TestPipeConcurrentCallsGetTheirOwnAnswers(t *testing.T) {
	f := newFakeChild(t)
	sdk := sdkLines(f)
	const n = 20
	// The child answers in reverse order once it has every request.
	go func() {
		var ids []string
		for range n {
			l, err := f.in.ReadString('\n')
			if err != nil {
				return
			}
			id, _ := responseID([]byte(strings.Replace(l, `"method":"m",`, "", 1)))
			ids = append(ids, id)
		}
		for i := len(ids) - 1; i >= 0; i-- {
			fmt.Fprintf(f.out, `{"jsonrpc":"2.0","id":%q,"result":{"for":%q}}`+"\n", ids[i], ids[i])
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("mcpedge-%d", i)
			m, _, err := f.p.Call(context.Background(), id, []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":"m","params":{}}`+"\n", id)))
			if err == nil && !strings.Contains(string(m), `"for":"`+id+`"`) {
				err = fmt.Errorf("call %s got %s", id, m)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case l := <-sdk:
		t.Fatalf("a hot answer reached the SDK: %s", l)
	default:
	}
}

func TestPipeEndedOutputFailsWaitingCalls(t *testing.T) {
	f := newFakeChild(t)
	sdk := sdkLines(f)
	done := make(chan error, 1)
	go func() {
		_, sent, err := f.p.Call(context.Background(), "mcpedge-1", []byte(`{"jsonrpc":"2.0","id":"mcpedge-1","method":"m"}`+"\n"))
		if !sent {
			err = fmt.Errorf("sent=false for a request the child read: %v", err)
		}
		done <- err
	}()
	f.heard(t)
	_ = f.out.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPipeClosed) {
			t.Fatalf("the waiting call got %v, want ErrPipeClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting call was not failed when the output ended")
	}
	if _, ok := <-sdk; ok {
		t.Fatal("the SDK side read a line after the output ended")
	}
	if _, sent, err := f.p.Call(context.Background(), "mcpedge-2", []byte("{}\n")); sent || !errors.Is(err, ErrPipeClosed) {
		t.Fatalf("a call after the end: sent=%v err=%v, want refused before writing", sent, err)
	}
}

func TestPipeRefusesAnOverlongLine(t *testing.T) {
	f := newFakeChild(t)
	f.p.maxLine = 64
	sdk := sdkLines(f)
	go f.sayAsync(`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"` + strings.Repeat("x", 100) + `"}}`)
	if _, ok := <-sdk; ok {
		t.Fatal("the SDK side read an overlong line")
	}
	if _, _, err := f.p.Call(context.Background(), "mcpedge-1", []byte("{}\n")); err == nil || !strings.Contains(err.Error(), "longer than 64 bytes") {
		t.Fatalf("a call after an overlong line: %v, want the reason", err)
	}
}

func TestPipeLongLinesAcrossTheReadBuffer(t *testing.T) {
	f := newFakeChild(t)
	sdk := sdkLines(f)
	big := strings.Repeat("y", 200<<10) // more than the 64 KiB read buffer
	done := make(chan []byte, 1)
	go func() {
		m, _, _ := f.p.Call(context.Background(), "mcpedge-9", []byte(`{"jsonrpc":"2.0","id":"mcpedge-9","method":"m"}`+"\n"))
		done <- m
	}()
	f.heard(t)
	go f.sayAsync(`{"jsonrpc":"2.0","method":"n","params":{"s":"` + big + `"}}`)
	if l := within(t, "long notification", sdk); len(l) != len(big)+48 {
		t.Fatalf("the SDK read %d bytes, want %d", len(l), len(big)+48)
	}
	go f.sayAsync(`{"jsonrpc":"2.0","id":"mcpedge-9","result":{"s":"` + big + `"}}`)
	select {
	case m := <-done:
		if !strings.HasSuffix(string(m), big+`"}}`) {
			t.Fatalf("the long answer arrived cut: %d bytes", len(m))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no long answer")
	}
}

func TestPipeCallContextEnds(t *testing.T) {
	f := newFakeChild(t)
	_ = sdkLines(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, sent, err := f.p.Call(ctx, "mcpedge-3", []byte(`{"id":"mcpedge-3"}`+"\n"))
		if !sent {
			err = errors.New("not sent")
		}
		done <- err
	}()
	f.heard(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// Its late answer goes nowhere near a later call with another id.
	go f.sayAsync(`{"jsonrpc":"2.0","id":"mcpedge-3","result":{}}`)
	go func() {
		m, _, err := f.p.Call(context.Background(), "mcpedge-4", []byte(`{"id":"mcpedge-4"}`+"\n"))
		if err == nil && !strings.Contains(string(m), "mcpedge-4") {
			err = fmt.Errorf("got %s", m)
		}
		done <- err
	}()
	f.heard(t)
	f.say(t, `{"jsonrpc":"2.0","id":"mcpedge-4","result":{}}`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPipeWriteRules(t *testing.T) {
	f := newFakeChild(t)
	if _, err := f.p.write([]byte(`{"no":"newline"}`)); err == nil {
		t.Fatal("a message without its newline was written")
	}
	if sent, err := f.p.write([]byte("{\"a\":[\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}\n]}\n")); sent || err == nil {
		t.Fatal("a message of several lines was written: a line-framed child reads each as a message")
	}
	pr, pw := io.Pipe()
	_ = pr.Close()
	p := newPipe(nil, pw, strings.NewReader(""), time.Second)
	sent, err := p.write([]byte("{}\n"))
	if sent || err == nil {
		t.Fatalf("a write to a closed stdin: sent=%v err=%v", sent, err)
	}
	p2 := newPipe(nil, &shortWriter{}, strings.NewReader(""), time.Second)
	if _, err := p2.write([]byte("{\"a\":1}\n")); err == nil {
		t.Fatal("a short write was not an error")
	}
	if sent, err := p2.write([]byte("{}\n")); sent || err == nil || !strings.Contains(err.Error(), "part-way") {
		t.Fatalf("a write after a short one: sent=%v err=%v, want refused", sent, err)
	}
}

type shortWriter struct{}

func (*shortWriter) Write(b []byte) (int, error) { return 1, io.ErrShortWrite }
func (*shortWriter) Close() error                { return nil }

func TestResponseID(t *testing.T) {
	for _, c := range []struct {
		line, id string
		ok       bool
	}{
		{`{"jsonrpc":"2.0","id":"mcpedge-1","result":{}}`, "mcpedge-1", true},
		{`  {"id":"a\u0062","error":{"code":1,"message":"m"}}  `, "ab", true},
		{`{"jsonrpc":"2.0","id":1,"result":{}}`, "", false},
		{`{"id":"x","method":"m"}`, "", false},
		{`{"method":"m","id":"x"}`, "", false},
		{`{"result":{}}`, "", false},
		{`[{"id":"x","result":{}}]`, "", false},
		{`{"id":"x",`, "", false},
		{``, "", false},
	} {
		id, ok := responseID([]byte(c.line))
		if id != c.id || ok != c.ok {
			t.Errorf("responseID(%s) = %q %v, want %q %v", c.line, id, ok, c.id, c.ok)
		}
	}
}

func FuzzPipeResponseID(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":"mcpedge-1","result":{}}`, `{"id":"x","method":"m"}`, `[1]`, `{"id":"\ud800"}`, `{"id":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		id, ok := responseID(line)
		if !ok && id != "" {
			t.Fatalf("an id %q without ok", id)
		}
	})
}

// TestPipeCloseFailsWaitingCalls: closing the pipe ends every hot call
// still waiting, also when nothing reads the child's output any more (the
// SDK's reader stops once its connection is closed), so that a call
// whose context has no deadline does not wait forever.
func TestPipeCloseFailsWaitingCalls(t *testing.T) {
	f := newFakeChild(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := f.p.Call(context.Background(), "mcpedge-1", []byte(`{"jsonrpc":"2.0","id":"mcpedge-1","method":"m"}`+"\n"))
		done <- err
	}()
	f.heard(t)
	go func() { _ = f.p.Close() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrPipeClosed) {
			t.Fatalf("the waiting call got %v, want ErrPipeClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting call was not failed when the pipe closed")
	}
	if _, sent, err := f.p.Call(context.Background(), "mcpedge-2", []byte("{}\n")); sent || err == nil {
		t.Fatalf("a call after Close: sent=%v err=%v, want refused", sent, err)
	}
}

// TestPipeCloseWhileAWriteIsStuck: a child that does not read its stdin
// holds a write; Close still ends the child (and so the write) instead of
// waiting for that write.
func TestPipeCloseWhileAWriteIsStuck(t *testing.T) {
	f := newFakeChild(t)
	wrote := make(chan error, 1)
	go func() { wrote <- f.p.Notify([]byte(`{"jsonrpc":"2.0","method":"n"}` + "\n")) }() // the child never reads it
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- f.p.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a write the child never reads")
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the stuck write succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stuck write never ended")
	}
}

// TestPipeKeepsNoLineOnceRead: a big line the SDK has read whole is not
// kept until the child's next line, which may come much later.
func TestPipeKeepsNoLineOnceRead(t *testing.T) {
	f := newFakeChild(t)
	go f.sayAsync(`{"jsonrpc":"2.0","method":"n","params":{"s":"` + strings.Repeat("z", 1<<20) + `"}}`)
	r := sdkReader{f.p}
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n > 0 && buf[n-1] == '\n' {
			break
		}
	}
	if total < 1<<20 {
		t.Fatalf("read %d bytes", total)
	}
	if cap(f.p.rest) != 0 {
		t.Fatalf("the pipe keeps %d bytes of a line the SDK has read", cap(f.p.rest))
	}
}

// TestPipeCloseEndsAChildThatReadsNothing: a real child that never reads
// its stdin (sleep) with a write stuck on the full pipe: Close ends the
// write, signals the child and returns.
func TestPipeCloseEndsAChildThatReadsNothing(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	p, err := startPipe(exec.Command(sleep, "300"), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill() }) // not left behind if the test fails
	wrote := make(chan error, 1)
	big := append([]byte(`{"s":"`+strings.Repeat("x", 1<<20)+`"}`), '\n') // more than a pipe holds
	go func() { wrote <- p.Notify(big) }()
	time.Sleep(100 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the write the child never read succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stuck write never ended")
	}
	if p.cmd.ProcessState == nil {
		t.Fatal("the child was not waited for")
	}
}

// TestPipeCallOnAnEndedContextSendsNothing: as the SDK's transport
// refuses a write on an ended context, a hot call whose context has
// already ended is not written (the child would run it for nobody).
func TestPipeCallOnAnEndedContextSendsNothing(t *testing.T) {
	f := newFakeChild(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, sent, err := f.p.Call(ctx, "mcpedge-1", []byte(`{"jsonrpc":"2.0","id":"mcpedge-1","method":"m"}`+"\n"))
		if sent {
			err = errors.New("sent on an ended context")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled before writing", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call was written on an ended context (the child never read it)")
	}
}
