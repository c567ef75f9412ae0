package comfy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsMessage is one text frame from /ws: {"type": ..., "data": {...}}.
type wsMessage struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// socket is the Client's /ws connection, kept across runs (one handshake
// per ComfyUI, not per job). Its reader goroutine hands every message to
// each subscribed run; runs filter by prompt_id. The Client owns it: Close
// (or a read error) ends the reader, and every subscription learns of it.
type socket struct {
	conn *websocket.Conn
	done chan struct{} // closed when the reader has ended

	mu   sync.Mutex
	subs map[*subscription]struct{}
	err  error // why the reader ended
}

// subscription is one run's view of the socket: an unbounded queue, so the
// reader never waits on a run (a run reads nothing until POST /prompt has
// answered, and a fast prompt can finish before that).
type subscription struct {
	sock  *socket
	ready chan struct{} // holds a token when there is news

	mu     sync.Mutex
	queue  []wsMessage
	closed bool
	err    error
}

// dialSocket connects /ws?clientId=id. It sends no Origin header: ComfyUI
// answers 403 to a loopback request whose Origin names another host.
func dialSocket(ctx context.Context, d *websocket.Dialer, wsURL, clientID string, readLimit int64) (*socket, error) {
	conn, resp, err := d.DialContext(ctx, wsURL+"?"+url.Values{"clientId": {clientID}}.Encode(), http.Header{})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	// Large executed payloads and previews exceed small default limits.
	conn.SetReadLimit(readLimit)
	// ComfyUI registers the socket just after the handshake and then sends
	// a status naming it (sid). A prompt posted before that point would have
	// its messages dropped, so wait for that first message.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > firstMessageTimeout {
		conn.SetReadDeadline(time.Now().Add(firstMessageTimeout))
	}
	_, _, err = conn.ReadMessage()
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ComfyUI WebSocket sent no status after connecting: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	s := &socket{conn: conn, done: make(chan struct{}), subs: map[*subscription]struct{}{}}
	go s.read()
	return s, nil
}

// firstMessageTimeout bounds the wait for the status ComfyUI sends on
// connect.
const firstMessageTimeout = 10 * time.Second

func (s *socket) read() {
	defer close(s.done)
	for {
		typ, r, err := s.conn.NextReader()
		if err != nil {
			s.end(err)
			return
		}
		if typ != websocket.TextMessage {
			// Binary frames are previews; nothing here uses them.
			if _, err := io.Copy(io.Discard, r); err != nil {
				s.end(err)
				return
			}
			continue
		}
		var m wsMessage
		if err := json.NewDecoder(r).Decode(&m); err != nil || m.Type == "" {
			continue
		}
		s.mu.Lock()
		for sub := range s.subs {
			sub.push(m)
		}
		s.mu.Unlock()
	}
}

func (s *socket) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	for sub := range s.subs {
		sub.close(err)
	}
	s.subs = nil
}

func (s *socket) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// close ends the connection and waits for the reader.
func (s *socket) close() {
	s.conn.Close()
	<-s.done
}

func (s *socket) subscribe() *subscription {
	sub := &subscription{sock: s, ready: make(chan struct{}, 1)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		sub.close(s.err)
	} else {
		s.subs[sub] = struct{}{}
	}
	return sub
}

func (sub *subscription) push(m wsMessage) {
	sub.mu.Lock()
	sub.queue = append(sub.queue, m)
	sub.mu.Unlock()
	sub.signal()
}

func (sub *subscription) close(err error) {
	sub.mu.Lock()
	sub.closed, sub.err = true, err
	sub.mu.Unlock()
	sub.signal()
}

func (sub *subscription) signal() {
	select {
	case sub.ready <- struct{}{}:
	default:
	}
}

// take returns the queued messages and whether the socket has ended.
func (sub *subscription) take() ([]wsMessage, bool, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	msgs := sub.queue
	sub.queue = nil
	return msgs, sub.closed, sub.err
}

// cancel stops delivery to this subscription.
func (sub *subscription) cancel() {
	sub.sock.mu.Lock()
	delete(sub.sock.subs, sub)
	sub.sock.mu.Unlock()
}
