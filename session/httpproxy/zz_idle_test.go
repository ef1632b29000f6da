package httpproxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

func TestZZIdleHeap(t *testing.T) {
	runtime.MemProfileRate = 1
	be := newOrigin(t, "a")
	tt := newTesterWith(t, httpproxy.Config{}, sessionConfig{maxConns: 20000}, be)
	const n = 4000
	var conns []net.Conn
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", tt.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		conns = append(conns, c)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("heap per idle conn (includes client side): %d B", (int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/n)
	f, _ := os.Create("/tmp/idle.heap")
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
	for _, c := range conns {
		c.Close()
	}
}
