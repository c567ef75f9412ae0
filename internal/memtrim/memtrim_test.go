package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func rssKB(t *testing.T) int {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func TestExecutablePages(t *testing.T) {
	before := rssKB(t)
	n, err := ExecutablePages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssKB(t)
	t.Logf("advised %d mappings; RSS %d kB -> %d kB", n, before, after)
	if n == 0 {
		t.Skip("the kernel refused MADV_PAGEOUT (older than 5.4?)")
	}
	if after > before {
		t.Errorf("RSS grew: %d -> %d kB", before, after)
	}
	// The program still runs: code paged out faults back in.
	if s := strings.Repeat("ok", 2); s != "okok" {
		t.Fatal(s)
	}
}
