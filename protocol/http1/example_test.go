package http1_test

import (
	"bytes"
	"fmt"

	"github.com/sluiceproxy/sluice/protocol/http1"
)

// A session reads a request in pieces, parses its head as bytes arrive,
// finds the end of its body while forwarding it, and edits the head for
// the backend without copying what it keeps.
func Example() {
	reads := []string{
		"POST /api HTTP/1.1\r\nHost: example.com\r\nConn",
		"ection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"lo\r\n0\r\n\r\nGET /next HTTP/1.1\r\n",
	}
	var (
		buf  []byte
		p    http1.Parser // reused: Reset between messages
		h    http1.Head   // reused: Fields keeps its capacity
		e    http1.Editor
		body http1.Body
		segs [][]byte
	)
	i := 0
	for ; i < len(reads); i++ {
		buf = append(buf, reads[i]...)
		done, err := p.Parse(buf, http1.Request, &h)
		if err != nil {
			fmt.Println("answer", err.(*http1.Error).Code, "and close")
			return
		}
		if done {
			break
		}
		fmt.Println("head incomplete, read more")
	}
	fmt.Printf("%s %s, Keep-Alive %v\n", h.Method.Of(buf), h.Target.Of(buf), h.KeepAlive())

	e.Reset(buf[:h.Len], &h)
	e.RemoveConnectionOptions() // Connection and the fields it names
	_ = e.Add("X-Forwarded-For", []byte("192.0.2.7"))
	segs = e.Segments(segs[:0])
	head := bytes.Join(segs, nil) // writev(backend, segs) in a session
	fmt.Printf("%d segments, %d bytes:\n%s", len(segs), e.Len(), bytes.ReplaceAll(head, []byte("\r\n"), []byte("\n")))

	kind, n := h.Body(false, false)
	body.Init(kind, n, http1.Limits{})
	rest := buf[h.Len:]
	for {
		used, done, err := body.Parse(rest)
		if err != nil {
			fmt.Println("close:", err)
			return
		}
		fmt.Printf("forward %d body bytes\n", used)
		if done {
			fmt.Printf("next message starts with %q\n", rest[used:])
			break
		}
		i++
		rest = []byte(reads[i])
	}
	// Output:
	// head incomplete, read more
	// POST /api, Keep-Alive true
	// 4 segments, 97 bytes:
	// POST /api HTTP/1.1
	// Host: example.com
	// Transfer-Encoding: chunked
	// X-Forwarded-For: 192.0.2.7
	//
	// forward 6 body bytes
	// forward 9 body bytes
	// next message starts with "GET /next HTTP/1.1\r\n"
}
