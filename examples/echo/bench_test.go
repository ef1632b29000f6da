package main

// Echo benchmarks against a goroutine-per-connection baseline.
//
// Both servers run as child processes (this test binary, re-executed with
// SLUICE_ECHO_CHILD set), pinned to CPU 0 with taskset when it exists so
// each gets exactly one core; run the benchmark itself on the other core:
//
//	go test -c -o /tmp/echo.test ./examples/echo
//	taskset -c 1 /tmp/echo.test -test.run '^$' -test.bench . -test.benchtime 2000000x
//
// BenchmarkEcho: 1,000 connections, each a closed loop of 64-byte
// messages, reports messages per second and messages per server
// CPU-second. BenchmarkIdle: 9,000 connections opened, one echo each, then
// left idle; reports the server's resident memory per connection.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const childEnv = "SLUICE_ECHO_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "sluice":
		childSluice()
	case "goroutine":
		childGoroutine()
	default:
		fmt.Fprintln(os.Stderr, "unknown", childEnv)
		os.Exit(2)
	}
}

func childSluice() {
	s, err := newServer(config{listen: netip.MustParseAddrPort("127.0.0.1:0"), idleTimeout: 10 * time.Minute, maxConns: 20000})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; s.stop() }()
	fmt.Printf("ADDR %s\n", s.addr)
	if err := s.serve(); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// childGoroutine is the baseline: the usual Go echo server, one goroutine
// and one 4 KiB buffer per connection (smaller than io.Copy's 32 KiB, so
// the comparison favours the baseline on memory).
func childGoroutine() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; os.Exit(0) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

type child struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(b *testing.B, kind string) *child {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	args := []string{self, "-test.run", "^$"}
	if path, err := exec.LookPath("taskset"); err == nil {
		args = append([]string{path, "-c", "0"}, args...)
	} else {
		b.Log("taskset not found: the server is not pinned to one core")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+kind)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("child did not start: %q %v", line, err)
	}
	c := &child{cmd: cmd, addr: strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return c
}

// serverPID is the server's own pid: taskset execs, so the pid is the same.
func (c *child) pid() int { return c.cmd.Process.Pid }

// cpu returns the child's user+system CPU time.
func (c *child) cpu(b *testing.B) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.pid()))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// rssKiB returns the child's VmRSS.
func (c *child) rssKiB(b *testing.B) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid()))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.Atoi(strings.Fields(line)[1])
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func dialAll(b *testing.B, addr string, n int) []net.Conn {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns[i] = c
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

func BenchmarkEcho(b *testing.B) {
	for _, kind := range []string{"sluice", "goroutine"} {
		b.Run(kind, func(b *testing.B) { benchEcho(b, kind, 1000, 64) })
	}
}

func benchEcho(b *testing.B, kind string, nconns, size int) {
	srv := startChild(b, kind)
	conns := dialAll(b, srv.addr, nconns)
	var left atomic.Int64
	left.Store(int64(b.N))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu0 := srv.cpu(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			msg := make([]byte, size)
			got := make([]byte, size)
			for left.Add(-1) >= 0 {
				if _, err := c.Write(msg); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Error(err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := srv.cpu(b) - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "msgs/server-cpu-s")
		b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "server-cpu-%")
	}
}

func BenchmarkIdle(b *testing.B) {
	for _, kind := range []string{"sluice", "goroutine"} {
		b.Run(kind, func(b *testing.B) { benchIdle(b, kind, 9000) })
	}
}

func benchIdle(b *testing.B, kind string, n int) {
	if n > 9000 {
		b.Fatal("the descriptor limit here is 20,000 per process")
	}
	srv := startChild(b, kind)
	// Warm up like the shared proxy bench: 64 connections, one echo each.
	warm := dialAll(b, srv.addr, 64)
	echoOnce(b, warm)
	time.Sleep(time.Second)
	before := srv.rssKiB(b)
	conns := dialAll(b, srv.addr, n)
	echoOnce(b, conns)
	time.Sleep(2 * time.Second)
	after := srv.rssKiB(b)
	b.ReportMetric(float64(after-before)/float64(n), "KiB/conn")
	b.ReportMetric(float64(before), "rss-before-KiB")
	b.ReportMetric(float64(after), "rss-after-KiB")
	// Every connection is still served after the idle period.
	echoOnce(b, conns[:100])
}

func echoOnce(b *testing.B, conns []net.Conn) {
	buf := make([]byte, 8)
	for _, c := range conns {
		if _, err := c.Write([]byte("ping1234")); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range conns {
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}
