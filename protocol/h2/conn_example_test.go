package h2_test

import (
	"fmt"
	"time"

	"github.com/sluiceproxy/sluice/protocol/h2"
)

// echoLen answers each request, once it has ended, with 204 and the
// length of its body.
type echoLen struct {
	c    *h2.ServerConn
	size map[uint32]int
}

func (e *echoLen) Headers(id uint32, fields []h2.HeaderField, endStream, trailers bool) {
	if endStream {
		e.answer(id)
	}
}

func (e *echoLen) Data(id uint32, data []byte, endStream bool) {
	e.size[id] += len(data)
	e.c.Consumed(id, len(data)) // forwarded: reopen the client's window
	if endStream {
		e.answer(id)
	}
}

func (e *echoLen) answer(id uint32) {
	_ = e.c.WriteHeaders(id, []h2.HeaderField{
		{Name: ":status", Value: "204"},
		{Name: "x-body-len", Value: fmt.Sprint(e.size[id])},
	}, true)
}

func (e *echoLen) StreamReset(id uint32, code h2.ErrCode) { delete(e.size, id) }
func (e *echoLen) StreamWritable(id uint32)               {}

// A session's loop around a ServerConn: feed what was read, keep what
// was not consumed, write Output, and close once Done.
func ExampleServerConn() {
	e := &echoLen{size: map[uint32]int{}}
	c := h2.NewServerConn(h2.ServerConfig{}, e)
	e.c = c

	// What a client sends: preface, SETTINGS, ACK of ours, a POST.
	block := h2.NewEncoder().Append(nil,
		h2.HeaderField{Name: ":method", Value: "POST"},
		h2.HeaderField{Name: ":scheme", Value: "https"},
		h2.HeaderField{Name: ":authority", Value: "example.com"},
		h2.HeaderField{Name: ":path", Value: "/upload"})
	in := []byte(h2.ClientPreface)
	in = h2.AppendSettings(in, false)
	in = h2.AppendSettingsAck(in)
	in = h2.AppendHeaders(in, 1, false, true, block)
	in = h2.AppendData(in, 1, true, []byte("hello"))

	// The read buffer arrives in two pieces; Feed consumes whole frames.
	var buf []byte
	for _, piece := range [][]byte{in[:40], in[40:]} {
		buf = append(buf, piece...)
		n, err := c.Feed(buf, time.Now())
		if err != nil {
			fmt.Println("connection error:", err)
			return
		}
		buf = buf[n:]
	}

	// Write Output to the socket, then Consume what was written.
	var p h2.Parser
	for out := c.Output(); len(out) > 0; {
		f, n, _ := p.Next(out)
		fmt.Printf("%v stream=%d flags=%#x\n", f.Type, f.StreamID, f.Flags)
		out = out[n:]
	}
	c.Consume(len(c.Output()))
	fmt.Println("open streams:", c.Streams())

	c.Shutdown(time.Now())
	// Output:
	// SETTINGS stream=0 flags=0x0
	// WINDOW_UPDATE stream=0 flags=0x0
	// SETTINGS stream=0 flags=0x1
	// HEADERS stream=1 flags=0x5
	// open streams: 0
}
