package urlfetch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want Class
	}{
		{"8.8.8.8", ""},
		{"142.250.80.46", ""},
		{"2001:4860:4860::8888", ""},
		{"127.0.0.1", ClassLoopback},
		{"127.9.9.9", ClassLoopback},
		{"::1", ClassLoopback},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"64:ff9b::7f00:1", ClassLoopback}, // NAT64 of 127.0.0.1
		{"169.254.169.254", ClassMetadata},
		{"::ffff:169.254.169.254", ClassMetadata},
		{"fd00:ec2::254", ClassMetadata},
		{"100.100.100.200", ClassMetadata},
		{"169.254.1.1", ClassLinkLocal},
		{"fe80::1", ClassLinkLocal},
		{"fe80::1%eth0", ClassLinkLocal},
		{"10.1.2.3", ClassPrivate},
		{"172.16.0.1", ClassPrivate},
		{"172.31.255.255", ClassPrivate},
		{"172.32.0.1", ""},
		{"192.168.0.1", ClassPrivate},
		{"100.64.0.1", ClassPrivate},
		{"fc00::1", ClassPrivate},
		{"fd12:3456::1", ClassPrivate},
		{"0.0.0.0", ClassUnspecified},
		{"::", ClassUnspecified},
		{"0.1.2.3", ClassReserved},
		{"240.0.0.1", ClassReserved},
		{"255.255.255.255", ClassReserved},
		{"224.0.0.1", ClassMulticast},
		{"ff02::1", ClassMulticast},
	}
	for _, tc := range tests {
		if got := Classify(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Classify(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// fakeResolver answers from a table, so tests need no DNS.
type fakeResolver map[string][]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := r[host]
	if !ok {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// TestRefusedAddresses dials nothing: every address is refused in the
// dialer's Control hook, before connect(2), so no packet leaves.
func TestRefusedAddresses(t *testing.T) {
	res := fakeResolver{
		"evil.test":     {"127.0.0.1"},
		"internal.test": {"10.0.0.7"},
		"meta.test":     {"169.254.169.254"},
		"mixed.test":    {"192.168.1.1", "fc00::2"},
	}
	tests := []struct {
		url   string
		class Class
		addr  string
		cfg   func(*Config)
	}{
		{url: "http://127.0.0.1/x", class: ClassLoopback, addr: "127.0.0.1"},
		{url: "http://[::1]:8080/x", class: ClassLoopback, addr: "::1"},
		{url: "http://[::ffff:127.0.0.1]/x", class: ClassLoopback, addr: "127.0.0.1"},
		{url: "http://169.254.169.254/computeMetadata/v1/", class: ClassMetadata, addr: "169.254.169.254"},
		{url: "http://169.254.169.254/latest/", class: ClassMetadata, addr: "169.254.169.254",
			cfg: func(c *Config) { c.AllowLinkLocal = true }}, // link-local allowed, metadata still not
		{url: "http://metadata.google.internal/computeMetadata/v1/", class: ClassMetadata},
		{url: "http://metadata/computeMetadata/v1/", class: ClassMetadata},
		{url: "http://169.254.10.10/x", class: ClassLinkLocal, addr: "169.254.10.10"},
		{url: "http://10.0.0.5/x", class: ClassPrivate, addr: "10.0.0.5"},
		{url: "http://192.168.1.1/x", class: ClassPrivate, addr: "192.168.1.1"},
		{url: "http://172.16.0.1/x", class: ClassPrivate, addr: "172.16.0.1"},
		{url: "http://100.64.0.1/x", class: ClassPrivate, addr: "100.64.0.1"},
		{url: "http://0.0.0.0:80/x", class: ClassUnspecified, addr: "0.0.0.0"},
		{url: "http://0.0.0.0/x", class: ClassUnspecified, addr: "0.0.0.0",
			cfg: func(c *Config) { c.AllowLoopback, c.AllowPrivate, c.AllowLinkLocal = true, true, true }}, // never allowed
		{url: "http://evil.test/x", class: ClassLoopback, addr: "127.0.0.1"},
		{url: "http://internal.test/x", class: ClassPrivate, addr: "10.0.0.7"},
		{url: "http://meta.test/x", class: ClassMetadata, addr: "169.254.169.254"},
		{url: "http://mixed.test/x", class: ClassPrivate, addr: "192.168.1.1"},
		{url: "http://127.0.0.1/x", class: ClassLoopback, addr: "127.0.0.1",
			cfg: func(c *Config) { c.AllowPrivate = true }}, // private does not cover loopback
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			cfg := Config{AllowHTTP: true, Resolver: res, Hints: map[Class]string{ClassLoopback: "set WORKER_ALLOW_LOOPBACK=1"}}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			f := New(cfg)
			defer f.CloseIdleConnections()
			rc, err := f.Open(context.Background(), tc.url)
			if err == nil {
				rc.Close()
				t.Fatal("fetch succeeded; want it refused")
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want a *RefusedError", err, err)
			}
			if re.Class != tc.class || (tc.addr != "" && re.Addr.String() != tc.addr) {
				t.Errorf("refused %s as %q, want %s as %q", re.Addr, re.Class, tc.addr, tc.class)
			}
			if !strings.Contains(err.Error(), string(tc.class)) || (re.Class != ClassUnspecified && re.Hint == "") {
				t.Errorf("message %q should name the class and how to allow it", err)
			}
			if re.Class == ClassLoopback && !strings.Contains(err.Error(), "WORKER_ALLOW_LOOPBACK") {
				t.Errorf("message %q does not use the configured hint", err)
			}
		})
	}
}

func TestAllowedHosts(t *testing.T) {
	tests := []struct {
		allowed []string
		host    string
		want    bool
	}{
		{[]string{"files.test"}, "files.test", true},
		{[]string{"files.test"}, "FILES.test.", true},
		{[]string{"files.test"}, "a.files.test", false},
		{[]string{".corp.test"}, "a.corp.test", true},
		{[]string{"*.corp.test"}, "b.a.corp.test", true},
		{[]string{"*.corp.test"}, "corp.test", false},
		{[]string{"*.corp.test"}, "evilcorp.test", false},
		{nil, "files.test", false},
	}
	for _, tc := range tests {
		f := New(Config{AllowedHosts: tc.allowed})
		if got := f.hostAllowed(tc.host); got != tc.want {
			t.Errorf("AllowedHosts %v, host %s: %v, want %v", tc.allowed, tc.host, got, tc.want)
		}
	}
}
