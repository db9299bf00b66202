package sessionstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channel is the Redis channel sessions' changes are announced on.
const Channel = "mcpedge:sessions"

// message is what goes over Redis: which session changed (its id hash,
// never its id) and which replica changed it. A forged message can only
// make a replica re-read a session from the store, or close its local
// copy of one (the client's next request re-creates it from the store).
type message struct {
	Origin  string `json:"origin"`
	IDHash  string `json:"id_hash"`
	Deleted bool   `json:"deleted,omitempty"`
	// Ack, when not 0, asks each replica that hears the announcement to
	// acknowledge it on mcpedge:sessions:acks:<origin> once it has taken
	// it in (see Publish).
	Ack uint64 `json:"ack,omitempty"`
}

// ParseMessage decodes an announcement; ok is false for anything this
// package would not have published.
func ParseMessage(payload []byte) (origin, idHash string, deleted, ok bool) {
	m, ok := parseMessage(payload)
	return m.Origin, m.IDHash, m.Deleted, ok
}

func parseMessage(payload []byte) (message, bool) {
	var m message
	if len(payload) > 1024 || json.Unmarshal(payload, &m) != nil || len(m.IDHash) != 64 || !validName(m.Origin) {
		return message{}, false
	}
	if _, err := hex.DecodeString(m.IDHash); err != nil {
		return message{}, false
	}
	return m, true
}

// ackChannel + origin carries the acknowledgements of origin's
// announcements.
const ackChannel = "mcpedge:sessions:acks:"

// ackWait bounds how long Publish waits for the other replicas to take an
// announcement in.
const ackWait = 500 * time.Millisecond

// RedisChanges announces changes over Redis pub/sub.
type RedisChanges struct {
	rdb    *redis.Client
	log    *slog.Logger
	origin string

	mu   sync.Mutex
	fns  []func(string, bool)
	once sync.Once
	ctx  context.Context

	mail mailbox // Send and Serve (mailbox.go)

	// listening is set once this replica hears announcements itself (it
	// then counts among the subscribers Redis reports to Publish).
	listening atomic.Bool
	acksOnce  sync.Once
	ackSeq    atomic.Uint64
	acks      sync.Map // ack id -> chan struct{}
}

// NewRedisChanges returns announcements over rdb; they are received
// until ctx is done.
func NewRedisChanges(ctx context.Context, rdb *redis.Client, log *slog.Logger) *RedisChanges {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &RedisChanges{rdb: rdb, log: log, origin: hex.EncodeToString(b[:]), ctx: ctx}
}

// Publish announces a change; a failure is logged (replicas then see the
// change only when they next load the session).
//
// It returns once every other replica listening has acknowledged taking
// the announcement in (a replica holding a copy of the session has then
// marked it stale: its next request of the session waits for the
// refresh), or after ackWait. So the answer to the client's change goes
// out only when no replica would serve its next request in the state
// before the change. Redis reports how many subscribers got the message,
// which is how many acknowledgements to wait for.
func (c *RedisChanges) Publish(ctx context.Context, idHash string, deleted bool) {
	c.acksOnce.Do(func() {
		c.listen(ackChannel+c.origin, "acknowledgements of session changes", func(payload []byte) {
			var a struct {
				Ack uint64 `json:"ack"`
			}
			if len(payload) > 128 || json.Unmarshal(payload, &a) != nil || a.Ack == 0 {
				return
			}
			if v, ok := c.acks.Load(a.Ack); ok {
				select {
				case v.(chan struct{}) <- struct{}{}:
				default:
				}
			}
		})
	})
	id := c.ackSeq.Add(1)
	got := make(chan struct{}, 64)
	c.acks.Store(id, got)
	defer c.acks.Delete(id)
	b, _ := json.Marshal(message{Origin: c.origin, IDHash: idHash, Deleted: deleted, Ack: id})
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	n, err := c.rdb.Publish(pctx, Channel, b).Result()
	cancel()
	if err != nil {
		c.log.Warn("sessions: announcing a change on Redis", "err", err)
		return
	}
	want := n
	if c.listening.Load() {
		want-- // this replica's own subscription, which ignores it
	}
	timeout := time.NewTimer(ackWait)
	defer timeout.Stop()
	for ; want > 0; want-- {
		select {
		case <-got:
		case <-timeout.C:
			c.log.Debug("sessions: not every replica acknowledged a session change in time", "missing", want)
			return
		case <-ctx.Done():
			return
		}
	}
}

// Subscribe calls fn for each announcement of another replica. The Redis
// subscription starts with the first call and is confirmed before it
// returns (bounded), so that changes published afterwards are seen;
// go-redis resubscribes on its own after a lost connection.
func (c *RedisChanges) Subscribe(fn func(idHash string, deleted bool)) {
	c.mu.Lock()
	c.fns = append(c.fns, fn)
	c.mu.Unlock()
	c.once.Do(func() {
		c.listening.Store(true)
		c.listen(Channel, "session changes", func(payload []byte) {
			m, ok := parseMessage(payload)
			if !ok || m.Origin == c.origin {
				return
			}
			c.mu.Lock()
			fns := append([]func(string, bool){}, c.fns...)
			c.mu.Unlock()
			for _, f := range fns {
				f(m.IDHash, m.Deleted)
			}
			if m.Ack != 0 {
				b, _ := json.Marshal(struct {
					Ack uint64 `json:"ack"`
				}{m.Ack})
				ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
				if err := c.rdb.Publish(ctx, ackChannel+m.Origin, b).Err(); err != nil {
					c.log.Debug("sessions: acknowledging a session change", "err", err)
				}
				cancel()
			}
		})
	})
}

// listen subscribes to channel, confirmed before it returns (bounded: a
// failure is logged as what, and go-redis keeps trying), and hands each
// message's payload to handle until c's context ends.
func (c *RedisChanges) listen(channel, what string, handle func(payload []byte)) {
	ps := c.rdb.Subscribe(c.ctx, channel)
	rctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	if _, err := ps.Receive(rctx); err != nil {
		c.log.Warn("sessions: subscribing to "+what+" on Redis", "err", err)
	}
	cancel()
	ch := ps.Channel()
	go func() {
		defer ps.Close()
		for {
			select {
			case <-c.ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				handle([]byte(msg.Payload))
			}
		}
	}()
}

// AnswerChannel carries clients' answers to questions a replica put to
// them during a call, to the replica that waits for them.
const AnswerChannel = "mcpedge:sessions:answers"

// MaxAnswerBytes bounds a relayed answer.
const MaxAnswerBytes = 8 << 20

// Relay carries a client's answer (a JSON-RPC response) to the replica
// whose call asked the question: the answer's POST may reach any replica.
type Relay interface {
	// PublishAnswer sends the answer body to the question askID of the
	// session whose id hashes to idHash.
	PublishAnswer(ctx context.Context, idHash, askID string, body []byte) error
	// SubscribeAnswers calls fn for every answer another replica relays.
	SubscribeAnswers(fn func(idHash, askID string, body []byte))
}

type answerMessage struct {
	Origin string          `json:"origin"`
	IDHash string          `json:"id_hash"`
	AskID  string          `json:"ask_id"`
	Body   json.RawMessage `json:"body"`
}

// ParseAnswer decodes a relayed answer; ok is false for anything this
// package would not have published.
func ParseAnswer(payload []byte) (origin, idHash, askID string, body []byte, ok bool) {
	var m answerMessage
	if len(payload) > MaxAnswerBytes+1024 || json.Unmarshal(payload, &m) != nil || len(m.IDHash) != 64 ||
		m.Origin == "" || len(m.Origin) > 64 || m.AskID == "" || len(m.AskID) > 128 || len(m.Body) == 0 || m.Body[0] != '{' {
		return "", "", "", nil, false
	}
	if _, err := hex.DecodeString(m.IDHash); err != nil {
		return "", "", "", nil, false
	}
	return m.Origin, m.IDHash, m.AskID, m.Body, true
}

// PublishAnswer implements Relay.
func (c *RedisChanges) PublishAnswer(ctx context.Context, idHash, askID string, body []byte) error {
	if len(body) > MaxAnswerBytes {
		return fmt.Errorf("answer of %d bytes exceeds %d", len(body), MaxAnswerBytes)
	}
	b, err := json.Marshal(answerMessage{Origin: c.origin, IDHash: idHash, AskID: askID, Body: body})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	return c.rdb.Publish(ctx, AnswerChannel, b).Err()
}

// SubscribeAnswers implements Relay; the subscription is confirmed before
// it returns (bounded).
func (c *RedisChanges) SubscribeAnswers(fn func(idHash, askID string, body []byte)) {
	c.listen(AnswerChannel, "relayed answers", func(payload []byte) {
		origin, h, ask, body, ok := ParseAnswer(payload)
		if !ok || origin == c.origin {
			return
		}
		fn(h, ask, body)
	})
}
