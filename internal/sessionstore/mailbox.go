package sessionstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Mailbox carries a request to one named replica and its reply back. The
// gateway uses it for what only one replica can do: resume a 2026-07-28
// client's input-required call, whose upstream call runs in the process
// that started it, when the client's next round reaches another replica.
type Mailbox interface {
	// Serve makes this replica answer the requests addressed to name with
	// fn; fn's context ends at the sender's deadline. Call it once, before
	// serving.
	Serve(name string, fn func(ctx context.Context, body []byte) []byte)
	// Send delivers body (a JSON object) to the replica serving the name
	// to and returns its reply, waiting until ctx ends. ErrNoReplica when
	// no replica listens under that name (it stopped, or never was).
	Send(ctx context.Context, to string, body []byte) ([]byte, error)
}

// ErrNoReplica is Send's error when no replica serves the name it was
// given.
var ErrNoReplica = errors.New("no replica of that name is listening")

// MaxMailBytes bounds a request or a reply carried by a Mailbox.
const MaxMailBytes = 16 << 20

// Channels of the Redis mailbox: requests to a replica go on
// mailChannel+name, replies to a sender on replyChannel+origin.
const (
	mailChannel  = "mcpedge:replica:"
	replyChannel = "mcpedge:replies:"
)

// mailMaxWait bounds how long a replica works on one request, whatever
// deadline the sender asked for; mailMaxServing bounds the requests it
// works on at once (a flood of forged ones cannot pile up goroutines).
const (
	mailMaxWait    = time.Hour
	mailMaxServing = 256
)

// mail is a request (Reply false) or a reply on the Redis mailbox.
type mail struct {
	From     string          `json:"from"`
	ID       uint64          `json:"id"`
	Reply    bool            `json:"reply,omitempty"`
	Deadline int64           `json:"deadline_ms,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	Err      string          `json:"err,omitempty"`
}

// validName reports whether s can name a replica's mailbox.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// parseMail decodes a mailbox message; ok is false for anything this
// package would not have published: a sender that cannot be replied to,
// no id, a body that is not a JSON object, a request without a body or a
// deadline, or more than MaxMailBytes.
func parseMail(payload []byte) (m mail, ok bool) {
	if len(payload) > MaxMailBytes+4096 || json.Unmarshal(payload, &m) != nil || !validName(m.From) || m.ID == 0 || len(m.Err) > 1024 {
		return mail{}, false
	}
	if len(m.Body) > 0 && m.Body[0] != '{' {
		return mail{}, false
	}
	if !m.Reply && (len(m.Body) == 0 || m.Deadline <= 0) {
		return mail{}, false
	}
	return m, true
}

// mailbox is RedisChanges' state for Send and Serve.
type mailbox struct {
	replies sync.Once
	seq     atomic.Uint64
	pending sync.Map // id -> chan mail
	serving chan struct{}
}

// Serve implements Mailbox over Redis pub/sub: requests to name arrive on
// the channel mcpedge:replica:<name>, confirmed subscribed before it
// returns (bounded).
func (c *RedisChanges) Serve(name string, fn func(ctx context.Context, body []byte) []byte) {
	if !validName(name) {
		c.log.Error("sessions: a replica name that cannot be a mailbox", "name", name)
		return
	}
	c.mail.serving = make(chan struct{}, mailMaxServing)
	c.listen(mailChannel+name, "requests to this replica", func(payload []byte) {
		m, ok := parseMail(payload)
		if !ok || m.Reply {
			return
		}
		select {
		case c.mail.serving <- struct{}{}:
		default:
			c.reply(m, nil, "the replica is busy")
			return
		}
		go func() {
			defer func() { <-c.mail.serving }()
			dl := time.UnixMilli(m.Deadline)
			if max := time.Now().Add(mailMaxWait); dl.After(max) {
				dl = max
			}
			ctx, cancel := context.WithDeadline(c.ctx, dl)
			out := fn(ctx, m.Body)
			cancel()
			if len(out) > MaxMailBytes {
				c.reply(m, nil, fmt.Sprintf("the reply of %d bytes exceeds %d", len(out), MaxMailBytes))
				return
			}
			if len(out) == 0 || out[0] != '{' {
				c.reply(m, nil, "the replica gave no reply")
				return
			}
			c.reply(m, out, "")
		}()
	})
}

// reply publishes the reply to request m.
func (c *RedisChanges) reply(m mail, body []byte, errText string) {
	b, err := json.Marshal(mail{From: c.origin, ID: m.ID, Reply: true, Body: body, Err: errText})
	if err != nil {
		c.log.Warn("sessions: encoding a reply", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if err := c.rdb.Publish(ctx, replyChannel+m.From, b).Err(); err != nil {
		c.log.Warn("sessions: replying to another replica on Redis", "err", err)
	}
}

// Send implements Mailbox over Redis pub/sub. A request without a deadline
// waits at most 10 minutes. Redis tells how many subscribers a message
// reached: none means the replica is gone (ErrNoReplica).
func (c *RedisChanges) Send(ctx context.Context, to string, body []byte) ([]byte, error) {
	if !validName(to) {
		return nil, fmt.Errorf("%q cannot name a replica", to)
	}
	if len(body) == 0 || body[0] != '{' {
		return nil, errors.New("a mailbox request must be a JSON object")
	}
	if len(body) > MaxMailBytes {
		return nil, fmt.Errorf("a request of %d bytes exceeds %d", len(body), MaxMailBytes)
	}
	c.mail.replies.Do(func() {
		c.listen(replyChannel+c.origin, "replies from other replicas", func(payload []byte) {
			m, ok := parseMail(payload)
			if !ok || !m.Reply {
				return
			}
			if v, ok := c.mail.pending.LoadAndDelete(m.ID); ok {
				v.(chan mail) <- m // buffered, one reply per id
			}
		})
	})
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	id := c.mail.seq.Add(1)
	ch := make(chan mail, 1)
	c.mail.pending.Store(id, ch)
	defer c.mail.pending.Delete(id)
	b, err := json.Marshal(mail{From: c.origin, ID: id, Deadline: dl.UnixMilli(), Body: body})
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	n, err := c.rdb.Publish(pctx, mailChannel+to, b).Result()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("sending to another replica on Redis: %w", err)
	}
	if n == 0 {
		return nil, ErrNoReplica
	}
	select {
	case m := <-ch:
		if m.Err != "" {
			return nil, errors.New(m.Err)
		}
		return m.Body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
