// Package memtrim gives back the start-up pages of the program's own
// binary. A long-idle serverless worker touches a few hundred kilobytes of
// code per poll, but start-up (package initialisation, flag parsing) and
// the kernel's fault-around leave tens of megabytes of the executable
// mapped. Those pages are clean copies of the file: asking the kernel to
// page them out loses nothing, and what is needed again faults back in.
package memtrim

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4+); older kernels answer EINVAL,
// which is ignored.
const madvPageout = 21

// ExecutablePages asks the kernel to page out the read-only mappings of
// the running executable. It returns how many mappings were advised.
func ExecutablePages() (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// Raw syscall: the range is the kernel's mapping, not Go memory.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), madvPageout); errno == 0 {
			n++
		}
	}
	return n, sc.Err()
}
