package session_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/pipe"
	"github.com/sluiceproxy/sluice/session"
)

// relayListener is a whole layer-4 proxy built on the Dialer and the
// pipe: the session below is all a user writes.
type relayListener struct{ fails *atomic.Int32 } // counts failed connects; may be nil

func (relayListener) Protocol() session.Protocol { return "relay" }

func (l relayListener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	s := &relaySession{Base: session.Base{Token: a.Token, Peer: a.Peer}, front: protocol.NewTCPSocket(a.Fd)}
	s.d = session.Dialer{Cluster: "c", OnFail: l.failed}
	s.p.Init(lp.Pool(), &s.front, s.d.Socket()) // the dialer's socket, whichever backend answers
	s.d.Dial(lp, s)
	return s, nil
}

// relaySession connects with the dialer, then relays with the pipe.
type relaySession struct {
	session.Base
	front protocol.TCPSocket
	d     session.Dialer
	p     pipe.Pipe
}

func (s *relaySession) Protocol() session.Protocol { return "relay" }
func (s *relaySession) UpdateReadiness(t eventloop.Token, r eventloop.Ready) {
	if t == s.Token {
		s.p.UpdateReadiness(pipe.Front, r)
	} else if !s.d.Event(t, r) {
		s.p.UpdateReadiness(pipe.Back, r)
	}
}
func (s *relaySession) Ready(session.ProxySession) session.Result {
	if st := s.d.Poll(); st != session.DialConnected {
		return closeIf(st == session.DialFailed)
	}
	s.p.MergeReadiness(pipe.Back, s.d.TakeReadiness())
	st := s.p.Ready()
	return closeIf(st == pipe.Done || st == pipe.Failed)
}
func (s *relaySession) Timeout(t eventloop.Token, name eventloop.TimerName) session.Result {
	return closeIf(s.d.Timeout(t, name) == session.DialFailed)
}
func (s *relaySession) Close() {
	s.p.Release()
	s.d.Close()
	s.front.Close() // the worker frees the frontend token
}

func closeIf(end bool) session.Result {
	if end {
		return session.Close
	}
	return session.Continue
}

func (l relayListener) failed(*backend.Backend, error) {
	if l.fails != nil {
		l.fails.Add(1)
	}
}

// ExampleDialer is a layer-4 proxy of one's own: a session that dials a
// backend of cluster "c" with the Dialer (retries, timeouts and backend
// accounting included) and relays with the pipe.
func ExampleDialer() {
	backendLn, _ := net.Listen("tcp", "127.0.0.1:0")
	defer backendLn.Close()
	go func() {
		c, _ := backendLn.Accept()
		fmt.Fprint(c, "hello from the backend")
		c.Close()
	}()

	w, _ := session.NewWorker(session.Config{})
	go w.Run()
	defer w.HardStop()
	w.AddCluster("c", backend.RoundRobin)
	w.AddBackend("c", backend.Backend{ID: "b1", Address: netip.MustParseAddrPort(backendLn.Addr().String())})
	addr, _ := w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), relayListener{}, session.ListenConfig{})

	c, _ := net.Dial("tcp", addr.String())
	defer c.Close()
	got, _ := io.ReadAll(c)
	fmt.Println(string(got))
	// Output: hello from the backend
}
