//go:build race

package tcpproxy_test

// raceEnabled: allocation counts mean nothing under the race detector.
const raceEnabled = true
