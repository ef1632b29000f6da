//go:build !race

package httpproxy_test

const bigTransfer = 1 << 30

// raceEnabled: allocation counts mean nothing under the race detector.
const raceEnabled = false
