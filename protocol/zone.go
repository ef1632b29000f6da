//go:build linux || darwin || freebsd || openbsd || dragonfly

package protocol

import (
	"net"
	"strconv"
)

// netInterfaceIndex resolves an IPv6 zone (fe80::1%eth0 or fe80::1%2) to its index.
func netInterfaceIndex(zone string) (int, error) {
	if n, err := strconv.Atoi(zone); err == nil {
		return n, nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
