package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/filter"
)

const (
	// writeWait bounds one message write; a client that stalls longer is
	// dropped.
	writeWait = 10 * time.Second
	// pongWait is how long a client may stay silent (no pong, no message).
	pongWait = 60 * time.Second
	// pingPeriod keeps pings inside pongWait, at 9/10 of it.
	pingPeriod = pongWait * 9 / 10
	// maxMessage bounds a client's message (a subscribe with its chips).
	maxMessage = 64 << 10
	// replayChunk and replayChunkBytes bound one message of replayed
	// flows.
	replayChunk      = 1000
	replayChunkBytes = 64 << 10
	// maxReplay bounds a subscription's "last".
	maxReplay = 100000
)

// client is one WebSocket connection. The fields below send are owned by
// the hub goroutine.
type client struct {
	h      *hub
	conn   *websocket.Conn
	send   chan []byte // batches from the hub; closed by the hub
	direct chan []byte // replies and replays, in order, before live batches
	ctx    context.Context
	cancel context.CancelFunc
	// release gives back the client's place among the followers.
	release func()
	// queued is how many bytes wait in send: the hub adds, writePump
	// takes away.
	queued atomic.Int64

	// Hub-owned.
	sub        uint64
	subscribed bool
	filter     *filter.Set
	none       bool // subscribed to nothing
	replaying  bool
	replayTil  time.Time
	held       []item
	heldBytes  int
	// replayed holds the IDs of the replay's newest flows until
	// replayedUntil: a live flow from before replayTil that the replay
	// already sent is not sent again, one it missed (stored late) is.
	replayed      map[[16]byte]struct{}
	replayedUntil time.Time
	pending       []byte
	pendingN      int
	sent          uint64
	skipped       uint64
}

// subscribeMsg is the client's request:
// {"type":"subscribe","filters":[...],"since":"5m","last":200}.
type subscribeMsg struct {
	Type    string   `json:"type"`
	Filters []string `json:"filters"`
	Since   string   `json:"since"`
	Last    int      `json:"last"`
}

// readPump reads the client's messages until the connection fails, then
// unregisters it. It is the only reader of conn.
func (c *client) readPump() {
	defer func() {
		c.cancel()
		select {
		case c.h.unregister <- c:
		case <-c.h.done:
		}
		c.conn.Close()
		c.release()
	}()
	c.conn.SetReadLimit(maxMessage)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	var subs uint64
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		c.conn.SetReadDeadline(time.Now().Add(pongWait))
		var m subscribeMsg
		if err := json.Unmarshal(data, &m); err != nil {
			c.reply(errorMsg("bad message: " + err.Error()))
			continue
		}
		switch m.Type {
		case "subscribe":
			subs++
			if err := c.subscribe(subs, &m); err != nil {
				c.reply(errorMsg(err.Error()))
			}
		default:
			c.reply(errorMsg(fmt.Sprintf("unknown message type %q (want subscribe)", m.Type)))
		}
	}
}

// subscribe parses m and hands the subscription to the hub; with since or
// last it also starts the replay of stored flows. A bad request ends the
// current subscription, so the view never shows flows it did not ask for.
func (c *client) subscribe(sub uint64, m *subscribeMsg) error {
	now := time.Now()
	req := subscribeReq{c: c, sub: sub}
	var q flowquery.Query
	var err error
	// The chips are parsed once: the hub matches live flows with the set,
	// the replay's reader reads it (a relay pushes it down as chips).
	if req.filter, err = filter.ParseSet(m.Filters); err != nil {
		c.unsubscribe(sub)
		return err
	}
	if q.Since, err = instant(m.Since, now); err != nil {
		c.unsubscribe(sub)
		return err
	}
	if m.Last < 0 || m.Last > maxReplay {
		c.unsubscribe(sub)
		return fmt.Errorf("last %d: want 0-%d", m.Last, maxReplay)
	}
	q.Last, q.Filter = m.Last, req.filter
	req.replay = q.Last > 0 || !q.Since.IsZero()
	if req.replay {
		q.Until = now
		req.replayTil = now
	}
	select {
	case c.h.subscribe <- req:
	case <-c.ctx.Done():
		return nil
	}
	if req.replay {
		go c.replay(sub, q)
	}
	return nil
}

// unsubscribe ends the current subscription (a subscription matching
// nothing, delivered as one).
func (c *client) unsubscribe(sub uint64) {
	select {
	case c.h.subscribe <- subscribeReq{c: c, sub: sub, none: true}:
	case <-c.ctx.Done():
	}
}

// replay sends the stored flows q selects, in chunks, then tells the hub to
// start the live batches it has held meanwhile.
func (c *client) replay(sub uint64, q flowquery.Query) {
	buf := make([]byte, 0, 64<<10)
	n := 0
	start := func() {
		buf = append(buf[:0], `{"type":"flows","replay":true,"sub":`...)
		buf = strconv.AppendUint(buf, sub, 10)
		buf = append(buf, `,"flows":[`...)
		n = 0
	}
	emit := func() error {
		msg := append(buf, `],"skipped":0}`...)
		buf = make([]byte, 0, 64<<10)
		select {
		case c.direct <- msg:
			start()
			return nil
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
	}
	start()
	seen := map[[16]byte]struct{}{}
	_, err := c.h.src.Query(c.ctx, q, flowquery.Answer{Flow: func(f *api.Flow) error {
		if f.UUID != ([16]byte{}) && f.Time.After(q.Until.Add(-dedupHorizon)) {
			seen[f.UUID] = struct{}{}
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = api.AppendJSON(buf, f)
		n++
		if n == replayChunk || len(buf) >= replayChunkBytes {
			return emit()
		}
		return nil
	}})
	if err == nil && n > 0 {
		err = emit()
	}
	if err != nil && c.ctx.Err() == nil {
		c.reply(errorMsg("replay: " + err.Error()))
	}
	select {
	case c.h.replayed <- replayDone{c: c, sub: sub, seen: seen}:
	case <-c.ctx.Done():
	}
}

// reply queues a direct message to the client.
func (c *client) reply(msg []byte) {
	select {
	case c.direct <- msg:
	case <-c.ctx.Done():
	}
}

func errorMsg(s string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}{"error", s})
	return b
}

// writePump writes direct messages, the hub's batches and pings until the
// hub closes the send queue or a write fails. It is the only writer of conn.
func (c *client) writePump() {
	ping := time.NewTicker(pingPeriod)
	defer func() {
		ping.Stop()
		c.conn.Close()
	}()
	write := func(msg []byte) bool {
		c.conn.SetWriteDeadline(time.Now().Add(writeWait))
		return c.conn.WriteMessage(websocket.TextMessage, msg) == nil
	}
	for {
		select {
		case msg := <-c.direct:
			if !write(msg) {
				return
			}
		case msg, ok := <-c.send:
			if !ok {
				c.conn.SetWriteDeadline(time.Now().Add(writeWait))
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			ok = write(msg)
			c.queued.Add(-int64(cap(msg)))
			c.h.putBuf(msg)
			if !ok {
				return
			}
		case <-ping.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// instant reads since: RFC 3339, or a duration before now like "5m".
func instant(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 && !strings.HasPrefix(s, "-") {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither an RFC 3339 time nor a duration like 5m", s)
}
