package comfytest

import (
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The fake knows a handful of node classes: enough to produce every output
// shape a worker must handle (images, temp previews, gifs, audio, text),
// progress, interrupts, execution errors and each kind of validation error.
// Real class names are used where the fake behaves like the real node.
//
//	EmptyImage             width, height, batch_size, color      -> IMAGE (solid colour)
//	FakeNoiseImage         width, height, seed                   -> IMAGE (incompressible noise)
//	LoadImage              image (file in the input dir)         -> IMAGE
//	CheckpointLoaderSimple ckpt_name (combo of Options.Models)   -> MODEL, CLIP, VAE
//	FakeSampler            steps, step_ms, image?, model?        -> IMAGE; progress per step, interruptible
//	FakeRaise              message, image?                       -> raises RuntimeError
//	SaveImage              images, filename_prefix               -> writes PNGs, ui "images" (type output)
//	PreviewImage           images                                -> writes PNGs, ui "images" (type temp)
//	VHS_VideoCombine       images, frame_rate, filename_prefix   -> writes a GIF, ui "gifs"
//	FakeAudio              seconds                               -> AUDIO
//	SaveAudio              audio, filename_prefix                -> writes a file, ui "audio" (subfolder "audio")
//	PreviewAny             source                                -> ui "text" (not a file)

type inputKind string

const (
	kindInt    inputKind = "INT"
	kindFloat  inputKind = "FLOAT"
	kindString inputKind = "STRING"
	kindCombo  inputKind = "COMBO"
	kindImage  inputKind = "IMAGE"
	kindModel  inputKind = "MODEL"
	kindAudio  inputKind = "AUDIO"
	kindAny    inputKind = "*"
)

type inputSpec struct {
	name     string
	kind     inputKind
	required bool
	min, max float64 // for INT/FLOAT; max 0 = unbounded
	hasMin   bool
	// options lists a combo's allowed values (evaluated per prompt: files
	// appear in the input dir at run time).
	options func(s *Server) []string
	// config is what ComfyUI echoes as extra_info.input_config.
	config map[string]any
}

// value is what flows along a link.
type value struct {
	kind  inputKind
	img   *imageSpec
	audio float64
	text  string
}

type imageSpec struct {
	w, h  int
	color uint32
	noise bool
	seed  int64
}

type execCtx struct {
	s        *Server
	promptID string
	nodeID   string
	progress func(v, max int)
}

// errInterrupted is returned by a node that noticed /interrupt.
var errInterrupted = errors.New("interrupted")

// nodeError is a Python-style exception raised by a node.
type nodeError struct {
	typ, msg string
	tb       []string
}

func (e *nodeError) Error() string { return e.typ + ": " + e.msg }

type classSpec struct {
	name    string
	inputs  []inputSpec
	outputs []inputKind
	output  bool // OUTPUT_NODE
	// validate is VALIDATE_INPUTS: a non-empty string fails validation.
	validate func(s *Server, in map[string]any) string
	// changed is IS_CHANGED: part of the cache signature.
	changed func(s *Server, in map[string]any) string
	run     func(c *execCtx, in map[string]any) ([]value, map[string]any, error)
}

func intInput(name string, min, max float64) inputSpec {
	return inputSpec{name: name, kind: kindInt, required: true, min: min, max: max, hasMin: true,
		config: map[string]any{"default": min, "min": min, "max": max}}
}

func linkInput(name string, k inputKind, required bool) inputSpec {
	return inputSpec{name: name, kind: k, required: required}
}

func strInput(name string) inputSpec {
	return inputSpec{name: name, kind: kindString, required: true, config: map[string]any{}}
}

var classes = map[string]*classSpec{}

func register(c *classSpec) { classes[c.name] = c }

func init() {
	register(&classSpec{
		name:    "EmptyImage",
		inputs:  []inputSpec{intInput("width", 1, 16384), intInput("height", 1, 16384), intInput("batch_size", 1, 4096), intInput("color", 0, 0xFFFFFF)},
		outputs: []inputKind{kindImage},
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			return []value{{kind: kindImage, img: &imageSpec{w: toInt(in["width"]), h: toInt(in["height"]), color: uint32(toInt(in["color"]))}}}, nil, nil
		},
	})
	register(&classSpec{
		name:    "FakeNoiseImage",
		inputs:  []inputSpec{intInput("width", 1, 16384), intInput("height", 1, 16384), intInput("seed", 0, 0)},
		outputs: []inputKind{kindImage},
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			return []value{{kind: kindImage, img: &imageSpec{w: toInt(in["width"]), h: toInt(in["height"]), noise: true, seed: int64(toInt(in["seed"]))}}}, nil, nil
		},
	})
	register(&classSpec{
		name:    "LoadImage",
		inputs:  []inputSpec{{name: "image", kind: kindCombo, required: true, options: inputFiles}},
		outputs: []inputKind{kindImage},
		validate: func(s *Server, in map[string]any) string {
			name, _ := in["image"].(string)
			if _, err := os.Stat(s.inputPath(name)); err != nil {
				return "Invalid image file: " + name
			}
			return ""
		},
		changed: func(s *Server, in map[string]any) string {
			name, _ := in["image"].(string)
			st, err := os.Stat(s.inputPath(name))
			if err != nil {
				return ""
			}
			return fmt.Sprintf("%d-%d", st.Size(), st.ModTime().UnixNano())
		},
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			name, _ := in["image"].(string)
			f, err := os.Open(c.s.inputPath(name))
			if err != nil {
				return nil, nil, &nodeError{typ: "FileNotFoundError", msg: err.Error()}
			}
			defer f.Close()
			cfg, err := png.DecodeConfig(f)
			if err != nil {
				return nil, nil, &nodeError{typ: "PIL.UnidentifiedImageError", msg: fmt.Sprintf("cannot identify image file '%s'", name)}
			}
			return []value{{kind: kindImage, img: &imageSpec{w: cfg.Width, h: cfg.Height}}}, nil, nil
		},
	})
	register(&classSpec{
		name:    "CheckpointLoaderSimple",
		inputs:  []inputSpec{{name: "ckpt_name", kind: kindCombo, required: true, options: func(s *Server) []string { return s.opts.Models }}},
		outputs: []inputKind{kindModel, "CLIP", "VAE"},
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			return []value{{kind: kindModel}, {kind: "CLIP"}, {kind: "VAE"}}, nil, nil
		},
	})
	register(&classSpec{
		name: "FakeSampler",
		inputs: []inputSpec{intInput("steps", 1, 10000), intInput("step_ms", 0, 600000),
			linkInput("image", kindImage, false), linkInput("model", kindModel, false)},
		outputs: []inputKind{kindImage},
		run:     runSampler,
	})
	register(&classSpec{
		name:    "FakeRaise",
		inputs:  []inputSpec{strInput("message"), linkInput("image", kindImage, false)},
		outputs: []inputKind{kindImage},
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			msg, _ := in["message"].(string)
			return nil, nil, &nodeError{typ: "RuntimeError", msg: msg, tb: []string{
				"  File \"/comfy/execution.py\", line 496, in execute\n    output_data, output_ui, has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n",
				"  File \"/comfy/execution.py\", line 315, in get_output_data\n    return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, input_data_all, obj.FUNCTION, allow_interrupt=True, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, hidden_inputs=hidden_inputs)\n",
				"  File \"/comfy/custom_nodes/fake.py\", line 12, in raise_\n    raise RuntimeError(message)\n",
			}}
		},
	})
	register(&classSpec{
		name:   "SaveImage",
		inputs: []inputSpec{linkInput("images", kindImage, true), {name: "filename_prefix", kind: kindString, required: true}},
		output: true,
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			prefix, _ := in["filename_prefix"].(string)
			ref, err := c.s.saveImage(in["images"].(value).img, "output", prefix)
			if err != nil {
				return nil, nil, err
			}
			return nil, map[string]any{"images": []any{ref}}, nil
		},
	})
	register(&classSpec{
		name:   "PreviewImage",
		inputs: []inputSpec{linkInput("images", kindImage, true)},
		output: true,
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			ref, err := c.s.saveImage(in["images"].(value).img, "temp", "ComfyUI_temp_"+randomSuffix())
			if err != nil {
				return nil, nil, err
			}
			return nil, map[string]any{"images": []any{ref}}, nil
		},
	})
	register(&classSpec{
		name: "VHS_VideoCombine",
		inputs: []inputSpec{linkInput("images", kindImage, true), intInput("frame_rate", 1, 240),
			{name: "filename_prefix", kind: kindString, required: true}},
		output: true,
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			prefix, _ := in["filename_prefix"].(string)
			ref, err := c.s.saveGIF(in["images"].(value).img, prefix)
			if err != nil {
				return nil, nil, err
			}
			ref["format"] = "image/gif"
			ref["frame_rate"] = toInt(in["frame_rate"])
			ref["workflow"] = strings.TrimSuffix(ref["filename"].(string), ".gif") + ".png"
			ref["fullpath"] = filepath.Join(c.s.opts.OutputDir, ref["subfolder"].(string), ref["filename"].(string))
			return nil, map[string]any{"gifs": []any{ref}}, nil
		},
	})
	register(&classSpec{
		name:    "FakeAudio",
		inputs:  []inputSpec{intInput("seconds", 1, 600)},
		outputs: []inputKind{kindAudio},
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			return []value{{kind: kindAudio, audio: float64(toInt(in["seconds"]))}}, nil, nil
		},
	})
	register(&classSpec{
		name:   "SaveAudio",
		inputs: []inputSpec{linkInput("audio", kindAudio, true), {name: "filename_prefix", kind: kindString, required: true}},
		output: true,
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			prefix, _ := in["filename_prefix"].(string)
			ref, err := c.s.saveBytes("output", prefix, ".flac", fakeFLAC(in["audio"].(value).audio))
			if err != nil {
				return nil, nil, err
			}
			return nil, map[string]any{"audio": []any{ref}}, nil
		},
	})
	register(&classSpec{
		name:   "PreviewAny",
		inputs: []inputSpec{linkInput("source", kindAny, true)},
		output: true,
		run: func(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
			v := in["source"].(value)
			return nil, map[string]any{"text": []any{fmt.Sprintf("%s value", v.kind)}}, nil
		},
	})
}

func runSampler(c *execCtx, in map[string]any) ([]value, map[string]any, error) {
	steps := toInt(in["steps"])
	delay := time.Duration(toInt(in["step_ms"])) * time.Millisecond
	img := &imageSpec{w: 8, h: 8}
	if v, ok := in["image"].(value); ok && v.img != nil {
		img = v.img
	}
	for i := 1; i <= steps; i++ {
		if c.s.interrupt.Load() {
			return nil, nil, errInterrupted
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-c.s.closing:
				return nil, nil, errInterrupted
			}
		}
		if c.s.interrupt.Load() {
			return nil, nil, errInterrupted
		}
		c.progress(i, steps)
	}
	return []value{{kind: kindImage, img: img}}, nil, nil
}

func inputFiles(s *Server) []string {
	entries, _ := os.ReadDir(s.opts.InputDir)
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// fakeFLAC returns bytes that start like a FLAC stream; the content is not
// playable audio, only something of a plausible size to download.
func fakeFLAC(seconds float64) []byte {
	b := make([]byte, 4+int(seconds*1000))
	copy(b, "fLaC")
	return b
}

func toInt(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case int:
		return x
	case int64:
		return int(x)
	}
	return 0
}
