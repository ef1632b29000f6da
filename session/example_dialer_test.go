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
	s := &relaySession{Base: session.Base{Token: a.Token, Peer: a.Peer}, lp: lp, front: protocol.NewTCPSocket(a.Fd)}
	s.d = session.Dialer{Cluster: "c", OnFail: l.failed}
	s.p.Init(lp.Pool(), &s.front, s.d.Socket()) // the dialer's socket, whichever backend answers
	s.d.Dial(lp, s)
	return s, nil
}

type relaySession struct {
	session.Base
	lp        *session.Loop
	front     protocol.TCPSocket
	d         session.Dialer
	p         pipe.Pipe
	connected bool
}

func (s *relaySession) Protocol() session.Protocol   { return "relay" }
func (s *relaySession) ShuttingDown() session.Result { return session.Continue }
func (s *relaySession) UpdateReadiness(t eventloop.Token, r eventloop.Ready) {
	switch {
	case t == s.Token:
		s.p.UpdateReadiness(pipe.Front, r)
	case s.connected:
		s.p.UpdateReadiness(pipe.Back, r)
	default:
		s.d.Update(r)
	}
}
func (s *relaySession) Ready(session.ProxySession) session.Result {
	switch s.d.Poll() {
	case session.DialFailed:
		return session.Close
	case session.DialConnecting:
		return session.Continue
	}
	if !s.connected {
		s.p.MergeReadiness(pipe.Back, s.d.Readiness())
		s.connected = true
	}
	if st := s.p.Ready(); st == pipe.Done || st == pipe.Failed {
		return session.Close
	}
	return session.Continue
}
func (s *relaySession) Timeout(eventloop.Token) session.Result {
	if s.d.Timeout() == session.DialFailed {
		return session.Close
	}
	return session.Continue
}
func (s *relaySession) Close() {
	s.p.Release()
	s.d.Close()
	s.lp.Release(s.Token, s.front.Fd())
	s.front.Close()
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
