package comfytest

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// item is one queued prompt: ComfyUI's (number, prompt_id, prompt,
// extra_data, outputs_to_execute) tuple plus what the fake needs.
type item struct {
	number   float64
	id       string
	prompt   map[string]any
	nodes    map[string]*promptNode
	extra    map[string]any
	outputs  []string
	clientID string
}

func (it *item) tuple() []any {
	outs := make([]any, len(it.outputs))
	for i, o := range it.outputs {
		outs[i] = o
	}
	return []any{jsonNumber(it.number), it.id, it.prompt, it.extra, outs}
}

// jsonNumber keeps integral queue numbers integral in JSON, as Python does.
func jsonNumber(f float64) any {
	if f == float64(int64(f)) {
		return int64(f)
	}
	return f
}

func (s *Server) emptyNodeErrors() any {
	if s.opts.Version == Version012 {
		return []any{}
	}
	return map[string]any{}
}

func (s *Server) handlePostPrompt(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.prompts = append(s.prompts, json.RawMessage(body))
	s.mu.Unlock()

	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		// aiohttp answers a JSON decode error with its plain-text 500 page.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "500 Internal Server Error\n\nServer got itself in trouble")
		return
	}
	s.mu.Lock()
	number := float64(s.number)
	if n, ok := req["number"].(float64); ok {
		number = n
	} else {
		if front, _ := req["front"].(bool); front {
			number = -number
		}
		s.number++
	}
	s.mu.Unlock()

	rawPrompt, has := req["prompt"]
	if !has {
		if s.opts.Version == Version012 {
			writeJSON(w, 400, map[string]any{"error": "no prompt", "node_errors": []any{}})
			return
		}
		writeJSON(w, 400, map[string]any{"error": newAPIError("no_prompt", "No prompt provided", "No prompt provided", nil), "node_errors": map[string]any{}})
		return
	}
	prompt, ok := rawPrompt.(map[string]any)
	if !ok {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	id := uuid.NewString()
	if s.opts.Version == Version064 {
		if pid, ok := req["prompt_id"].(string); ok && pid != "" {
			id = pid
		}
	}
	v := s.validatePrompt(prompt)
	if v.err != nil {
		s.logf("invalid prompt: %v", v.err)
		var ne any = v.nodeErrors
		if v.nodeErrors == nil {
			ne = s.emptyNodeErrors()
		}
		writeJSON(w, 400, map[string]any{"error": v.err, "node_errors": ne})
		return
	}
	extra, _ := req["extra_data"].(map[string]any)
	if extra == nil {
		extra = map[string]any{}
	}
	if cid, ok := req["client_id"].(string); ok {
		extra["client_id"] = cid
	}
	// The history keeps no secrets, like ComfyUI's sensitive-key stripping.
	for _, k := range []string{"api_key_comfy_org", "auth_token_comfy_org"} {
		delete(extra, k)
	}
	it := &item{number: number, id: id, prompt: prompt, nodes: v.nodes, extra: extra, outputs: v.outputs}
	it.clientID, _ = extra["client_id"].(string)

	// As in ComfyUI, the enqueue status goes out before the worker can take
	// the prompt: its pick-up status and execution_start always follow it.
	s.order.Lock()
	s.mu.Lock()
	s.timings[id] = &Timing{Received: received}
	s.queue = append(s.queue, it)
	sort.SliceStable(s.queue, func(i, j int) bool { return s.queue[i].number < s.queue[j].number })
	s.mu.Unlock()
	s.broadcastStatus()
	s.order.Unlock()
	s.poke()
	writeJSON(w, 200, map[string]any{"prompt_id": id, "number": jsonNumber(number), "node_errors": v.nodeErrors})
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Server) queueRemaining() int {
	n := len(s.queue)
	if s.running != nil {
		n++
	}
	return n
}

func (s *Server) handleGetPrompt(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := s.queueRemaining()
	s.mu.Unlock()
	writeJSON(w, 200, map[string]any{"exec_info": map[string]any{"queue_remaining": n}})
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	if h, ok := s.history[id]; ok {
		out[id] = h
	}
	writeJSON(w, 200, out)
}

func (s *Server) handleHistoryList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.historyOrder
	if mx, err := strconv.Atoi(r.URL.Query().Get("max_items")); err == nil && mx >= 0 && mx < len(ids) {
		ids = ids[len(ids)-mx:]
	}
	out := map[string]any{}
	for _, id := range ids {
		out[id] = s.history[id]
	}
	writeJSON(w, 200, out)
}

func (s *Server) handlePostHistory(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	s.mu.Lock()
	if req.Clear {
		s.history = map[string]map[string]any{}
		s.historyOrder = nil
	}
	for _, id := range req.Delete {
		delete(s.history, id)
		for i, h := range s.historyOrder {
			if h == id {
				s.historyOrder = append(s.historyOrder[:i:i], s.historyOrder[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	w.WriteHeader(200)
}

func (s *Server) handleGetQueue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	running := []any{}
	if s.running != nil {
		running = append(running, s.running.tuple())
	}
	pending := []any{}
	for _, it := range s.queue {
		pending = append(pending, it.tuple())
	}
	writeJSON(w, 200, map[string]any{"queue_running": running, "queue_pending": pending})
}

func (s *Server) handlePostQueue(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Clear  bool     `json:"clear"`
		Delete []string `json:"delete"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	s.mu.Lock()
	if req.Clear {
		s.queue = nil
	}
	for _, id := range req.Delete {
		for i, it := range s.queue {
			if it.id == id {
				s.queue = append(s.queue[:i:i], s.queue[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	s.broadcastStatus()
	w.WriteHeader(200)
}

func (s *Server) handleInterrupt(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PromptID string `json:"prompt_id"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	call := InterruptCall{PromptID: req.PromptID}
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	switch {
	case s.opts.Version == Version064 && req.PromptID != "":
		if running != nil && running.id == req.PromptID {
			s.logf("Interrupting prompt %s", req.PromptID)
			s.interrupt.Store(true)
			call.Hit = true
		} else {
			s.logf("Prompt %s is not currently running, skipping interrupt", req.PromptID)
		}
	default:
		// v0.3.12 ignores the body: every interrupt is global.
		s.interrupt.Store(true)
		call.Hit = running != nil
	}
	s.mu.Lock()
	s.interrupts = append(s.interrupts, call)
	s.mu.Unlock()
	w.WriteHeader(200)
}

func (s *Server) handleFree(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FreeMemory bool `json:"free_memory"`
	}
	json.NewDecoder(r.Body).Decode(&req)
	if req.FreeMemory {
		s.mu.Lock()
		s.freeMemory = true
		s.mu.Unlock()
		s.poke()
	}
	w.WriteHeader(200)
}

// storeHistory records a finished prompt, as PromptQueue.task_done does.
func (s *Server) storeHistory(id string, entry map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.history[id]; !ok {
		s.historyOrder = append(s.historyOrder, id)
	}
	s.history[id] = entry
	const maxHistory = 10000
	if len(s.historyOrder) > maxHistory {
		delete(s.history, s.historyOrder[0])
		s.historyOrder = s.historyOrder[1:]
	}
}
