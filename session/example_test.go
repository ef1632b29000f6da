package session_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/eventloop"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/timer"
)

// lineListener makes a lineSession of every accepted connection.
type lineListener struct{ idle time.Duration }

func (lineListener) Protocol() session.Protocol { return "line" }

func (l lineListener) NewSession(lp *session.Loop, a session.Accepted) (session.ProxySession, error) {
	s := &lineSession{
		Base: session.Base{Token: a.Token, Peer: a.Peer, Last: lp.Now()},
		lp:   lp,
		sock: protocol.NewTCPSocket(a.Fd),
	}
	if l.idle > 0 {
		s.idle = l.idle
		s.timer = lp.Schedule(a.Token, 0, l.idle)
	}
	return s, nil
}

// lineSession answers every line its client sends with the line in
// upper case. It is a complete session in a few lines: edge-triggered
// readiness kept per socket, a bounded input buffer, backpressure (it
// stops reading while an answer waits), an idle timeout and a soft stop
// that waits for a half-received line.
type lineSession struct {
	session.Base // FrontendToken, LastEvent, ClusterID, SessionAddress
	lp           *session.Loop
	sock         protocol.TCPSocket
	readiness    protocol.Readiness
	in, out      []byte
	idle         time.Duration
	timer        timer.Handle
}

const maxLine = 1024

func (s *lineSession) Protocol() session.Protocol { return "line" }

func (s *lineSession) UpdateReadiness(_ eventloop.Token, r eventloop.Ready) {
	s.readiness.Update(r)
	s.Last = s.lp.Now()
}

func (s *lineSession) Ready(session.ProxySession) session.Result {
	for {
		if len(s.out) > 0 { // answers first: backpressure
			if !s.readiness.Writable() {
				return session.Continue
			}
			n, res := s.sock.Write(s.out)
			s.out = s.out[n:]
			s.readiness.Wrote(res)
			switch res {
			case protocol.WouldBlock:
				return session.Continue
			case protocol.Closed, protocol.Error:
				return session.Close
			}
			s.out = nil
		}
		// protocol.Readiness keeps the edge-triggered rules, including
		// reading on after a FIN or urgent data.
		if !s.readiness.Readable() {
			return session.Continue
		}
		var buf [512]byte
		n, res := s.sock.Read(buf[:])
		s.readiness.Read(n, res)
		s.in = append(s.in, buf[:n]...)
		for {
			i := bytes.IndexByte(s.in, '\n')
			if i < 0 {
				break
			}
			line := s.in[:i]
			if string(line) == "panic" {
				panic("asked to panic")
			}
			s.out = append(s.out, bytes.ToUpper(line)...)
			s.out = append(s.out, '\n')
			s.in = s.in[i+1:]
		}
		if len(s.in) > maxLine {
			return session.Close
		}
		if len(s.in) == 0 {
			s.in = nil // an idle session keeps no buffer
		}
		if n > 0 && s.idle > 0 {
			s.lp.Timers().Reset(s.timer, s.idle)
		}
		if (res == protocol.Closed || res == protocol.Error) && len(s.out) == 0 {
			return session.Close
		}
	}
}

func (s *lineSession) Timeout(eventloop.Token, eventloop.TimerName) session.Result {
	return session.Close
}

// ShuttingDown lets the session end unless a line is half received or
// an answer is still on its way.
func (s *lineSession) ShuttingDown() session.Result {
	if len(s.in) == 0 && len(s.out) == 0 {
		return session.Close
	}
	return session.Continue
}

func (s *lineSession) Close() {
	s.lp.Timers().Cancel(s.timer)
	s.lp.Release(s.Token, s.sock.Fd())
	s.sock.Close()
}

func (s *lineSession) PrintSession(w io.Writer) {
	fmt.Fprintf(w, "line session %v: readiness %v, %d bytes in, %d out", s.Peer, s.readiness.Ready(), len(s.in), len(s.out))
}

// Example shows a protocol of one's own plugged into a worker through a
// Listener, with nothing but the exported API.
func Example() {
	w, err := session.NewWorker(session.Config{})
	if err != nil {
		panic(err)
	}
	go w.Run()
	addr, err := w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), lineListener{idle: time.Minute}, session.ListenConfig{})
	if err != nil {
		panic(err)
	}

	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(conn, "hello, sluice\n")
	answer, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(answer)
	conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(w.SoftStop(ctx))
	// Output:
	// HELLO, SLUICE
	// <nil>
}
