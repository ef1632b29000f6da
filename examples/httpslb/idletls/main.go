// Command idletls opens many TLS connections to a proxy, sends one GET
// on each (HTTP/1.1, or HTTP/2 with -h2), reads the response, and keeps
// them open and idle: the load of the idle-memory measurement in
// ../bench.sh. It prints READY when all are open and answered, then
// waits for SIGTERM or -hold.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "proxy address")
	n := flag.Int("n", 1000, "connections")
	h2 := flag.Bool("h2", false, "speak HTTP/2 (ALPN h2)")
	hold := flag.Duration("hold", 10*time.Minute, "how long to hold them")
	par := flag.Int("parallel", 32, "connections opened at once")
	flag.Parse()

	var ok, failed atomic.Int64
	conns := make([]*tls.Conn, *n)
	sem := make(chan struct{}, *par)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := open(*addr, *h2)
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = c
			ok.Add(1)
		}(i)
	}
	wg.Wait()
	fmt.Printf("READY ok=%d failed=%d\n", ok.Load(), failed.Load())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(*hold):
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// open makes one connection and one request on it.
func open(addr string, h2 bool) (*tls.Conn, error) {
	proto := "http/1.1"
	if h2 {
		proto = "h2"
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{proto}})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if h2 {
		return c, h2Request(c)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, nil
}

// h2Request sends one GET over an HTTP/2 connection without giving the
// connection to a Transport (which would own and pool it).
func h2Request(c *tls.Conn) error {
	tr := &http2.Transport{}
	cc, err := tr.NewClientConn(c)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("GET", "https://"+c.RemoteAddr().String()+"/", nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}
