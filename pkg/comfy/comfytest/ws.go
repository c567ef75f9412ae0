package comfytest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
)

type wsClient struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

func (c *wsClient) send(typ string, data any) error {
	b, err := json.Marshal(map[string]any{"type": typ, "data": data})
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// The origin check happens in ServeHTTP, exactly as ComfyUI's middleware
// does it, so the upgrader itself accepts any origin.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	sid := r.URL.Query().Get("clientId")
	if sid == "" {
		sid = strings.ReplaceAll(uuid.NewString(), "-", "")
	}
	c := &wsClient{conn: conn}
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		conn.Close()
		return
	default:
	}
	// Reconnecting with the same id replaces the old socket.
	if old := s.clients[sid]; old != nil {
		old.conn.Close()
	}
	s.clients[sid] = c
	remaining := s.queueRemaining()
	last := ""
	if s.running != nil && s.running.clientID == sid {
		last = s.lastNode
	}
	s.mu.Unlock()

	c.send("status", map[string]any{"status": map[string]any{"exec_info": map[string]any{"queue_remaining": remaining}}, "sid": sid})
	if last != "" {
		// On reconnect of the executing client ComfyUI names the current
		// node without a prompt_id.
		c.send("executing", map[string]any{"node": last})
	}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			break
		}
		var m struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(msg, &m) == nil && m.Type == "feature_flags" && s.opts.Version == Version064 {
			c.send("feature_flags", map[string]any{"supports_preview_metadata": true, "max_upload_size": 104857600})
		}
	}
	conn.Close()
	s.mu.Lock()
	if s.clients[sid] == c {
		delete(s.clients, sid)
	}
	s.mu.Unlock()
}

// sendTo sends to one client, or to every client when sid is "". Messages
// for a client that is not connected are dropped, as ComfyUI drops them.
func (s *Server) sendTo(sid, typ string, data any) {
	s.mu.Lock()
	var targets []*wsClient
	if sid == "" {
		for _, c := range s.clients {
			targets = append(targets, c)
		}
	} else if c := s.clients[sid]; c != nil {
		targets = append(targets, c)
	}
	silent := s.behavior.SilentSocket
	s.mu.Unlock()
	if silent {
		return
	}
	for _, c := range targets {
		c.send(typ, data)
	}
}

// dropClient closes a client's connection without a close frame: to the
// client it looks like a network failure.
func (s *Server) dropClient(sid string) {
	s.mu.Lock()
	c := s.clients[sid]
	delete(s.clients, sid)
	s.mu.Unlock()
	if c != nil {
		c.conn.NetConn().Close()
	}
}

func (s *Server) broadcastStatus() {
	s.mu.Lock()
	n := s.queueRemaining()
	s.mu.Unlock()
	s.sendTo("", "status", map[string]any{"status": map[string]any{"exec_info": map[string]any{"queue_remaining": n}}})
}
