//go:build race

package multihost

// raceBuild builds the worker with the race detector when the tests run
// with it: the packages are then compiled that way already, so the build
// only links, and the worker's own code is checked too.
const raceBuild = true
