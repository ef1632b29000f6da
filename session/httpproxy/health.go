package httpproxy

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// HealthCheck configures active HTTP health checks of a cluster's
// backends. Checks run inside each worker's loop (no goroutine): a
// non-blocking connect, one GET, the status line read, the connection
// closed.
type HealthCheck struct {
	// Path is requested with GET. Default "/".
	Path string
	// Host is the Host header. Default: the backend's address.
	Host string
	// Interval between two checks of a backend. Default 2 s.
	Interval time.Duration
	// Timeout bounds one check, connect included. Default 1 s.
	Timeout time.Duration
	// Rise is how many checks in a row must pass to bring a failed
	// backend back. Default 2.
	Rise int
	// Fall is how many checks in a row must fail to take a backend out.
	// Default 3.
	Fall int
	// Status, if set, is the only status that passes; by default any
	// 2xx or 3xx passes.
	Status int
}

func (hc HealthCheck) withDefaults() HealthCheck {
	if hc.Path == "" {
		hc.Path = "/"
	}
	if hc.Interval <= 0 {
		hc.Interval = 2 * time.Second
	}
	if hc.Timeout <= 0 {
		hc.Timeout = time.Second
	}
	if hc.Rise <= 0 {
		hc.Rise = 2
	}
	if hc.Fall <= 0 {
		hc.Fall = 3
	}
	return hc
}

// ErrUnknownCluster is returned by StartHealthChecks for a cluster the
// worker does not have.
var ErrUnknownCluster = errors.New("httpproxy: unknown cluster")

// StartHealthChecks checks every backend of cluster, now and as backends
// are added; a backend that fails Fall checks in a row stops receiving
// traffic until it passes Rise in a row. Transitions are logged. Calling
// it again replaces the cluster's checks; removing the cluster ends them.
// It is a command (a [session.Worker] or a whole [session.Proxy], where
// each worker checks for itself, as each balances for itself): safe from
// any goroutine.
func StartHealthChecks(c session.Commands, cluster string, hc HealthCheck) error {
	hc = hc.withDefaults()
	return c.Exec(func(lp *session.Loop) error {
		if lp.Clusters().Cluster(cluster) == nil {
			return ErrUnknownCluster
		}
		st := stateOf(lp)
		if old := st.health[cluster]; old != nil {
			old.Close()
		}
		sup := &healthSupervisor{lp: lp, st: st, cluster: cluster, hc: hc, checkers: map[*backend.Backend]*checker{}}
		t, err := lp.RegisterOwner(-1, sup)
		if err != nil {
			return err
		}
		sup.token = t
		if st.health == nil {
			st.health = map[string]*healthSupervisor{}
		}
		st.health[cluster] = sup
		sup.Timeout(t, 0) // start now
		return nil
	})
}

// StopHealthChecks ends cluster's health checks; its backends count as
// healthy again. Without checks it does nothing.
func StopHealthChecks(c session.Commands, cluster string) error {
	return c.Exec(func(lp *session.Loop) error {
		st := stateOf(lp)
		if old := st.health[cluster]; old != nil {
			old.Close()
			delete(st.health, cluster)
		}
		if c := lp.Clusters().Cluster(cluster); c != nil {
			for _, b := range c.Backends() {
				b.SetHealthy(true) // no checks: nothing holds a backend out
			}
		}
		return nil
	})
}

// healthSupervisor keeps one checker per backend of a cluster, adding
// checkers for new backends and dropping those of removed ones.
type healthSupervisor struct {
	lp       *session.Loop
	st       *workerState
	cluster  string
	hc       HealthCheck
	token    eventloop.Token
	timer    timer.Handle
	checkers map[*backend.Backend]*checker
	closed   bool
}

func (h *healthSupervisor) Event(eventloop.Token, eventloop.Ready) {}

func (h *healthSupervisor) Timeout(eventloop.Token, eventloop.TimerName) {
	c := h.lp.Clusters().Cluster(h.cluster)
	if c == nil {
		h.Close() // the cluster is gone
		return
	}
	for _, b := range c.Backends() {
		if _, ok := h.checkers[b]; ok {
			continue
		}
		ck := &checker{lp: h.lp, sup: h, b: b, hc: h.hc}
		t, err := h.lp.RegisterOwner(-1, ck)
		if err != nil {
			continue
		}
		ck.token = t
		ck.timer = h.lp.Schedule(t, 0, 0)
		h.checkers[b] = ck
	}
	h.timer = h.lp.Schedule(h.token, 0, h.hc.Interval)
}

func (h *healthSupervisor) Close() {
	if h.closed {
		return
	}
	h.closed = true
	if h.st.health[h.cluster] == h {
		delete(h.st.health, h.cluster)
	}
	h.lp.Timers().Cancel(h.timer)
	for _, ck := range h.checkers {
		ck.stop()
	}
	h.lp.Release(h.token, -1)
}

type checkState uint8

const (
	checkIdle checkState = iota
	checkConnecting
	checkReading
)

// checker checks one backend, one check at a time, on one token.
type checker struct {
	lp      *session.Loop
	sup     *healthSupervisor
	b       *backend.Backend
	hc      HealthCheck
	token   eventloop.Token
	timer   timer.Handle
	state   checkState
	sock    protocol.TCPSocket
	ready   eventloop.Ready
	buf     [256]byte
	n       int
	ok, bad int // consecutive results
	stopped bool
}

func (c *checker) Timeout(eventloop.Token, eventloop.TimerName) {
	if c.stopped {
		return
	}
	if c.b.Status() == backend.Removed {
		delete(c.sup.checkers, c.b)
		c.stop()
		return
	}
	if c.state != checkIdle {
		c.result(false, "timeout")
		return
	}
	fd, err := protocol.Connect(c.b.Address)
	if err != nil {
		c.result(false, err.Error())
		return
	}
	if err := c.lp.Attach(fd, c.token); err != nil {
		closeFD(fd)
		c.result(false, err.Error())
		return
	}
	c.sock, c.state, c.ready, c.n = protocol.NewTCPSocket(fd), checkConnecting, 0, 0
	c.timer = c.lp.Schedule(c.token, 0, c.hc.Timeout)
}

func (c *checker) Event(_ eventloop.Token, r eventloop.Ready) {
	c.ready |= r
	switch c.state {
	case checkConnecting:
		if c.ready&(eventloop.Writable|eventloop.Error|eventloop.WriteClosed) == 0 {
			return
		}
		if err := protocol.ConnectResult(c.sock.Fd()); err != nil {
			c.result(false, err.Error())
			return
		}
		host := c.hc.Host
		if host == "" {
			host = c.b.Address.String()
		}
		req := make([]byte, 0, 128)
		req = append(append(append(req, "GET "...), c.hc.Path...), " HTTP/1.1\r\nHost: "...)
		req = append(append(req, host...), "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n"...)
		if n, r := c.sock.Write(req); n < len(req) || r != protocol.Continue {
			c.result(false, "request not sent")
			return
		}
		c.state = checkReading
		fallthrough
	case checkReading:
		if c.ready&(eventloop.Readable|eventloop.ReadClosed|eventloop.Error) == 0 {
			return
		}
		n, r := c.sock.Read(c.buf[c.n:])
		c.n += n
		line := c.buf[:c.n]
		if i := bytes.Index(line, []byte("\r\n")); i >= 0 {
			c.verdict(line[:i])
			return
		}
		if r == protocol.WouldBlock && c.n < len(c.buf) {
			c.ready &^= eventloop.Readable
			return
		}
		c.result(false, "no status line")
	}
}

// verdict judges a status line.
func (c *checker) verdict(line []byte) {
	var code int
	if len(line) >= 12 && bytes.HasPrefix(line, []byte("HTTP/1.")) {
		code, _ = strconv.Atoi(string(line[9:12]))
	}
	pass := code >= 200 && code < 400
	if c.hc.Status != 0 {
		pass = code == c.hc.Status
	}
	c.result(pass, "status "+strconv.Itoa(code))
}

// result ends a check: the socket closes, the counters move, the
// backend's verdict changes after Rise or Fall results in a row, and the
// next check is scheduled.
func (c *checker) result(pass bool, why string) {
	c.closeSocket()
	c.lp.Timers().Cancel(c.timer)
	if pass {
		c.ok, c.bad = c.ok+1, 0
		if !c.b.Healthy() && c.ok >= c.hc.Rise && c.b.SetHealthy(true) {
			c.lp.Logger().Info("health check: backend up", "cluster", c.sup.cluster, "backend", c.b.ID, "address", c.b.Address.String())
		}
	} else {
		c.ok, c.bad = 0, c.bad+1
		if c.b.Healthy() && c.bad >= c.hc.Fall && c.b.SetHealthy(false) {
			c.lp.Logger().Warn("health check: backend down", "cluster", c.sup.cluster, "backend", c.b.ID, "address", c.b.Address.String(), "reason", why)
		}
	}
	c.timer = c.lp.Schedule(c.token, 0, c.hc.Interval)
}

func (c *checker) closeSocket() {
	if c.state != checkIdle {
		c.lp.Detach(c.sock.Fd())
		c.sock.Close()
		c.state = checkIdle
	}
}

func (c *checker) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	c.closeSocket()
	c.lp.Timers().Cancel(c.timer)
	c.lp.Release(c.token, -1)
}

func (c *checker) Close() { c.stop() }

var (
	_ session.TokenOwner = (*healthSupervisor)(nil)
	_ session.TokenOwner = (*checker)(nil)
)
