// Package multihost holds the end-to-end tests of the worker on several
// hosts sharing one network volume: real worker processes, each in its own
// mount namespace with its own FUSE view of one shared directory
// (internal/netvol), so that no file lock taken on one host is seen on
// another, as on a RunPod network volume. The tests race realizes of one
// fresh version, kill workers in the middle, collect garbage and update a
// version while another host serves jobs from it. It has no code of its
// own beyond the tests.
package multihost
