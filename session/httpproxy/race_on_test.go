//go:build race

package httpproxy_test

// The race detector makes a gigabyte through the proxy take minutes.
const bigTransfer = 64 << 20

// raceEnabled: allocation counts mean nothing under the race detector.
const raceEnabled = true
