// Command soak runs mixed traffic through one proxy for a while and
// reports, every interval, what went through, what failed and by what
// kind, and the process's memory, descriptors and goroutines, with the
// proxy's own sessions, tokens and lent buffers: after warm-up they must
// stay flat. It is not a test CI runs (a useful soak lasts half an hour):
//
//	go run ./examples/soak -duration 30m
//
// Traffic, all on loopback against backends of its own: HTTP/1.1
// keep-alive GETs and POSTs, HTTPS (HTTP/1.1 and HTTP/2 by ALPN), h2c,
// WebSocket-style upgrades relayed as tunnels, TCP relays of random
// bytes, slow clients (a head sent a byte at a time), clients that send
// garbage or leave mid-request, and every few seconds a backend removed
// and added back and a route added and removed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// counts are the outcomes, by kind.
type counts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counts) add(kind string) {
	c.mu.Lock()
	c.m[kind]++
	c.mu.Unlock()
}

func (c *counts) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

func main() {
	duration := flag.Duration("duration", 30*time.Minute, "how long to run")
	every := flag.Duration("every", time.Minute, "report interval")
	clients := flag.Int("clients", 8, "clients of each kind")
	flag.Parse()
	log.SetFlags(0)

	// Backends: two HTTP servers (echo, a sized body, an upgrade that
	// echoes bytes) and a TCP echo server.
	var backends []netip.AddrPort
	for i := 0; i < 2; i++ {
		backends = append(backends, serveHTTP(fmt.Sprintf("app-%d", i)))
	}
	echoAddr := serveEcho()

	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	must(err)
	p.Start()
	must(p.AddCluster("app", backend.RoundRobin))
	for i, b := range backends {
		must(p.AddBackend("app", backend.Backend{ID: fmt.Sprintf("app-%d", i), Address: b}))
	}
	must(p.AddCluster("echo", backend.RoundRobin))
	must(p.AddBackend("echo", backend.Backend{ID: "echo", Address: echoAddr}))

	lo := netip.MustParseAddrPort("127.0.0.1:0")
	hl := httpproxy.NewListener(httpproxy.Config{H2C: true, RequestTimeout: 3 * time.Second})
	must(hl.AddFrontend(p, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "app"}}))
	httpAddr, err := p.AddListener(lo, hl, session.ListenConfig{})
	must(err)
	store := certs.NewStore()
	cert, err := certs.SelfSigned(24*time.Hour, "localhost", "127.0.0.1")
	must(err)
	_, err = store.Add(cert)
	must(err)
	sl := httpproxy.NewListener(httpproxy.Config{TLS: &httpproxy.TLS{Certs: store}})
	must(sl.AddFrontend(p, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "app"}}))
	httpsAddr, err := p.AddListener(lo, sl, session.ListenConfig{})
	must(err)
	tl, err := tcpproxy.NewListener(tcpproxy.Config{Cluster: "echo"})
	must(err)
	tcpAddr, err := p.AddListener(lo, tl, session.ListenConfig{})
	must(err)
	log.Printf("soak for %v: http+h2c %v, https+h2 %v, tcp %v", *duration, httpAddr, httpsAddr, tcpAddr)

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	c := &counts{m: map[string]int64{}}
	var wg sync.WaitGroup
	run := func(n int, f func(ctx context.Context, c *counts)) {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					f(ctx, c)
				}
			}()
		}
	}
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	h2c := &http.Client{Timeout: 10 * time.Second, Transport: unencryptedH2()}
	tlsTr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4}
	https := &http.Client{Timeout: 10 * time.Second, Transport: tlsTr}
	base := "http://" + httpAddr.String()
	run(*clients, func(ctx context.Context, c *counts) { httpRound(c, h1, base, "http1") })
	run(*clients, func(ctx context.Context, c *counts) { httpRound(c, h2c, base, "h2c") })
	run(*clients, func(ctx context.Context, c *counts) { httpRound(c, https, "https://"+httpsAddr.String(), "https") })
	run(*clients/2, func(ctx context.Context, c *counts) { tunnelRound(c, httpAddr) })
	run(*clients/2, func(ctx context.Context, c *counts) { tcpRound(c, tcpAddr) })
	run(2, func(ctx context.Context, c *counts) { slowRound(ctx, c, httpAddr) })
	run(2, func(ctx context.Context, c *counts) { badRound(c, httpAddr) })
	wg.Add(1)
	go func() { // reconfiguration: a backend out and back, a route in and out
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			sleep(ctx, 3*time.Second)
			id := fmt.Sprintf("app-%d", i%len(backends))
			if err := p.RemoveBackend("app", id); err != nil {
				c.add("reconfig error")
			}
			sleep(ctx, 500*time.Millisecond)
			if err := p.AddBackend("app", backend.Backend{ID: id, Address: backends[i%len(backends)]}); err != nil {
				c.add("reconfig error")
			}
			f := router.Frontend{ID: "extra", Host: "extra.example", HostKind: router.HostExact, Action: router.Action{Cluster: "app"}}
			hl.AddFrontend(p, f)
			hl.RemoveFrontend(p, "extra")
			c.add("reconfigurations")
		}
	}()

	start := time.Now()
	report := func() {
		st, _ := p.Status()
		sessions, tokens, lent := st.Sessions, st.Tokens, st.BuffersLent
		kinds := c.snapshot()
		var line strings.Builder
		fmt.Fprintf(&line, "%8s rss %6.1f MiB fds %4d goroutines %4d | proxy sessions %4d tokens %4d buffers lent %3d |",
			time.Since(start).Round(time.Second), rssMiB(), fdCount(), runtime.NumGoroutine(), sessions, tokens, lent)
		for _, k := range sortedKeys(kinds) {
			fmt.Fprintf(&line, " %s=%d", k, kinds[k])
		}
		log.Print(line.String())
	}
	report()
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			report()
		case <-ctx.Done():
			done = true
		}
	}
	wg.Wait()
	h1.CloseIdleConnections()
	h2c.CloseIdleConnections()
	https.CloseIdleConnections()
	time.Sleep(time.Second)
	report()
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	p.SoftStop(sctx)
}

// httpRound sends a GET of a random size and a POST that comes back.
func httpRound(c *counts, cl *http.Client, base, kind string) {
	size := []int{0, 100, 4 << 10, 64 << 10, 1 << 20}[time.Now().UnixNano()%5]
	resp, err := cl.Get(fmt.Sprintf("%s/size/%d", base, size))
	if err != nil {
		c.add(kind + " error: " + errKind(err))
		return
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n != int64(size) {
		c.add(fmt.Sprintf("%s bad answer: GET %d (%d of %d bytes, %v)", kind, resp.StatusCode, n, size, err))
		return
	}
	c.add(kind + " ok")
	body := make([]byte, 1+size%5000)
	rand.Read(body)
	resp, err = cl.Post(base+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		c.add(kind + " error: " + errKind(err))
		return
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
		c.add(fmt.Sprintf("%s bad answer: POST %d (%d of %d bytes, %v)", kind, resp.StatusCode, len(got), len(body), err))
		return
	}
	c.add(kind + " ok")
}

// tunnelRound upgrades a connection and echoes bytes through the tunnel.
func tunnelRound(c *counts, addr netip.AddrPort) {
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		c.add("tunnel error: " + errKind(err))
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		c.add("tunnel error: no 101")
		return
	}
	for i := 0; i < 20; i++ {
		msg := make([]byte, 1+i*50)
		rand.Read(msg)
		conn.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, msg) {
			c.add("tunnel error: echo")
			return
		}
	}
	c.add("tunnel ok")
}

// tcpRound relays random bytes through tcpproxy to the echo server.
func tcpRound(c *counts, addr netip.AddrPort) {
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		c.add("tcp error: " + errKind(err))
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := make([]byte, 64<<10)
	rand.Read(msg)
	go func() {
		conn.Write(msg)
		conn.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.Equal(got, msg) {
		c.add("tcp error: echo")
		return
	}
	c.add("tcp ok")
}

// slowRound sends a head a byte at a time, slower than the request
// timeout allows: the proxy must answer 408 and let go.
func slowRound(ctx context.Context, c *counts, addr netip.AddrPort) {
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		c.add("slow error: " + errKind(err))
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	for _, b := range []byte("GET /size/10 HTTP/1.1\r\nHost: x\r\n") {
		if _, err := conn.Write([]byte{b}); err != nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, _ := io.ReadAll(conn)
	if strings.HasPrefix(string(out), "HTTP/1.1 408") {
		c.add("slow client answered 408")
	} else {
		c.add("slow client other end")
	}
}

// badRound sends garbage, or leaves in the middle of a request.
func badRound(c *counts, addr netip.AddrPort) {
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		c.add("bad error: " + errKind(err))
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if time.Now().UnixNano()%2 == 0 {
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n")
		out, _ := io.ReadAll(conn)
		if strings.HasPrefix(string(out), "HTTP/1.1 400") {
			c.add("garbage answered 400")
		} else {
			c.add("garbage other end")
		}
		return
	}
	io.WriteString(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nonly part of it")
	time.Sleep(50 * time.Millisecond)
	c.add("left mid-request")
}

// serveHTTP starts a backend: /size/N answers N bytes, /echo sends the
// body back, /upgrade switches to a byte echo.
func serveHTTP(name string) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	mux := http.NewServeMux()
	mux.HandleFunc("/size/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		w.Header().Set("X-Backend", name)
		w.Write(make([]byte, n))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body) // the whole body first: net/http's HTTP/1.1 server is not full duplex
		w.Write(b)
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})
	go http.Serve(ln, mux)
	return netip.MustParseAddrPort(ln.Addr().String())
}

func serveEcho() netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(struct{ io.Writer }{c}, c) // not splice: keep it simple
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func unencryptedH2() *http.Transport {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return tr
}

func errKind(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "timeout"):
		return "timeout"
	case strings.Contains(s, "reset"):
		return "reset"
	case strings.Contains(s, "EOF"):
		return "EOF"
	case strings.Contains(s, "refused"):
		return "refused"
	}
	if len(s) > 40 {
		s = s[len(s)-40:]
	}
	return s
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmRSS:"), "kB")), &kb)
			return kb / 1024
		}
	}
	return -1
}

func fdCount() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
