package h2_test

import (
	"fmt"
	"time"

	"github.com/sluiceproxy/sluice/protocol/h2"
)

// printResponse prints a backend's response as it arrives and gives its
// body's window back once it is "forwarded".
type printResponse struct{ c *h2.ClientConn }

func (p *printResponse) ResponseHeaders(id uint32, fields []h2.HeaderField, endStream, trailers bool) {
	fmt.Println("stream", id, "head or trailers:", fields, "trailers:", trailers, "end:", endStream)
}

func (p *printResponse) ResponseData(id uint32, data []byte, endStream bool) {
	fmt.Printf("stream %d data %q end: %v\n", id, data, endStream)
	p.c.Consumed(id, len(data))
}

func (p *printResponse) StreamReset(id uint32, code h2.ErrCode) { fmt.Println("reset", id, code) }
func (p *printResponse) StreamWritable(id uint32)               {}

// A proxy's backend connection: open a stream per request, write Output
// to the socket, feed what the backend sends.
func ExampleClientConn() {
	p := &printResponse{}
	c := h2.NewClientConn(h2.ClientConfig{}, p)
	p.c = c
	now := time.Now()
	c.Timeout(now) // start the SETTINGS timer

	id, err := c.OpenStream([]h2.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "backend:8080"},
		{Name: ":path", Value: "/pkg.Service/Method"},
		{Name: "content-type", Value: "application/grpc"},
	}, false)
	if err != nil {
		panic(err)
	}
	c.WriteData(id, []byte("\x00\x00\x00\x00\x00"), true)
	// The socket would now get c.Output(): preface, SETTINGS,
	// WINDOW_UPDATE, HEADERS, DATA.
	fmt.Println("to send:", len(c.Output()) > len(h2.ClientPreface))
	c.Consume(len(c.Output()))

	// What the backend answers: its SETTINGS, the ACK of ours, a gRPC
	// response with trailers.
	enc := h2.NewEncoder()
	in := h2.AppendSettings(nil, false)
	in = h2.AppendSettingsAck(in)
	in = h2.AppendHeaders(in, id, false, true, enc.Append(nil, h2.HeaderField{Name: ":status", Value: "200"}))
	in = h2.AppendData(in, id, false, []byte("\x00\x00\x00\x00\x00"))
	in = h2.AppendHeaders(in, id, true, true, enc.Append(nil, h2.HeaderField{Name: "grpc-status", Value: "0"}))
	n, err := c.Feed(in, now)
	fmt.Println("fed", n == len(in), err, "open streams:", c.Streams())
	// Output:
	// to send: true
	// stream 1 head or trailers: [{:status 200 false}] trailers: false end: false
	// stream 1 data "\x00\x00\x00\x00\x00" end: false
	// stream 1 head or trailers: [{grpc-status 0 false}] trailers: true end: true
	// fed true <nil> open streams: 0
}
