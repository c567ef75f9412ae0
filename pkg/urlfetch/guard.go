package urlfetch

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
)

// Class is a kind of address a URL input may not reach by default.
type Class string

// Address classes. Unspecified, multicast and reserved addresses are never
// allowed: nothing legitimate serves a file there.
const (
	ClassLoopback    Class = "loopback"
	ClassPrivate     Class = "private"
	ClassLinkLocal   Class = "link-local"
	ClassMetadata    Class = "cloud metadata"
	ClassUnspecified Class = "unspecified"
	ClassMulticast   Class = "multicast"
	ClassReserved    Class = "reserved"
)

var (
	cgnat    = netip.MustParsePrefix("100.64.0.0/10")
	thisNet  = netip.MustParsePrefix("0.0.0.0/8")
	class240 = netip.MustParsePrefix("240.0.0.0/4")
	nat64    = netip.MustParsePrefix("64:ff9b::/96")
	// metadataAddrs are the instance metadata services of GCP/AWS/Azure
	// (169.254.169.254), AWS over IPv6, and Alibaba Cloud.
	metadataAddrs = map[netip.Addr]bool{
		netip.MustParseAddr("169.254.169.254"): true,
		netip.MustParseAddr("fd00:ec2::254"):   true,
		netip.MustParseAddr("100.100.100.200"): true,
	}
	// metadataHosts resolve to a metadata service; refused by name so the
	// refusal does not depend on how they resolve.
	metadataHosts = map[string]bool{
		"metadata": true, "metadata.google.internal": true, "metadata.goog": true,
		"instance-data": true, "instance-data.ec2.internal": true,
	}
)

// Classify says which guarded class an address is in, or "" for an
// ordinary public address. IPv4 embedded in IPv6 (::ffff:a.b.c.d and the
// NAT64 prefix) is judged as the IPv4 address it carries.
func Classify(a netip.Addr) Class {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return ClassUnspecified
	case metadataAddrs[a.WithZone("")]:
		return ClassMetadata
	case a.IsLoopback():
		return ClassLoopback
	case a.IsLinkLocalUnicast():
		return ClassLinkLocal
	case a.IsMulticast():
		return ClassMulticast
	case a.IsPrivate() || cgnat.Contains(a):
		return ClassPrivate
	case a.Is4() && (thisNet.Contains(a) || class240.Contains(a)):
		return ClassReserved
	}
	return ""
}

// RefusedError is a URL input that would reach a guarded address or host.
type RefusedError struct {
	Host  string
	Addr  netip.Addr // invalid when refused by host name
	Class Class
	Hint  string
}

func (e *RefusedError) Error() string {
	what := e.Host
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		what = fmt.Sprintf("%s (%s)", e.Host, e.Addr)
	}
	msg := fmt.Sprintf("refused to connect to %s: it is a %s address, which URL inputs may not reach", what, e.Class)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// allowed reports whether the config lets URL inputs reach class c.
func (f *Fetcher) allowed(c Class) bool {
	switch c {
	case "":
		return true
	case ClassLoopback:
		return f.cfg.AllowLoopback
	case ClassPrivate:
		return f.cfg.AllowPrivate
	case ClassLinkLocal:
		return f.cfg.AllowLinkLocal
	case ClassMetadata:
		return f.cfg.AllowMetadata
	}
	return false
}

func (f *Fetcher) refuse(host string, a netip.Addr, c Class) *RefusedError {
	hint, ok := f.cfg.Hints[c]
	if !ok {
		hint = defaultHints[c]
	}
	return &RefusedError{Host: host, Addr: a, Class: c, Hint: hint}
}

var defaultHints = map[Class]string{
	ClassLoopback:  "an operator can allow loopback addresses (urlfetch Config.AllowLoopback)",
	ClassPrivate:   "an operator can allow private networks (urlfetch Config.AllowPrivate) or list the host in AllowedHosts",
	ClassLinkLocal: "an operator can allow link-local addresses (urlfetch Config.AllowLinkLocal)",
	ClassMetadata:  "an operator can allow metadata services (urlfetch Config.AllowMetadata), which exposes the machine's credentials",
}

// hostAllowed reports whether an operator listed host in AllowedHosts
// ("name" exactly, or ".suffix" / "*.suffix" for a domain's subdomains).
func (f *Fetcher) hostAllowed(host string) bool {
	host = normHost(host)
	for _, h := range f.cfg.AllowedHosts {
		h = normHost(h)
		if s, ok := strings.CutPrefix(h, "*"); ok {
			h = s
		}
		if h == host || (strings.HasPrefix(h, ".") && strings.HasSuffix(host, h)) {
			return true
		}
	}
	return false
}

// checkHost refuses metadata host names before any resolution.
func (f *Fetcher) checkHost(host string) error {
	if metadataHosts[normHost(host)] && !f.cfg.AllowMetadata && !f.hostAllowed(host) {
		return f.refuse(host, netip.Addr{}, ClassMetadata)
	}
	return nil
}

func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".") }

type skipGuardKey struct{}

// dialContext resolves the host itself and dials each address in turn.
// The guard runs in the dialer's Control hook, on the address actually
// being connected: a name that resolves to a public address when checked
// and to 127.0.0.1 when used (DNS rebinding) cannot slip through.
func (f *Fetcher) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := net.LookupPort(network, portStr)
	if err != nil {
		return nil, err
	}
	if f.hostAllowed(host) {
		ctx = context.WithValue(ctx, skipGuardKey{}, true)
	}
	ctx = context.WithValue(ctx, hostKey{}, host)
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = f.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	// IPv4 first: dialled one at a time, an unreachable IPv6 route (common
	// in containers) would otherwise cost a connect timeout per fetch.
	v6 := func(a netip.Addr) int {
		if a.Unmap().Is4() {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return cmp.Compare(v6(a), v6(b)) })
	var firstErr error
	for _, ip := range ips {
		c, err := f.dialer.DialContext(ctx, network, netip.AddrPortFrom(ip.Unmap(), uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("no addresses for %s", host)
	}
	return nil, firstErr
}

type hostKey struct{}

// control is the net.Dialer hook that refuses guarded addresses.
func (f *Fetcher) control(ctx context.Context, network, address string, _ syscall.RawConn) error {
	if skip, _ := ctx.Value(skipGuardKey{}).(bool); skip {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q: %w", address, err)
	}
	c := Classify(ap.Addr())
	if f.allowed(c) {
		return nil
	}
	host, _ := ctx.Value(hostKey{}).(string)
	if host == "" {
		host = ap.Addr().String()
	}
	return f.refuse(host, ap.Addr().Unmap(), c)
}
