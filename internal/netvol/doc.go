// Package netvol simulates a network volume for tests: a FUSE loopback of a
// local directory that is as slow and as forgetful as a network file
// system, and mounts of it that behave like separate hosts.
//
// A RunPod network volume is a network file system: every metadata
// operation is a round trip, bandwidth is limited, and every worker of an
// endpoint mounts the same volume at /runpod-volume, where a flock taken on
// one host is not seen by another. Code that is fast and correct on a local
// disk can be slow or wrong there, and this package lets tests see it.
//
// Mount (or MountT in a test) serves a directory through FUSE with a delay
// on every LOOKUP, GETATTR, OPEN/CREATE and OPENDIR, optional read and write
// bandwidth caps, and counters a test can assert on ("no file was opened on
// the volume"). The kernel caches neither entries nor attributes by default,
// so the delay is paid every time, as on a file system that revalidates.
// Locks are not forwarded to the backing directory: the kernel keeps them
// per mount, so two mounts of one directory are two hosts whose flocks do
// not see each other, while processes on one mount do.
//
//	vol := netvol.MountT(t, backing, "", netvol.Options{MetaDelay: time.Millisecond})
//	runRealize(t, vol.Dir())
//	if got := vol.Stats().Opens; got != 0 {
//		t.Errorf("a warm realize opened %d files on the volume", got)
//	}
//
// A process that serves a volume with Mount must not fork a child that
// touches the volume before it execs (a command whose working directory or
// program is on the volume): the forking thread waits inside vfork for the
// child, the child waits on the volume, and a garbage collection that
// starts then waits for the forking thread while stopping the goroutines
// that serve the volume, so all three wait forever (found running realize,
// which runs pip and Python in the build, on a Mount in its own test
// process). Programs run from another process, or through a Host, are
// safe.
//
// StartHost (or HostT) goes one step further for tests that run real
// programs such as the worker binary: each host is a helper process in its
// own mount namespace with its own FUSE view of a shared directory at the
// same path, the way every RunPod worker sees /runpod-volume.
// Host.Command runs a program inside that namespace; the returned command's
// process is the program itself, so killing it with SIGKILL is a crash of
// that program. The helper is the test binary run again, so a package that
// uses hosts must start its TestMain with RunHostIfRequested:
//
//	func TestMain(m *testing.M) {
//		netvol.RunHostIfRequested()
//		os.Exit(m.Run())
//	}
//
//	o := netvol.HostOptions{Shared: t.TempDir(), MountPath: filepath.Join(t.TempDir(), "runpod-volume")}
//	a, b := netvol.HostT(t, o), netvol.HostT(t, o)
//	cmd := a.Command(ctx, workerBin, "realize", "sd15") // its own Env points the cache into o.MountPath
//	...
//	cmd.Process.Signal(syscall.SIGKILL) // the worker itself dies, mid-realize
//
// The mount path is created on the machine's file system (the mount on
// it is private to the host), so tests use a temporary one rather than
// /runpod-volume, whose presence changes the worker's default roots.
//
// Everything needs root and /dev/fuse (CI has both); mounts are made with
// mount(2) directly, so no fusermount binary is needed, and Host.Command
// uses nsenter from util-linux. The package is Linux only.
package netvol
