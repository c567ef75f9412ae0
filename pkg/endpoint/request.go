package endpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	sdkendpoint "github.com/runpod/go-sdk/pkg/sdk/endpoint"
)

// Payload limits of the endpoint API (protocols.md §1.11).
const (
	MaxRunPayload     = 10 << 20
	MaxRunSyncPayload = 20 << 20
)

// Request is one job request: its input plus the optional RunPod options
// a request document may carry.
type Request struct {
	// Input is the job's input object, sent as is (compacted) on /runsync.
	Input json.RawMessage
	// Webhook is a URL RunPod posts the result to.
	Webhook string
	Policy  Policy
	// S3Config has RunPod hand the worker S3 credentials for its outputs
	// (the public API's "s3Config"); nil leaves it out. Never logged.
	S3Config *S3Config
}

// S3Config is the public API's s3Config.
type S3Config struct {
	AccessID     string `json:"accessId,omitempty"`
	AccessSecret string `json:"accessSecret,omitempty"`
	BucketName   string `json:"bucketName,omitempty"`
	EndpointURL  string `json:"endpointUrl,omitempty"`
	ObjectPath   string `json:"objectPath,omitempty"`
}

func (c *S3Config) sdk() *sdkendpoint.S3Config {
	if c == nil {
		return nil
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return &sdkendpoint.S3Config{AccessId: opt(c.AccessID), AccessSecret: opt(c.AccessSecret), BucketName: opt(c.BucketName),
		EndpointUrl: opt(c.EndpointURL), ObjectPath: opt(c.ObjectPath)}
}

// Policy is the request's "policy"; zero fields are left out.
type Policy struct {
	// ExecutionTimeout is how long the job may run on a worker.
	ExecutionTimeout time.Duration
	// TTL is how long the job may live, queued and running.
	TTL time.Duration
	// LowPriority keeps the job from making the endpoint scale up.
	LowPriority bool
}

func (p Policy) sdk() *sdkendpoint.Policy {
	if p.ExecutionTimeout <= 0 && p.TTL <= 0 {
		return nil
	}
	var out sdkendpoint.Policy
	if p.ExecutionTimeout > 0 {
		ms := int(p.ExecutionTimeout.Milliseconds())
		out.ExecutionTimeout = &ms
	}
	if p.TTL > 0 {
		ms := int(p.TTL.Milliseconds())
		out.TTL = &ms
	}
	return &out
}

// wireBody is the JSON body of /run and /runsync.
func (r *Request) wireBody() ([]byte, error) {
	type policy struct {
		ExecutionTimeout int64 `json:"executionTimeout,omitempty"`
		TTL              int64 `json:"ttl,omitempty"`
		LowPriority      bool  `json:"lowPriority,omitempty"`
	}
	body := struct {
		Input    json.RawMessage `json:"input"`
		Webhook  string          `json:"webhook,omitempty"`
		Policy   *policy         `json:"policy,omitempty"`
		S3Config *S3Config       `json:"s3Config,omitempty"`
	}{Input: r.Input, Webhook: r.Webhook, S3Config: r.S3Config}
	if r.Policy.ExecutionTimeout > 0 || r.Policy.TTL > 0 || r.Policy.LowPriority {
		body.Policy = &policy{r.Policy.ExecutionTimeout.Milliseconds(), r.Policy.TTL.Milliseconds(), r.Policy.LowPriority}
	}
	return json.Marshal(body)
}

// inputMap decodes the input for the SDK, which wants a map. json.Number
// keeps integers beyond 2^53 (ComfyUI seeds) exact when the SDK re-encodes.
func (r *Request) inputMap() (map[string]interface{}, error) {
	dec := json.NewDecoder(bytes.NewReader(r.Input))
	dec.UseNumber()
	var m map[string]interface{}
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, &InputError{Msg: "the job input must be a JSON object"}
	}
	return m, nil
}

// check refuses what the endpoint API would refuse, with a clearer message.
func (r *Request) check(sync bool) error {
	trimmed := bytes.TrimSpace(r.Input)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return &InputError{Msg: "the job input must be a JSON object"}
	}
	// The body is the input plus a few bytes of framing and options.
	size := len(trimmed) + len(r.Webhook) + 100
	limit, route := MaxRunPayload, "/run"
	if sync {
		limit, route = MaxRunSyncPayload, "/runsync"
	}
	if size > limit {
		return &InputError{Msg: fmt.Sprintf("the request is %.1f MB, over the %d MB RunPod accepts on %s: pass images as URLs instead of base64%s",
			float64(size)/1e6, limit>>20, route, map[bool]string{true: "", false: ", or use --sync (20 MB)"}[sync])}
	}
	return nil
}

// ParseRequest reads a request document such as test_input.json:
// {"input": {...}, "webhook"?: url, "policy"?: {"executionTimeout": ms,
// "ttl": ms, "lowPriority": bool}, "s3Config"?: {...}}. A JSON object
// without an "input" key is taken as the input itself.
func ParseRequest(data []byte) (*Request, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return nil, &InputError{Msg: fmt.Sprintf("the request is not a JSON object: %v", errText(err))}
	}
	in, ok := top["input"]
	if !ok {
		return &Request{Input: json.RawMessage(bytes.TrimSpace(data))}, nil
	}
	req := &Request{Input: in}
	var unknown []string
	for k, v := range top {
		switch k {
		case "input":
		case "webhook":
			if err := json.Unmarshal(v, &req.Webhook); err != nil {
				return nil, &InputError{Msg: `"webhook" must be a URL string`}
			}
		case "policy":
			var p struct {
				ExecutionTimeout *int64 `json:"executionTimeout"`
				TTL              *int64 `json:"ttl"`
				LowPriority      bool   `json:"lowPriority"`
			}
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				return nil, &InputError{Msg: fmt.Sprintf(`"policy" accepts only executionTimeout and ttl (in milliseconds) and lowPriority: %v`, err)}
			}
			req.Policy.LowPriority = p.LowPriority
			if p.ExecutionTimeout != nil {
				req.Policy.ExecutionTimeout = time.Duration(*p.ExecutionTimeout) * time.Millisecond
			}
			if p.TTL != nil {
				req.Policy.TTL = time.Duration(*p.TTL) * time.Millisecond
			}
		case "s3Config":
			var c S3Config
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				// The decoder's message may quote the secret's value.
				return nil, &InputError{Msg: `"s3Config" accepts only accessId, accessSecret, bucketName, endpointUrl and objectPath, as strings`}
			}
			req.S3Config = &c
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, &InputError{Msg: fmt.Sprintf("the request has keys this client does not send (%s): keep only input, webhook, policy and s3Config", strings.Join(unknown, ", "))}
	}
	if t := bytes.TrimSpace(req.Input); len(t) == 0 || t[0] != '{' {
		return nil, &InputError{Msg: `"input" must be a JSON object`}
	}
	return req, nil
}

func errText(err error) string {
	if err == nil {
		return "it is null"
	}
	return err.Error()
}
