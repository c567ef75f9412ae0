package comfy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runpod-comfy/worker/pkg/comfy/comfytest"
	"github.com/runpod-comfy/worker/pkg/progress"
)

const imageWorkflow = `{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32, "batch_size": 1, "color": 16711680}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}, "_meta": {"title": "Save"}}
}`

// slowWorkflow runs a FakeSampler of steps × stepMS before saving.
func slowWorkflow(steps, stepMS int) string {
	return fmt.Sprintf(`{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
 "2": {"class_type": "FakeSampler", "inputs": {"image": ["1", 0], "steps": %d, "step_ms": %d}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}}
}`, steps, stepMS)
}

func mustWorkflow(t testing.TB, s string) Workflow {
	t.Helper()
	wf, err := ParseWorkflow([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return wf
}

func newTestClient(t testing.TB, url string, proc Process, mods ...func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{
		BaseURL: url, Process: proc,
		PollInterval: 20 * time.Millisecond, SilenceTimeout: 300 * time.Millisecond,
		HistoryWait: 3 * time.Second, InterruptGrace: 3 * time.Second,
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// events collects progress events safely.
type events struct {
	mu  sync.Mutex
	all []progress.Event
}

func (e *events) report(ev progress.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []progress.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

var uuid4RE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

const allKindsWorkflow = `{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32, "batch_size": 1, "color": 255}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "renders/pic"}},
 "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
 "4": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "frame_rate": 8, "filename_prefix": "AnimateDiff"}},
 "5": {"class_type": "FakeAudio", "inputs": {"seconds": 2}},
 "6": {"class_type": "SaveAudio", "inputs": {"audio": ["5", 0], "filename_prefix": "audio/ComfyUI"}},
 "7": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}
}`

func TestRunCollectsEveryOutputKind(t *testing.T) {
	for _, version := range []string{comfytest.Version064, comfytest.Version012} {
		t.Run(version, func(t *testing.T) {
			srv := comfytest.Start(t, comfytest.Options{Version: version})
			c := newTestClient(t, srv.URL, nil)
			var ev events
			dest := t.TempDir()
			res, err := c.Run(t.Context(), mustWorkflow(t, allKindsWorkflow), RunOptions{OutputDir: dest, Progress: ev.report})
			if err != nil {
				t.Fatal(err)
			}
			type key struct{ node, kind, typ, sub string }
			var got []key
			for _, o := range res.Outputs {
				got = append(got, key{o.NodeID, o.Kind, o.Type, o.Subfolder})
				srcDir := map[string]string{"output": srv.Options().OutputDir, "temp": srv.Options().TempDir}[o.Type]
				want, err := os.ReadFile(filepath.Join(srcDir, o.Subfolder, o.Filename))
				if err != nil {
					t.Fatal(err)
				}
				have, err := os.ReadFile(o.Path)
				if err != nil || !bytes.Equal(have, want) || o.Size != int64(len(want)) {
					t.Errorf("output %s/%s: downloaded %d bytes (size %d), want %d (%v)", o.Subfolder, o.Filename, len(have), o.Size, len(want), err)
				}
				if !strings.HasPrefix(o.Path, dest) {
					t.Errorf("output %s outside %s", o.Path, dest)
				}
			}
			want := []key{
				{"2", "images", "output", "renders"},
				{"3", "images", "temp", ""},
				{"4", "gifs", "output", ""},
				{"6", "audio", "output", "audio"},
			}
			if !slices.Equal(got, want) {
				t.Errorf("outputs = %+v\nwant %+v", got, want)
			}
			img, err := os.Open(res.Outputs[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			cfg, err := png.DecodeConfig(img)
			if err != nil || cfg.Width != 64 || cfg.Height != 32 {
				t.Errorf("image %dx%d (%v), want 64x32", cfg.Width, cfg.Height, err)
			}

			prompts := srv.Prompts()
			var body struct {
				ClientID string         `json:"client_id"`
				PromptID string         `json:"prompt_id"`
				Prompt   map[string]any `json:"prompt"`
			}
			if err := json.Unmarshal(prompts[len(prompts)-1], &body); err != nil {
				t.Fatal(err)
			}
			if !uuid4RE.MatchString(body.PromptID) || body.ClientID == "" || len(body.Prompt) != 7 {
				t.Errorf("POST /prompt body = %s", prompts[len(prompts)-1])
			}
			if version == comfytest.Version064 && res.PromptID != body.PromptID {
				t.Errorf("result prompt id %s, sent %s", res.PromptID, body.PromptID)
			}
			if version == comfytest.Version012 && (res.PromptID == body.PromptID || !uuid4RE.MatchString(res.PromptID)) {
				t.Errorf("v0.3.12 ignores the client's prompt id; result has %s (sent %s)", res.PromptID, body.PromptID)
			}
			evs := ev.list()
			if len(evs) == 0 || !evs[len(evs)-1].Finished || evs[len(evs)-1].Task != "comfy" {
				t.Errorf("last progress event = %+v", evs)
			}
		})
	}
}

func TestRunSkipTemp(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	res, err := c.Run(t.Context(), mustWorkflow(t, allKindsWorkflow), RunOptions{SkipTemp: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Outputs {
		if o.Type == "temp" || o.Path != "" {
			t.Errorf("output %+v: temp kept or downloaded without OutputDir", o)
		}
	}
	if len(res.Outputs) != 3 {
		t.Errorf("got %d outputs, want 3", len(res.Outputs))
	}
}

func TestRunReportsProgress(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	var ev events
	if _, err := c.Run(t.Context(), mustWorkflow(t, slowWorkflow(3, 1)), RunOptions{Progress: ev.report}); err != nil {
		t.Fatal(err)
	}
	var steps []int64
	var executing []string
	for _, e := range ev.list() {
		if e.Item == "2" && e.Unit == "steps" {
			steps = append(steps, e.Done)
			if e.Total != 3 {
				t.Errorf("step event %+v, want total 3", e)
			}
		}
		if e.Item != "" && e.Unit == "" {
			executing = append(executing, e.Item+":"+e.Message)
		}
	}
	if !slices.Equal(steps, []int64{1, 2, 3}) {
		t.Errorf("steps = %v", steps)
	}
	if !slices.Equal(executing, []string{"1:EmptyImage", "2:FakeSampler", "3:SaveImage"}) {
		t.Errorf("executing events = %v", executing)
	}
}

// TestRunNodeTimings: each node that ran has its time, the slow one the
// most, and together they fit in the execution time.
func TestRunNodeTimings(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	wf := mustWorkflow(t, slowWorkflow(5, 30))
	res, err := c.Run(t.Context(), wf, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nt := res.NodeTimings
	if len(nt) != 3 || nt["2"] < 150*time.Millisecond || nt["1"] >= nt["2"] || nt["3"] >= nt["2"] {
		t.Errorf("node timings %v", nt)
	}
	if sum := nt["1"] + nt["2"] + nt["3"]; sum > res.Timings.Execute {
		t.Errorf("nodes took %v in all, more than the execution's %v", sum, res.Timings.Execute)
	}
}

func TestRunIdenticalResubmissionStillReturnsFiles(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	wf := mustWorkflow(t, imageWorkflow)
	first, err := c.Run(t.Context(), wf, RunOptions{OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Run(t.Context(), wf, RunOptions{OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(second.CachedNodes, []string{"1", "2"}) || len(second.Outputs) != 1 || !second.Outputs[0].Cached || second.Resubmitted {
		t.Fatalf("second run = %+v", second)
	}
	a, _ := os.ReadFile(first.Outputs[0].Path)
	b, err := os.ReadFile(second.Outputs[0].Path)
	if err != nil || !bytes.Equal(a, b) || len(b) == 0 {
		t.Errorf("cached re-run returned different bytes (%v)", err)
	}
	entries, _ := os.ReadDir(srv.Options().OutputDir)
	if len(entries) != 1 {
		t.Errorf("ComfyUI wrote %d files, want 1 (the re-run is cached)", len(entries))
	}

	// The worker's scratch cleaner removed ComfyUI's copy: the output node
	// must run again rather than the job failing or returning nothing.
	for _, e := range entries {
		os.Remove(filepath.Join(srv.Options().OutputDir, e.Name()))
	}
	third, err := c.Run(t.Context(), wf, RunOptions{OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !third.Resubmitted || len(third.Outputs) != 1 || third.Outputs[0].Cached || third.Outputs[0].Size == 0 {
		t.Fatalf("third run = %+v", third)
	}
	prompts := srv.Prompts()
	var last struct {
		Prompt map[string]struct {
			Inputs map[string]any `json:"inputs"`
		} `json:"prompt"`
	}
	json.Unmarshal(prompts[len(prompts)-1], &last)
	if _, ok := last.Prompt["2"].Inputs[rerunInput]; !ok {
		t.Errorf("re-run did not vary the output node: %s", prompts[len(prompts)-1])
	}
	if _, ok := last.Prompt["1"].Inputs[rerunInput]; ok {
		t.Errorf("re-run varied a non-output node (it must stay cached)")
	}
}

// TestRunCachedOutputNameTakenByANodeThatRan: after a job's files were
// deleted, a node that runs may write the very file name a cached node of
// the same prefix still reports. Each node still gets its own image.
func TestRunCachedOutputNameTakenByANodeThatRan(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	wf := func(color int) Workflow {
		return mustWorkflow(t, fmt.Sprintf(`{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 255}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}},
 "3": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": %d}},
 "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "ComfyUI"}}}`, color))
	}
	first, err := c.Run(t.Context(), wf(100), RunOptions{OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, o := range first.Outputs {
		sums[o.NodeID] = o.SHA256
		os.Remove(filepath.Join(srv.Options().OutputDir, o.Subfolder, o.Filename)) // the job's cleanup
	}
	second, err := c.Run(t.Context(), wf(200), RunOptions{OutputDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Outputs) != 2 {
		t.Fatalf("outputs = %+v", second.Outputs)
	}
	for _, o := range second.Outputs {
		switch {
		case o.NodeID == "2" && o.SHA256 != sums["2"]:
			t.Errorf("node 2 (unchanged) returned other bytes than before")
		case o.NodeID == "4" && o.SHA256 == sums["4"]:
			t.Errorf("node 4 (changed) returned its old image")
		}
	}
	if second.Outputs[0].Filename == second.Outputs[1].Filename {
		t.Errorf("both nodes report %s", second.Outputs[0].Filename)
	}
}

// nodeKey is the comparable part of a NodeError.
type nodeKey struct{ NodeID, ClassType, InputName, Type string }

func TestRunValidationErrors(t *testing.T) {
	tests := []struct {
		name     string
		workflow string
		typ      string
		nodes    []nodeKey
		allowed  []string
		inMsg    []string
	}{
		{
			name:     "unknown class",
			workflow: `{"1": {"class_type": "NoSuchNode", "inputs": {}}}`,
			typ:      "invalid_prompt",
			inMsg:    []string{"NoSuchNode does not exist", "Node ID '#1'", "custom node"},
		},
		{
			name:     "missing input",
			workflow: `{"1": {"class_type": "EmptyImage", "inputs": {"height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}`,
			typ:      "prompt_outputs_failed_validation",
			nodes:    []nodeKey{{NodeID: "1", ClassType: "EmptyImage", InputName: "width", Type: "required_input_missing"}},
			inMsg:    []string{`node 1 (EmptyImage) input "width": required_input_missing`},
		},
		{
			name:     "out of range",
			workflow: `{"1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}`,
			typ:      "prompt_outputs_failed_validation",
			nodes:    []nodeKey{{NodeID: "1", ClassType: "EmptyImage", InputName: "width", Type: "value_smaller_than_min"}},
			inMsg:    []string{"Value 0 smaller than min of 1"},
		},
		{
			name:     "model not in list",
			workflow: `{"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "missing.safetensors"}}, "2": {"class_type": "FakeSampler", "inputs": {"model": ["1", 0], "steps": 1, "step_ms": 0}}, "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}`,
			typ:      "prompt_outputs_failed_validation",
			nodes:    []nodeKey{{NodeID: "1", ClassType: "CheckpointLoaderSimple", InputName: "ckpt_name", Type: "value_not_in_list"}},
			allowed:  []string{"v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"},
			inMsg:    []string{`got "missing.safetensors"`, "allowed: v1-5-pruned-emaonly.safetensors, sd_xl_base_1.0.safetensors"},
		},
		{
			name:     "missing input image",
			workflow: `{"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}`,
			typ:      "prompt_outputs_failed_validation",
			nodes:    []nodeKey{{NodeID: "1", ClassType: "LoadImage", InputName: "image", Type: "custom_validation_failed"}},
			inMsg:    []string{"image - Invalid image file: x.png"},
		},
		{
			name:     "link to a missing node",
			workflow: `{"1": {"class_type": "FakeSampler", "inputs": {"image": ["99", 0], "steps": 1, "step_ms": 0}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}`,
			typ:      "prompt_outputs_failed_validation",
			nodes:    []nodeKey{{NodeID: "1", ClassType: "FakeSampler", InputName: "images", Type: "exception_during_inner_validation"}},
		},
		{
			name:     "no output node",
			workflow: `{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}`,
			typ:      "prompt_no_outputs",
			inMsg:    []string{"Prompt has no outputs"},
		},
	}
	for _, version := range []string{comfytest.Version064, comfytest.Version012} {
		srv := comfytest.Start(t, comfytest.Options{Version: version})
		c := newTestClient(t, srv.URL, nil)
		for _, tt := range tests {
			t.Run(version+"/"+tt.name, func(t *testing.T) {
				_, err := c.Run(t.Context(), mustWorkflow(t, tt.workflow), RunOptions{})
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want *ValidationError", err)
				}
				if ve.Type != tt.typ {
					t.Errorf("type = %q, want %q", ve.Type, tt.typ)
				}
				var got []nodeKey
				for _, n := range ve.Nodes {
					got = append(got, nodeKey{NodeID: n.NodeID, ClassType: n.ClassType, InputName: n.InputName, Type: n.Type})
					if n.Message == "" {
						t.Errorf("node error without message: %+v", n)
					}
				}
				if !slices.Equal(got, tt.nodes) {
					t.Errorf("nodes = %+v\nwant %+v", got, tt.nodes)
				}
				if tt.allowed != nil && !slices.Equal(ve.Nodes[0].Allowed, tt.allowed) {
					t.Errorf("allowed = %q", ve.Nodes[0].Allowed)
				}
				for _, want := range tt.inMsg {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("message lacks %q:\n%s", want, err)
					}
				}
			})
		}
	}
}

func TestRunExecutionError(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	wf := `{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "FakeRaise", "inputs": {"image": ["1", 0], "message": "CUDA error: device-side assert triggered"}},
 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}
}`
	_, err := c.Run(t.Context(), mustWorkflow(t, wf), RunOptions{OutputDir: t.TempDir()})
	var ee *ExecutionError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v, want *ExecutionError", err)
	}
	if ee.NodeID != "2" || ee.NodeType != "FakeRaise" || ee.ExceptionType != "RuntimeError" ||
		ee.ExceptionMessage != "CUDA error: device-side assert triggered" || !slices.Equal(ee.Executed, []string{"1"}) {
		t.Errorf("execution error = %+v", ee)
	}
	if len(ee.Traceback) == 0 || !strings.Contains(ee.Traceback[len(ee.Traceback)-1], "raise RuntimeError") {
		t.Errorf("traceback = %q", ee.Traceback)
	}
	in := ee.CurrentInputs["image"]
	if len(in) > maxInputValueBytes+40 || !strings.Contains(in, "truncated") {
		t.Errorf("current_inputs not truncated: %d bytes", len(in))
	}
	if want := "ComfyUI node 2 (FakeRaise) failed: RuntimeError: CUDA error"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message = %q, want prefix %q", err, want)
	}
}

func TestRunTimeoutInterruptsThePrompt(t *testing.T) {
	for _, version := range []string{comfytest.Version064, comfytest.Version012} {
		t.Run(version, func(t *testing.T) {
			srv := comfytest.Start(t, comfytest.Options{Version: version})
			c := newTestClient(t, srv.URL, nil)
			begin := time.Now()
			_, err := c.Run(t.Context(), mustWorkflow(t, slowWorkflow(1000, 20)), RunOptions{Timeout: 300 * time.Millisecond})
			took := time.Since(begin)
			var te *TimeoutError
			if !errors.As(err, &te) || te.Stage != "execute" || !te.Interrupted {
				t.Fatalf("err = %#v, want an interrupted execute *TimeoutError", err)
			}
			if took > 2*time.Second {
				t.Errorf("timeout took %s", took)
			}
			calls := srv.Interrupts()
			if len(calls) != 1 || !calls[0].Hit || calls[0].PromptID == "" {
				t.Errorf("interrupts = %+v, want one naming the prompt", calls)
			}
			// The server is idle again: the next job runs at once.
			res, err := c.Run(t.Context(), mustWorkflow(t, imageWorkflow), RunOptions{Timeout: 5 * time.Second})
			if err != nil || len(res.Outputs) != 1 {
				t.Fatalf("next run: %+v %v", res, err)
			}
		})
	}
}

func TestRunInterruptedByAnotherClient(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	var once sync.Once
	progressFn := func(e progress.Event) {
		if e.Unit == "steps" {
			once.Do(func() {
				go c.do(t.Context(), "POST", "/interrupt", nil)
			})
		}
	}
	_, err := c.Run(t.Context(), mustWorkflow(t, slowWorkflow(1000, 5)), RunOptions{Progress: progressFn})
	var ie *InterruptedError
	if !errors.As(err, &ie) || ie.NodeID != "2" || ie.NodeType != "FakeSampler" {
		t.Fatalf("err = %v, want *InterruptedError at node 2", err)
	}
}

func TestRunSurvivesSocketTrouble(t *testing.T) {
	tests := []struct {
		name string
		beh  comfytest.Behavior
	}{
		{"socket dropped after start", comfytest.Behavior{DropSocketAfter: "execution_start"}},
		{"socket dropped mid-node", comfytest.Behavior{DropSocketAfter: "progress"}},
		{"socket dropped after success", comfytest.Behavior{DropSocketAfter: "execution_success"}},
		{"silent socket", comfytest.Behavior{SilentSocket: true}},
		{"history written late", comfytest.Behavior{HistoryDelay: 300 * time.Millisecond}},
		{"silent socket and late history", comfytest.Behavior{SilentSocket: true, HistoryDelay: 200 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := comfytest.Start(t, comfytest.Options{Behavior: tt.beh})
			c := newTestClient(t, srv.URL, nil)
			res, err := c.Run(t.Context(), mustWorkflow(t, slowWorkflow(3, 50)), RunOptions{OutputDir: t.TempDir(), Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Outputs) != 1 || res.Outputs[0].Size == 0 {
				t.Errorf("outputs = %+v", res.Outputs)
			}
		})
	}
}

func TestRunFailureSeenOnlyInHistory(t *testing.T) {
	// With the socket silent the error must come from status.messages,
	// although the failed prompt's history has an outputs object.
	srv := comfytest.Start(t, comfytest.Options{Behavior: comfytest.Behavior{SilentSocket: true}})
	c := newTestClient(t, srv.URL, nil)
	wf := `{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
 "3": {"class_type": "FakeRaise", "inputs": {"image": ["1", 0], "message": "boom"}},
 "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}
}`
	_, err := c.Run(t.Context(), mustWorkflow(t, wf), RunOptions{Timeout: 10 * time.Second})
	var ee *ExecutionError
	if !errors.As(err, &ee) || ee.NodeID != "3" || ee.ExceptionMessage != "boom" {
		t.Fatalf("err = %v, want the node 3 execution error", err)
	}
}

func TestRunUploadsInputsAndRewritesReferences(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	var pic bytes.Buffer
	png.Encode(&pic, image.NewRGBA(image.Rect(0, 0, 40, 30)))
	wf := `{
 "1": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cat.png"}}
}`
	res, err := c.Run(t.Context(), mustWorkflow(t, wf), RunOptions{
		OutputDir:   t.TempDir(),
		InputPrefix: "job42",
		Inputs:      []Input{{Name: "cat.png", Reader: bytes.NewReader(pic.Bytes())}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inputs["cat.png"] != "job42_cat.png" {
		t.Errorf("inputs = %v", res.Inputs)
	}
	stored, err := os.ReadFile(filepath.Join(srv.Options().InputDir, "job42_cat.png"))
	if err != nil || !bytes.Equal(stored, pic.Bytes()) {
		t.Errorf("uploaded file differs (%v)", err)
	}
	f, _ := os.Open(res.Outputs[0].Path)
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != 40 || cfg.Height != 30 {
		t.Errorf("output made from the upload is %dx%d (%v)", cfg.Width, cfg.Height, err)
	}
	// Every string input equal to the original name is rewritten, even one
	// that is not a file reference; that is the documented rule.
	prompts := srv.Prompts()
	if !strings.Contains(string(prompts[0]), `"image":"job42_cat.png"`) {
		t.Errorf("submitted prompt = %s", prompts[0])
	}

	_, err = c.Run(t.Context(), mustWorkflow(t, wf), RunOptions{Inputs: []Input{{Name: "../etc/passwd", Reader: strings.NewReader("x")}}})
	if err == nil || !strings.Contains(err.Error(), "path separator") {
		t.Errorf("traversal name: err = %v", err)
	}
}

func TestRunKeepsNodeErrorsOfA200(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{})
	c := newTestClient(t, srv.URL, nil)
	wf := `{
 "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "good"}},
 "3": {"class_type": "LoadImage", "inputs": {"image": "absent.png"}},
 "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "bad"}}
}`
	res, err := c.Run(t.Context(), mustWorkflow(t, wf), RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].NodeID != "2" {
		t.Errorf("outputs = %+v", res.Outputs)
	}
	if len(res.NodeErrors) != 1 || res.NodeErrors[0].NodeID != "3" || res.NodeErrors[0].Type != "custom_validation_failed" {
		t.Errorf("node errors = %+v", res.NodeErrors)
	}
}

func TestRunHistoryNeverWritten(t *testing.T) {
	srv := comfytest.Start(t, comfytest.Options{Behavior: comfytest.Behavior{HistoryDelay: time.Hour}})
	c := newTestClient(t, srv.URL, nil, func(cfg *ClientConfig) { cfg.HistoryWait = 200 * time.Millisecond })
	_, err := c.Run(t.Context(), mustWorkflow(t, imageWorkflow), RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "kept no history") {
		t.Fatalf("err = %v", err)
	}
}
