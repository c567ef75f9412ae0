package runpod

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// SDKVersion is the Python SDK release whose wire protocol this package
// speaks; it is reported as runpod_version in heartbeats by default, because
// the platform may key features (such as the stop channel) on it.
const SDKVersion = "1.12.0"

// Defaults for the tuning fields of Config.
const (
	DefaultPingInterval         = 10 * time.Second
	DefaultTakeTimeout          = 90 * time.Second
	DefaultTooManyRequestsDelay = 5 * time.Second
	DefaultStopPollInterval     = time.Second
	DefaultResultRetryFor       = 5 * time.Minute
	DefaultResultAttemptTimeout = time.Minute
	DefaultRetryInitial         = 500 * time.Millisecond
	DefaultRetryMax             = 15 * time.Second
	DefaultShutdownGrace        = 20 * time.Second
	DefaultProgressTimeout      = 10 * time.Second
)

// Config is everything the worker needs to know about the platform. The
// first group mirrors the RUNPOD_* environment (see ConfigFromEnv); the
// second tunes timing, and zero means the default.
type Config struct {
	// JobTakeURL is RUNPOD_WEBHOOK_GET_JOB; empty means local mode.
	JobTakeURL string
	// JobDoneURL is RUNPOD_WEBHOOK_POST_OUTPUT: results and progress.
	JobDoneURL string
	// JobStreamURL is RUNPOD_WEBHOOK_POST_STREAM; kept for completeness,
	// handlers here are not generators.
	JobStreamURL string
	// PingURL is RUNPOD_WEBHOOK_PING; empty disables the heartbeat.
	PingURL string
	// APIKey is RUNPOD_AI_API_KEY, sent raw as Authorization. Never logged.
	APIKey string `json:"-"`
	// PodID is RUNPOD_POD_ID, the worker id in URLs. When empty a random
	// UUID is used for URLs and the heartbeat is off, as in the SDK.
	PodID string
	// PingInterval is RUNPOD_PING_INTERVAL (milliseconds in the env).
	PingInterval time.Duration
	// Hostname is RUNPOD_POD_HOSTNAME, reported in internal-error details.
	Hostname string
	// EndpointID is RUNPOD_ENDPOINT_ID.
	EndpointID string
	// Integration is RUNPOD_UA_INTEGRATION, appended to the User-Agent.
	Integration string
	// LogLevel is RUNPOD_LOG_LEVEL (fallback RUNPOD_DEBUG_LEVEL), raw; see
	// ZerologLevel.
	LogLevel string
	// RealtimePort is RUNPOD_REALTIME_PORT: when non-zero the SDK serves the
	// local API on 0.0.0.0:<port> instead of taking jobs.
	RealtimePort int
	// RealtimeConcurrency is RUNPOD_REALTIME_CONCURRENCY (default 1): the
	// SDK's server workers in realtime mode.
	RealtimeConcurrency int

	// Version is this worker's version for the User-Agent.
	Version string
	// RunpodVersion is the runpod_version sent with heartbeats; default
	// SDKVersion.
	RunpodVersion string
	// Concurrency is how many jobs run at once; default 1. With more than
	// one free slot the batch job-take is used.
	Concurrency int
	// TakeTimeout bounds one job-take long poll (and one stop poll).
	TakeTimeout time.Duration
	// TooManyRequestsDelay is the pause after a job-take answered 429.
	TooManyRequestsDelay time.Duration
	// StopPollInterval is the pause after an empty or failed stop poll.
	StopPollInterval time.Duration
	// ResultRetryFor bounds the total time spent delivering one result.
	ResultRetryFor time.Duration
	// ResultAttemptTimeout bounds one result POST, so a hung connection is
	// abandoned and retried instead of eating the whole budget.
	ResultAttemptTimeout time.Duration
	// RetryInitial and RetryMax shape the exponential backoff used for
	// result posts and failing job-takes.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ShutdownGrace is how long a running job may go on after shutdown
	// begins before its context is cancelled.
	ShutdownGrace time.Duration
	// ProgressTimeout bounds one progress POST.
	ProgressTimeout time.Duration
}

// String hides the API key so a Config can be printed or logged safely.
func (c Config) String() string {
	key := ""
	if c.APIKey != "" {
		key = "[redacted]"
	}
	return fmt.Sprintf("runpod.Config{JobTakeURL:%q JobDoneURL:%q PingURL:%q PodID:%q APIKey:%s PingInterval:%s Concurrency:%d}",
		c.JobTakeURL, c.JobDoneURL, c.PingURL, c.PodID, key, c.PingInterval, c.Concurrency)
}

// Local reports whether no job-take URL is configured: the SDK then runs one
// job from a test input instead of the job loop.
func (c Config) Local() bool { return c.JobTakeURL == "" }

// ConfigFromEnv reads the RUNPOD_* variables through getenv (os.Getenv in the
// CLI, a map in tests). It fails only on values that cannot be parsed.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	c := Config{
		JobTakeURL:   get("RUNPOD_WEBHOOK_GET_JOB"),
		JobDoneURL:   get("RUNPOD_WEBHOOK_POST_OUTPUT"),
		JobStreamURL: get("RUNPOD_WEBHOOK_POST_STREAM"),
		PingURL:      get("RUNPOD_WEBHOOK_PING"),
		APIKey:       get("RUNPOD_AI_API_KEY"),
		PodID:        get("RUNPOD_POD_ID"),
		Hostname:     get("RUNPOD_POD_HOSTNAME"),
		EndpointID:   get("RUNPOD_ENDPOINT_ID"),
		Integration:  get("RUNPOD_UA_INTEGRATION"),
		LogLevel:     get("RUNPOD_LOG_LEVEL"),
	}
	// The SDK's placeholders for "not set" mean exactly that.
	if c.JobDoneURL == "JOB_DONE_URL" {
		c.JobDoneURL = ""
	}
	if c.JobStreamURL == "JOB_STREAM_URL" {
		c.JobStreamURL = ""
	}
	if c.PingURL == "PING_NOT_SET" {
		c.PingURL = ""
	}
	if c.LogLevel == "" {
		c.LogLevel = get("RUNPOD_DEBUG_LEVEL")
	}
	var errs []error
	if v := get("RUNPOD_PING_INTERVAL"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			errs = append(errs, fmt.Errorf("RUNPOD_PING_INTERVAL=%q: want a positive whole number of milliseconds", v))
		} else {
			c.PingInterval = time.Duration(ms) * time.Millisecond
		}
	}
	if v := get("RUNPOD_REALTIME_PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("RUNPOD_REALTIME_PORT=%q: want a TCP port number", v))
		} else {
			c.RealtimePort = p
		}
	}
	if v := get("RUNPOD_REALTIME_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("RUNPOD_REALTIME_CONCURRENCY=%q: want a whole number of at least 1", v))
		} else {
			c.RealtimeConcurrency = n
		}
	}
	if c.LogLevel != "" {
		if _, err := c.ZerologLevel(); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// ZerologLevel maps LogLevel (the SDK's NOTSET, TRACE, DEBUG, INFO, WARN,
// ERROR, case-insensitive) to a zerolog level; empty means debug, the SDK's
// default.
func (c Config) ZerologLevel() (zerolog.Level, error) {
	switch strings.ToUpper(c.LogLevel) {
	case "", "DEBUG":
		return zerolog.DebugLevel, nil
	case "NOTSET", "TRACE":
		return zerolog.TraceLevel, nil
	case "INFO":
		return zerolog.InfoLevel, nil
	case "WARN", "WARNING":
		return zerolog.WarnLevel, nil
	case "ERROR":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("RUNPOD_LOG_LEVEL=%q: want one of NOTSET, TRACE, DEBUG, INFO, WARN, ERROR", c.LogLevel)
}

// withDefaults fills the zero tuning fields.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.TakeTimeout, DefaultTakeTimeout)
	def(&c.TooManyRequestsDelay, DefaultTooManyRequestsDelay)
	def(&c.StopPollInterval, DefaultStopPollInterval)
	def(&c.ResultRetryFor, DefaultResultRetryFor)
	def(&c.ResultAttemptTimeout, DefaultResultAttemptTimeout)
	def(&c.RetryInitial, DefaultRetryInitial)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.ShutdownGrace, DefaultShutdownGrace)
	def(&c.ProgressTimeout, DefaultProgressTimeout)
	if c.RetryMax < c.RetryInitial {
		c.RetryMax = c.RetryInitial
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.RunpodVersion == "" {
		c.RunpodVersion = SDKVersion
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c
}

// validate checks what the job loop needs; messages name the variable to fix.
func (c Config) validate() error {
	var errs []error
	check := func(name, v string, required bool) {
		if v == "" {
			if required {
				errs = append(errs, fmt.Errorf("%s is not set: the worker cannot deliver results without it", name))
			}
			return
		}
		u, err := url.Parse(strings.NewReplacer("$RUNPOD_POD_ID", "w", "$ID", "j").Replace(v))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s=%q is not an http(s) URL template", name, v))
		}
	}
	check("RUNPOD_WEBHOOK_GET_JOB", c.JobTakeURL, true)
	check("RUNPOD_WEBHOOK_POST_OUTPUT", c.JobDoneURL, true)
	check("RUNPOD_WEBHOOK_PING", c.PingURL, false)
	return errors.Join(errs...)
}
