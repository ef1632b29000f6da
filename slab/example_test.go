package slab_test

import (
	"errors"
	"fmt"

	"github.com/sluiceproxy/sluice/slab"
)

type session struct {
	token int
	addr  string
}

// newSession stands in for building a session, which needs its token (for
// example to register its socket with the poller) and may fail.
func newSession(token int, addr string) (*session, error) {
	if addr == "" {
		return nil, errors.New("no address")
	}
	return &session{token: token, addr: addr}, nil
}

// accept reserves a token, builds the session with it, and only then makes
// the session visible. The deferred Release returns the token if building
// fails and does nothing once the session has been inserted.
func accept(sessions *slab.Slab[*session], addr string) error {
	v, err := sessions.Vacant()
	if err != nil {
		return err // slab.ErrFull: refuse the connection.
	}
	defer v.Release()

	s, err := newSession(v.Key(), addr)
	if err != nil {
		return err
	}
	v.Insert(s)
	return nil
}

// Example reserves a key with Vacant so that a session can be built with
// its own token before it is stored.
func Example() {
	sessions := slab.New[*session](2)

	fmt.Println(accept(sessions, "10.0.0.1:4242"))
	fmt.Println(accept(sessions, "")) // Fails: its token is given back.
	fmt.Println(accept(sessions, "10.0.0.2:4242"))
	fmt.Println(accept(sessions, "10.0.0.3:4242"))

	// An event for token 1 leads straight back to its session.
	if s, ok := sessions.Get(1); ok {
		fmt.Println("token 1:", s.addr)
	}
	fmt.Println("live:", sessions.Len(), "reserved:", sessions.Reserved())

	// Output:
	// <nil>
	// no address
	// <nil>
	// slab: full
	// token 1: 10.0.0.2:4242
	// live: 2 reserved: 0
}

// ExampleSlab_All removes sessions while walking the slab, as a periodic
// sweep for zombie sessions does.
func ExampleSlab_All() {
	sessions := slab.New[string](0)
	for _, state := range []string{"open", "zombie", "open", "zombie"} {
		if _, err := sessions.Insert(state); err != nil {
			panic(err)
		}
	}

	for token, state := range sessions.All() {
		if state == "zombie" {
			sessions.Remove(token)
			fmt.Println("closed", token)
		}
	}
	fmt.Println("live:", sessions.Len())

	// Output:
	// closed 1
	// closed 3
	// live: 2
}
