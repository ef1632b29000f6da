//go:build !race

package httpproxy_test

const bigTransfer = 1 << 30
