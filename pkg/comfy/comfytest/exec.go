package comfytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

type cacheEntry struct {
	outs []value
	ui   map[string]any
}

func nowMS() int64 { return time.Now().UnixMilli() }

// worker is ComfyUI's prompt_worker: one prompt at a time, flags applied
// between prompts and when woken while idle.
func (s *Server) worker() {
	defer s.wg.Done()
	for {
		it := s.next()
		if it == nil {
			return
		}
		s.execute(it)
		s.applyFlags()
	}
}

func (s *Server) next() *item {
	for {
		s.order.Lock()
		s.order.Unlock()
		s.mu.Lock()
		if len(s.queue) > 0 {
			it := s.queue[0]
			s.queue = s.queue[1:]
			s.running = it
			s.mu.Unlock()
			return it
		}
		s.mu.Unlock()
		s.applyFlags()
		select {
		case <-s.wake:
		case <-s.closing:
			return nil
		}
	}
}

func (s *Server) applyFlags() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freeMemory {
		s.freeMemory = false
		s.cache = map[string]*cacheEntry{}
	}
}

// emitter sends one prompt's messages, applying the behaviour that was in
// force when the prompt started.
type emitter struct {
	s        *Server
	beh      Behavior
	clientID string
	promptID string
	dropped  bool
	messages [][]any
	states   map[string]map[string]any
}

func (e *emitter) send(typ string, data map[string]any) {
	if e.beh.SilentSocket {
		return
	}
	if e.clientID != "" {
		e.s.sendTo(e.clientID, typ, data)
	}
	if !e.dropped && e.beh.DropSocketAfter == typ {
		e.dropped = true
		e.s.dropClient(e.clientID)
	}
}

// add is PromptExecutor.add_message: timestamped, kept for the history,
// sent to the client (or to everyone when broadcast and there is no client).
func (e *emitter) add(typ string, data map[string]any, broadcast bool) {
	data["timestamp"] = nowMS()
	e.messages = append(e.messages, []any{typ, data})
	if e.clientID == "" && broadcast && !e.beh.SilentSocket {
		e.s.sendTo("", typ, data)
		return
	}
	e.send(typ, data)
}

func (e *emitter) progressState(node, state string, v, max int) {
	if e.s.opts.Version == Version012 {
		return
	}
	e.states[node] = map[string]any{"value": v, "max": max, "state": state, "node_id": node, "prompt_id": e.promptID,
		"display_node_id": node, "parent_node_id": nil, "real_node_id": node}
	nodes := map[string]any{}
	for k, st := range e.states {
		nodes[k] = st
	}
	e.send("progress_state", map[string]any{"prompt_id": e.promptID, "nodes": nodes})
}

func (s *Server) execute(it *item) {
	s.mu.Lock()
	beh := s.behavior
	if t := s.timings[it.id]; t != nil {
		t.Started = time.Now()
	}
	s.mu.Unlock()
	// nodes.interrupt_processing(False): an interrupt sent while idle is lost.
	s.interrupt.Store(false)
	s.broadcastStatus()
	if s.opts.OnExecute != nil {
		s.opts.OnExecute(it.id)
	}
	s.logf("got prompt")
	start := time.Now()

	e := &emitter{s: s, beh: beh, clientID: it.clientID, promptID: it.id, states: map[string]map[string]any{}}
	e.add("execution_start", map[string]any{"prompt_id": it.id}, false)

	sigs := map[string]string{}
	for id := range it.nodes {
		s.signature(it.nodes, id, sigs, map[string]bool{})
	}
	s.mu.Lock()
	live := map[string]bool{}
	for _, sig := range sigs {
		live[sig] = true
	}
	for sig := range s.cache {
		if !live[sig] {
			delete(s.cache, sig)
		}
	}
	cached := []string{}
	for _, id := range sortedKeys(it.nodes) {
		if s.cache[sigs[id]] != nil {
			cached = append(cached, id)
		}
	}
	s.mu.Unlock()
	cachedAny := make([]any, len(cached))
	for i, c := range cached {
		cachedAny[i] = c
	}
	e.add("execution_cached", map[string]any{"nodes": cachedAny, "prompt_id": it.id}, false)

	order := s.executionOrder(it, sigs)
	values := map[string][]value{}
	ui := map[string]any{}
	meta := map[string]any{}
	executed := []any{}
	fail := func(typ string, data map[string]any, outputs map[string]any) {
		e.add(typ, data, typ == "execution_interrupted")
		s.finish(it, e, "error", false, outputs, meta, start)
	}
	for _, id := range order {
		n := it.nodes[id]
		s.mu.Lock()
		ce := s.cache[sigs[id]]
		s.mu.Unlock()
		if ce != nil {
			values[id] = ce.outs
			if n.class.output {
				var out any
				if ce.ui != nil {
					out = ce.ui
					ui[id] = ce.ui
					meta[id] = nodeMeta(id)
				}
				e.send("executed", map[string]any{"node": id, "display_node": id, "output": out, "prompt_id": it.id})
			}
			continue
		}
		e.progressState(id, "running", 0, 1)
		s.mu.Lock()
		s.lastNode = id
		s.mu.Unlock()
		e.send("executing", map[string]any{"node": id, "display_node": id, "prompt_id": it.id})

		in := map[string]any{}
		for k, v := range n.inputs {
			if link, ok := v.([]any); ok && len(link) == 2 {
				src, _ := link[0].(string)
				outs := values[src]
				if slot := toInt(link[1]); slot < len(outs) {
					in[k] = outs[slot]
				}
				continue
			}
			in[k] = v
		}
		ctx := &execCtx{s: s, promptID: it.id, nodeID: id, progress: func(v, max int) {
			e.progressState(id, "running", v, max)
			e.send("progress", map[string]any{"value": v, "max": max, "prompt_id": it.id, "node": id})
		}}
		outs, nodeUI, err := n.class.run(ctx, in)
		if errors.Is(err, errInterrupted) {
			s.logf("Processing interrupted")
			fail("execution_interrupted", map[string]any{"prompt_id": it.id, "node_id": id, "node_type": n.class.name, "executed": executed}, map[string]any{})
			return
		}
		if err != nil {
			var ne *nodeError
			if !errors.As(err, &ne) {
				ne = &nodeError{typ: "OSError", msg: err.Error()}
			}
			s.logf("!!! Exception during processing !!! %s", ne.msg)
			s.logf("Traceback (most recent call last):\n%s%s: %s", strings.Join(ne.tb, ""), ne.typ, ne.msg)
			fail("execution_error", map[string]any{
				"prompt_id": it.id, "node_id": id, "node_type": n.class.name, "executed": executed,
				"exception_message": ne.msg + "\n", "exception_type": ne.typ, "traceback": toAnySlice(ne.tb),
				"current_inputs": formatInputs(in), "current_outputs": toAnySlice(sortedKeys(values)),
			}, ui)
			return
		}
		e.progressState(id, "finished", 1, 1)
		if nodeUI != nil {
			ui[id] = nodeUI
			meta[id] = nodeMeta(id)
			e.send("executed", map[string]any{"node": id, "display_node": id, "output": nodeUI, "prompt_id": it.id})
		}
		s.mu.Lock()
		s.cache[sigs[id]] = &cacheEntry{outs: outs, ui: nodeUI}
		s.mu.Unlock()
		values[id] = outs
		executed = append(executed, id)
	}
	e.add("execution_success", map[string]any{"prompt_id": it.id}, false)
	s.finish(it, e, "success", true, ui, meta, start)
}

// finish is task_done + the final messages: history stored, status, then
// executing null. HistoryDelay moves the history store after the messages.
func (s *Server) finish(it *item, e *emitter, status string, completed bool, outputs, meta map[string]any, start time.Time) {
	msgs := make([]any, len(e.messages))
	for i, m := range e.messages {
		msgs[i] = m
	}
	entry := map[string]any{
		"prompt":  it.tuple(),
		"outputs": outputs,
		"status":  map[string]any{"status_str": status, "completed": completed, "messages": msgs},
		"meta":    meta,
	}
	if e.beh.HistoryDelay <= 0 {
		s.storeHistory(it.id, entry)
	}
	s.mu.Lock()
	s.running = nil
	s.lastNode = ""
	s.mu.Unlock()
	s.broadcastStatus()
	s.mu.Lock()
	if t := s.timings[it.id]; t != nil {
		t.Finished = time.Now()
	}
	s.mu.Unlock()
	e.send("executing", map[string]any{"node": nil, "prompt_id": it.id})
	s.logf("Prompt executed in %.2f seconds", time.Since(start).Seconds())
	if e.beh.HistoryDelay > 0 {
		select {
		case <-time.After(e.beh.HistoryDelay):
		case <-s.closing:
		}
		s.storeHistory(it.id, entry)
	}
}

func nodeMeta(id string) map[string]any {
	return map[string]any{"node_id": id, "display_node": id, "parent_node": nil, "real_node_id": id}
}

// signature is the fake's cache key: class, IS_CHANGED and every input key
// (known or not), with links replaced by the linked node's signature. Any
// input change, even of a key the class ignores, invalidates the node and
// everything downstream, as in ComfyUI.
func (s *Server) signature(nodes map[string]*promptNode, id string, memo map[string]string, visiting map[string]bool) string {
	if sig, ok := memo[id]; ok {
		return sig
	}
	n := nodes[id]
	if n == nil || visiting[id] {
		return "<missing>"
	}
	visiting[id] = true
	var b strings.Builder
	b.WriteString(n.class.name)
	if n.class.changed != nil {
		b.WriteString("|changed=" + n.class.changed(s, n.inputs))
	}
	keys := make([]string, 0, len(n.inputs))
	for k := range n.inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := n.inputs[k]
		if link, ok := v.([]any); ok && len(link) == 2 {
			src, _ := link[0].(string)
			fmt.Fprintf(&b, "|%s=(%s)#%v", k, s.signature(nodes, src, memo, visiting), link[1])
			continue
		}
		j, _ := json.Marshal(v)
		fmt.Fprintf(&b, "|%s=%s", k, j)
	}
	memo[id] = b.String()
	return memo[id]
}

// executionOrder lists the nodes to visit: dependencies first, cached nodes'
// ancestors skipped (their values come from the cache).
func (s *Server) executionOrder(it *item, sigs map[string]string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		n := it.nodes[id]
		s.mu.Lock()
		cached := s.cache[sigs[id]] != nil
		s.mu.Unlock()
		if !cached {
			for _, k := range sortedKeys(n.inputs) {
				if link, ok := n.inputs[k].([]any); ok && len(link) == 2 {
					if src, _ := link[0].(string); it.nodes[src] != nil {
						visit(src)
					}
				}
			}
		}
		order = append(order, id)
	}
	for _, o := range it.outputs {
		visit(o)
	}
	return order
}

// formatInputs is ComfyUI's current_inputs: each input as a list of repr()
// strings, which for tensors are long. The fake makes them long on purpose.
func formatInputs(in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		switch x := v.(type) {
		case value:
			out[k] = []any{fmt.Sprintf("tensor(%s)", strings.Repeat("[0.5000, 0.5000, 0.5000], ", 400))}
		case string, float64, bool, nil:
			out[k] = []any{x}
		default:
			out[k] = []any{fmt.Sprint(x)}
		}
	}
	return out
}

func toAnySlice(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
