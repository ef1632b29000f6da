package httpproxy_test

import (
	"bytes"
	"crypto/tls"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// BenchmarkFullHandshake is a new HTTPS connection at a time, a full
// TLS 1.3 handshake and one request over it, at GOMAXPROCS 1 (one
// worker on one core): the handshake crosses from the loop to its pool
// goroutine and back four times. "spare" is the default, where the
// listener asks for a P beyond the loop's (session.Loop.SpareP); "keep"
// leaves GOMAXPROCS at 1, so that each crossing waits for the runtime's
// monitor to take the loop's P back.
func BenchmarkFullHandshake(b *testing.B) {
	for _, keep := range []bool{true, false} {
		name := "spare"
		if keep {
			name = "keep"
		}
		b.Run(name, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			w, err := session.NewWorker(session.Config{KeepGOMAXPROCS: keep})
			require.NoError(b, err)
			runc := make(chan error, 1)
			go func() { runc <- w.Run() }()
			defer func() { w.HardStop(); <-runc }()

			store := certs.NewStore()
			cert, err := certs.SelfSigned(time.Hour, "localhost")
			require.NoError(b, err)
			id, err := store.Add(cert)
			require.NoError(b, err)
			require.NoError(b, store.SetDefault(id))
			l := httpproxy.NewListener(httpproxy.Config{TLS: &httpproxy.TLS{Certs: store, DisableHTTP2: true}})
			require.NoError(b, w.AddCluster("c", backend.RoundRobin))
			require.NoError(b, w.AddBackend("c", backend.Backend{ID: "raw", Address: rawBackend(b).addr}))
			require.NoError(b, l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
			addr, err := w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
			require.NoError(b, err)

			cfg := &tls.Config{InsecureSkipVerify: true} // no session cache: every handshake is full
			req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
			buf := make([]byte, 4096)
			var worst time.Duration
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				c, err := tls.Dial("tcp", addr.String(), cfg)
				require.NoError(b, err)
				_, err = c.Write(req)
				require.NoError(b, err)
				n := 0
				for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
					m, err := c.Read(buf[n:])
					require.NoError(b, err)
					n += m
				}
				c.Close()
				worst = max(worst, time.Since(start))
			}
			b.ReportMetric(float64(worst.Microseconds()), "worst-µs")
		})
	}
}
