package comfytest

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type msg struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

func dial(t *testing.T, s *Server, clientID string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(strings.Replace(s.URL, "http", "ws", 1)+"/ws?clientId="+clientID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// The status naming the socket marks that the server has registered it.
	var m msg
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.ReadJSON(&m); err != nil || m.Type != "status" || m.Data["sid"] != clientID {
		t.Fatalf("first message %+v, %v; want status with sid %s", m, err, clientID)
	}
	return conn
}

// readUntilDone reads messages until executing{node: null}.
func readUntilDone(t *testing.T, conn *websocket.Conn) []msg {
	t.Helper()
	var out []msg
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m msg
		if err := conn.ReadJSON(&m); err != nil {
			tail := types(out)
			t.Fatalf("after %d messages ending %v: %v", len(out), tail[max(0, len(tail)-10):], err)
		}
		out = append(out, m)
		if m.Type == "executing" && m.Data["node"] == nil {
			return out
		}
	}
}

func types(ms []msg) []string {
	var out []string
	for _, m := range ms {
		t := m.Type
		if m.Type == "executing" {
			if n, ok := m.Data["node"].(string); ok {
				t += ":" + n
			} else {
				t += ":null"
			}
		}
		out = append(out, t)
	}
	return out
}

func post(t *testing.T, s *Server, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func submit(t *testing.T, s *Server, clientID, prompt string) string {
	t.Helper()
	code, body := post(t, s, "/prompt", `{"client_id": "`+clientID+`", "prompt": `+prompt+`}`)
	if code != 200 {
		t.Fatalf("POST /prompt = %d %s", code, body)
	}
	var r struct {
		PromptID string `json:"prompt_id"`
	}
	json.Unmarshal(body, &r)
	return r.PromptID
}

const saveGraph = `{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}}}`

func TestRecordedSequences(t *testing.T) {
	raise := `{"1": {"class_type": "EmptyImage", "inputs": {"width": 9, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "FakeRaise", "inputs": {"image": ["1", 0], "message": "boom"}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}`
	tests := []struct {
		version string
		fresh   []string
		cached  []string
		failed  []string
	}{
		{
			version: Version064,
			fresh: []string{"status", "status", "execution_start", "execution_cached",
				"progress_state", "executing:1", "progress_state", "progress_state", "executing:2", "progress_state", "executed",
				"execution_success", "status", "executing:null"},
			cached: []string{"status", "status", "execution_start", "execution_cached", "executed", "execution_success", "status", "executing:null"},
			failed: []string{"status", "status", "execution_start", "execution_cached",
				"progress_state", "executing:1", "progress_state", "progress_state", "executing:2",
				"execution_error", "status", "executing:null"},
		},
		{
			version: Version012,
			fresh: []string{"status", "status", "execution_start", "execution_cached",
				"executing:1", "executing:2", "executed", "execution_success", "status", "executing:null"},
			cached: []string{"status", "status", "execution_start", "execution_cached", "executed", "execution_success", "status", "executing:null"},
			failed: []string{"status", "status", "execution_start", "execution_cached", "executing:1", "executing:2",
				"execution_error", "status", "executing:null"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			s := Start(t, Options{Version: tt.version})
			conn := dial(t, s, "c1")
			id := submit(t, s, "c1", saveGraph)
			fresh := readUntilDone(t, conn)
			if got := types(fresh); !slices.Equal(got, tt.fresh) {
				t.Errorf("fresh run:\n got %v\nwant %v", got, tt.fresh)
			}
			out := fresh[len(fresh)-4].Data["output"].(map[string]any)["images"].([]any)[0].(map[string]any)
			if out["filename"] != "ComfyUI_00001_.png" || out["type"] != "output" || out["subfolder"] != "" {
				t.Errorf("executed output = %v", out)
			}

			submit(t, s, "c1", saveGraph)
			cached := readUntilDone(t, conn)
			if got := types(cached); !slices.Equal(got, tt.cached) {
				t.Errorf("cached run:\n got %v\nwant %v", got, tt.cached)
			}
			if nodes := cached[3].Data["nodes"]; !slices.Equal(toStrings(nodes), []string{"1", "2"}) {
				t.Errorf("execution_cached nodes = %v", nodes)
			}
			again := cached[4].Data["output"].(map[string]any)["images"].([]any)[0].(map[string]any)
			if again["filename"] != "ComfyUI_00001_.png" {
				t.Errorf("cached executed names %v, want the old file", again["filename"])
			}
			if entries, _ := os.ReadDir(s.Options().OutputDir); len(entries) != 1 {
				t.Errorf("cached run wrote files: %d in output dir", len(entries))
			}

			failID := submit(t, s, "c1", raise)
			failed := readUntilDone(t, conn)
			if got := types(failed); !slices.Equal(got, tt.failed) {
				t.Errorf("failed run:\n got %v\nwant %v", got, tt.failed)
			}
			h := history(t, s, failID)
			st := h["status"].(map[string]any)
			if st["status_str"] != "error" || st["completed"] != false {
				t.Errorf("failed history status = %v", st)
			}
			h = history(t, s, id)
			if p := h["prompt"].([]any); len(p) != 5 || p[1] != id {
				t.Errorf("history prompt = %v, want the 5-tuple", p)
			}
			var events []string
			for _, m := range h["status"].(map[string]any)["messages"].([]any) {
				events = append(events, m.([]any)[0].(string))
			}
			if !slices.Equal(events, []string{"execution_start", "execution_cached", "execution_success"}) {
				t.Errorf("history messages = %v", events)
			}
		})
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func history(t *testing.T, s *Server, id string) map[string]any {
	t.Helper()
	resp, err := http.Get(s.URL + "/history/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all map[string]map[string]any
	json.NewDecoder(resp.Body).Decode(&all)
	return all[id]
}

func TestInterruptSequence(t *testing.T) {
	for _, version := range []string{Version064, Version012} {
		t.Run(version, func(t *testing.T) {
			s := Start(t, Options{Version: version})
			conn := dial(t, s, "c1")
			slow := `{"1": {"class_type": "FakeSampler", "inputs": {"steps": 1000, "step_ms": 10}}, "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}`
			id := submit(t, s, "c1", slow)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			readUntilProgress(t, conn)
			// An interrupt naming another prompt is ignored by v0.3.64 and
			// global in v0.3.12.
			post(t, s, "/interrupt", `{"prompt_id": "someone-else"}`)
			want := []string{"execution_interrupted", "status", "executing:null"}
			if version == Version064 {
				for range 3 {
					readUntilProgress(t, conn) // still running
				}
				post(t, s, "/interrupt", `{"prompt_id": "`+id+`"}`)
			}
			rest := readUntilDone(t, conn)
			if got := types(rest); !slices.Equal(got[len(got)-3:], want) {
				t.Errorf("after the interrupt: %v", got[max(0, len(got)-5):])
			}
			interrupted := rest[len(rest)-3].Data
			if interrupted["prompt_id"] != id || interrupted["node_id"] != "1" || interrupted["node_type"] != "FakeSampler" {
				t.Errorf("execution_interrupted = %v", interrupted)
			}
			h := history(t, s, id)
			st := h["status"].(map[string]any)
			if st["status_str"] != "error" || st["completed"] != false || len(h["outputs"].(map[string]any)) != 0 {
				t.Errorf("interrupted history = %v", h)
			}
		})
	}
}

func readUntilProgress(t *testing.T, conn *websocket.Conn) {
	for {
		var m msg
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "progress" {
			return
		}
	}
}

func TestErrorBodies(t *testing.T) {
	tests := []struct {
		name, body string
		code       int
		v064, v012 string // JSON the answer must equal, or a prefix for text
	}{
		{"no prompt", `{"client_id": "x"}`, 400,
			`{"error":{"details":"No prompt provided","extra_info":{},"message":"No prompt provided","type":"no_prompt"},"node_errors":{}}`,
			`{"error":"no prompt","node_errors":[]}`},
		{"unknown class", `{"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}`, 400,
			`{"error":{"details":"Node ID '#1'","extra_info":{},"message":"Cannot execute because node Nope does not exist.","type":"invalid_prompt"},"node_errors":{}}`,
			`{"error":{"details":"Node ID '#1'","extra_info":{},"message":"Cannot execute because node Nope does not exist.","type":"invalid_prompt"},"node_errors":[]}`},
		{"no outputs", `{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}}`, 400,
			`{"error":{"details":"","extra_info":{},"message":"Prompt has no outputs","type":"prompt_no_outputs"},"node_errors":{}}`,
			`{"error":{"details":"","extra_info":{},"message":"Prompt has no outputs","type":"prompt_no_outputs"},"node_errors":[]}`},
		{"missing input", `{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}}`, 400,
			`{"error":{"details":"","extra_info":{},"message":"Prompt outputs failed validation","type":"prompt_outputs_failed_validation"},"node_errors":{"1":{"class_type":"EmptyImage","dependent_outputs":["2"],"errors":[{"details":"width","extra_info":{"input_name":"width"},"message":"Required input is missing","type":"required_input_missing"}]}}}`,
			`{"error":{"details":"","extra_info":{},"message":"Prompt outputs failed validation","type":"prompt_outputs_failed_validation"},"node_errors":{"1":{"class_type":"EmptyImage","dependent_outputs":["2"],"errors":[{"details":"width","extra_info":{"input_name":"width"},"message":"Required input is missing","type":"required_input_missing"}]}}}`},
		{"not JSON", `{"prompt": `, 500, "500 Internal Server Error", "500 Internal Server Error"},
	}
	for _, version := range []string{Version064, Version012} {
		s := Start(t, Options{Version: version})
		for _, tt := range tests {
			t.Run(version+"/"+tt.name, func(t *testing.T) {
				code, body := post(t, s, "/prompt", tt.body)
				want := tt.v064
				if version == Version012 {
					want = tt.v012
				}
				if code != tt.code {
					t.Errorf("status %d, want %d", code, tt.code)
				}
				if code == 500 {
					if !strings.HasPrefix(string(body), want) {
						t.Errorf("body %q", body)
					}
					return
				}
				var got, exp any
				json.Unmarshal(body, &got)
				json.Unmarshal([]byte(want), &exp)
				g, _ := json.Marshal(got)
				e, _ := json.Marshal(exp)
				if !bytes.Equal(g, e) {
					t.Errorf("body\n got %s\nwant %s", g, e)
				}
			})
		}
	}
}

func TestViewAndUpload(t *testing.T) {
	s := Start(t, Options{})
	os.MkdirAll(filepath.Join(s.Options().OutputDir, "sub"), 0o755)
	os.WriteFile(filepath.Join(s.Options().OutputDir, "sub", "a.png"), []byte("output-a"), 0o644)
	os.WriteFile(filepath.Join(s.Options().TempDir, "t.png"), []byte("temp-t"), 0o644)
	os.WriteFile(filepath.Join(s.Options().InputDir, "i.png"), []byte("input-i"), 0o644)
	tests := []struct {
		query string
		code  int
		body  string
	}{
		{"filename=a.png&subfolder=sub", 200, "output-a"},
		{"filename=a.png&subfolder=sub&type=output", 200, "output-a"},
		{"filename=t.png&type=temp", 200, "temp-t"},
		{"filename=i.png [input]", 200, "input-i"},
		{"filename=a.png", 404, ""},
		{"filename=../x.png", 400, ""},
		{"filename=/etc/passwd", 400, ""},
		{"filename=a.png&subfolder=../../", 403, ""},
		{"filename=a.png&type=bogus", 400, ""},
	}
	for _, tt := range tests {
		resp, err := http.Get(s.URL + "/api/view?" + strings.ReplaceAll(tt.query, " ", "%20"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || (tt.code == 200 && string(b) != tt.body) {
			t.Errorf("/view?%s = %d %q, want %d %q", tt.query, resp.StatusCode, b, tt.code, tt.body)
		}
	}

	upload := func(name, content string, overwrite bool) string {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if overwrite {
			mw.WriteField("overwrite", "true")
		}
		fw, _ := mw.CreateFormFile("image", name)
		fw.Write([]byte(content))
		mw.Close()
		resp, err := http.Post(s.URL+"/upload/image", mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r map[string]string
		json.NewDecoder(resp.Body).Decode(&r)
		if r["type"] != "input" || r["subfolder"] != "" {
			t.Errorf("upload answer = %v", r)
		}
		return r["name"]
	}
	if got := upload("i.png", "input-i", false); got != "i.png" {
		t.Errorf("identical upload renamed to %q", got)
	}
	if got := upload("i.png", "other", false); got != "i (1).png" {
		t.Errorf("different upload named %q, want \"i (1).png\"", got)
	}
	if got := upload("i.png", "replaced", true); got != "i.png" {
		t.Errorf("overwrite named %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(s.Options().InputDir, "i.png")); string(b) != "replaced" {
		t.Errorf("overwrite left %q", b)
	}
}

func TestOriginCheck(t *testing.T) {
	s := Start(t, Options{})
	host := strings.TrimPrefix(s.URL, "http://")
	for origin, want := range map[string]int{"": 200, "http://" + host: 200, "http://evil.example": 403, "http://127.0.0.1:1": 403} {
		req, _ := http.NewRequest("GET", s.URL+"/system_stats", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %q: %d, want %d", origin, resp.StatusCode, want)
		}
	}
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+host+"/ws", http.Header{"Origin": {"http://evil.example"}}); err == nil {
		t.Error("WebSocket with a foreign Origin accepted")
	}
}
