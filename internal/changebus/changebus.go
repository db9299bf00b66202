// Package changebus tells the other replicas at once that state they keep
// a snapshot of changed in the store — the policy (tenants, plans, virtual
// servers, rules), tool pins — over Redis pub/sub. Each replica still
// polls the store: it stays the source of truth, and the fallback when
// Redis is absent or down; an announcement only makes a replica look now
// instead of at its next poll.
package changebus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channel is the Redis channel announcements go on.
const Channel = "mcpedge:changes"

// Topics announced.
const (
	TopicPolicy     = "policy"
	TopicPins       = "pins"
	TopicQuarantine = "quarantine" // the guard's quarantine verdicts
)

// message is what goes over Redis. A forged one can only make replicas
// read the store earlier than they would have.
type message struct {
	Origin string `json:"origin"`
	Topic  string `json:"topic"`
}

// Parse decodes an announcement; ok is false for anything Announce would
// not have sent.
func Parse(payload []byte) (origin, topic string, ok bool) {
	var m message
	if len(payload) > 512 || json.Unmarshal(payload, &m) != nil || m.Origin == "" || len(m.Origin) > 64 || m.Topic == "" || len(m.Topic) > 32 {
		return "", "", false
	}
	return m.Origin, m.Topic, true
}

// Bus announces changes to, and hears them from, the other replicas. A nil
// *Bus announces nothing and hears nothing.
type Bus struct {
	rdb    *redis.Client
	log    *slog.Logger
	origin string

	mu       sync.Mutex
	handlers map[string][]func()
}

// New returns a bus over rdb, listening until ctx is done. The
// subscription is confirmed before New returns (bounded), so that an
// announcement made after it is heard; go-redis resubscribes on its own
// after a lost connection.
func New(ctx context.Context, rdb *redis.Client, log *slog.Logger) *Bus {
	var b [12]byte
	_, _ = rand.Read(b[:])
	bus := &Bus{rdb: rdb, log: log, origin: hex.EncodeToString(b[:]), handlers: map[string][]func(){}}
	ps := rdb.Subscribe(ctx, Channel)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := ps.Receive(rctx); err != nil {
		log.Warn("changes: subscribing on Redis; relying on the store poll until it reconnects", "err", err)
	}
	cancel()
	ch := ps.Channel()
	go func() {
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				origin, topic, ok := Parse([]byte(msg.Payload))
				if !ok || origin == bus.origin {
					continue
				}
				bus.mu.Lock()
				fns := append([]func(){}, bus.handlers[topic]...)
				bus.mu.Unlock()
				for _, f := range fns {
					f()
				}
			}
		}
	}()
	return bus
}

// NewAnnouncer returns a bus over rdb that announces and hears nothing:
// for a process that changes the store and serves no client (the CLI).
func NewAnnouncer(rdb *redis.Client, log *slog.Logger) *Bus {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &Bus{rdb: rdb, log: log, origin: hex.EncodeToString(b[:]), handlers: map[string][]func(){}}
}

// On calls fn whenever another replica announces topic. fn must not block
// for long (it runs on the bus's goroutine).
func (b *Bus) On(topic string, fn func()) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.handlers[topic] = append(b.handlers[topic], fn)
	b.mu.Unlock()
}

// Announce tells the other replicas that topic changed in the store. A
// failure is logged: they then see the change at their next poll.
func (b *Bus) Announce(ctx context.Context, topic string) {
	if b == nil {
		return
	}
	p, _ := json.Marshal(message{Origin: b.origin, Topic: topic})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := b.rdb.Publish(ctx, Channel, p).Err(); err != nil {
		b.log.Warn("changes: announcing on Redis; other replicas see the change at their next poll", "topic", topic, "err", err)
	}
}
