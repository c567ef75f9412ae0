package runpod

import (
	"net/url"
	"strconv"
	"strings"
)

// Placeholders RunPod puts into the URL templates.
const (
	placeholderPod = "$RUNPOD_POD_ID"
	placeholderID  = "$ID"
)

// endpoints holds the URLs derived once from the templates, so the loops do
// not rebuild strings on every request.
type endpoints struct {
	take      [2]string // job-take, indexed by job_in_progress
	batchBase string    // job-take-batch before its query keys; "" if not derivable
	stop      string    // job-stop; "" disables the stop channel
	done      string    // job-done with the worker id in; $ID left for the job id
	ping      string    // ping with the worker id in, before its query keys
}

// newEndpoints substitutes the worker id as the SDK does, plus what the SDK
// misses: $RUNPOD_POD_ID is replaced in every template (some emulators put it
// into GET_JOB), while $ID means the worker in job-take and ping and the job
// in job-done.
func newEndpoints(c Config, workerID string) endpoints {
	pod := strings.NewReplacer(placeholderPod, workerID, placeholderID, workerID)
	take := pod.Replace(c.JobTakeURL)
	e := endpoints{
		take: [2]string{
			appendQuery(take, "job_in_progress=0"),
			appendQuery(take, "job_in_progress=1"),
		},
		done: strings.ReplaceAll(c.JobDoneURL, placeholderPod, workerID),
	}
	if c.PingURL != "" {
		e.ping = pod.Replace(c.PingURL)
	}
	if strings.Contains(take, "/job-take/") {
		e.batchBase = strings.Replace(take, "/job-take/", "/job-take-batch/", 1)
		e.stop = strings.Replace(take, "/job-take/", "/job-stop/", 1)
	}
	return e
}

// takeURL is the job-take URL for n wanted jobs; n > 1 uses the batch route
// with batch_size before job_in_progress, in the SDK's order.
func (e *endpoints) takeURL(n int, inProgress bool) string {
	ip := 0
	if inProgress {
		ip = 1
	}
	if n <= 1 || e.batchBase == "" {
		return e.take[ip]
	}
	return appendQuery(e.batchBase, "batch_size="+strconv.Itoa(n)+"&job_in_progress="+strconv.Itoa(ip))
}

// doneURL is where a job's result and progress go.
func (e *endpoints) doneURL(jobID string) string {
	return appendQuery(strings.ReplaceAll(e.done, placeholderID, url.PathEscape(jobID)), "isStream=false")
}

// pingURL adds job_id (omitted when no job is held, as the SDK's requests
// drops None) and runpod_version. jobIDs is already comma-joined.
func (e *endpoints) pingURL(jobIDs, runpodVersion string) string {
	q := "runpod_version=" + url.QueryEscape(runpodVersion)
	if jobIDs != "" {
		q = "job_id=" + url.QueryEscape(jobIDs) + "&" + q
	}
	return appendQuery(e.ping, q)
}

// appendQuery adds kv to u's query whether or not u has one. The SDK always
// appends with "&", which only works for templates that already contain "?".
func appendQuery(u, kv string) string {
	if u == "" {
		return ""
	}
	base, frag, hasFrag := strings.Cut(u, "#")
	switch {
	case !strings.Contains(base, "?"):
		base += "?" + kv
	case strings.HasSuffix(base, "?"), strings.HasSuffix(base, "&"):
		base += kv
	default:
		base += "&" + kv
	}
	if hasFrag {
		return base + "#" + frag
	}
	return base
}
