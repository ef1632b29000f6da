package sim_test

import (
	"testing"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/pipe"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/sim"
)

// A session of a user's own, as small as one is written (session's
// ExampleDialer): it dials a backend of cluster "c" with the Dialer and
// relays with the pipe. The simulation runs it as it runs the
// library's: nothing in it knows about the simulation.
type relayListener struct{}

func (relayListener) Protocol() session.Protocol { return "relay" }

func (relayListener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	s := &relaySession{Base: session.Base{Token: a.Token, Peer: a.Peer}, front: protocol.NewTCPSocket(a.Fd)}
	s.d = session.Dialer{Cluster: "c"}
	s.p.Init(lp.Pool(), &s.front, s.d.Socket())
	s.d.Dial(lp, s)
	return s, nil
}

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
	s.front.Close()
}

func closeIf(end bool) session.Result {
	if end {
		return session.Close
	}
	return session.Continue
}

// TestSimUserSession: the TCP scenario through the user's relay.
func TestSimUserSession(t *testing.T) {
	seeds(t, "user", func(seed uint64) (*sim.Net, error) {
		return runRelay(seed, func() (session.Listener, error) { return relayListener{}, nil })
	})
}
