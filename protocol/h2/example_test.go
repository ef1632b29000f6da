package h2_test

import (
	"errors"
	"fmt"

	"github.com/sluiceproxy/sluice/protocol/h2"
)

// A read loop: frames are handled as soon as they are complete, stream
// errors reset one stream, connection errors end the connection.
func ExampleParser_Next() {
	enc := h2.NewEncoder()
	block := enc.Append(nil,
		h2.HeaderField{Name: ":method", Value: "GET"},
		h2.HeaderField{Name: ":scheme", Value: "https"},
		h2.HeaderField{Name: ":authority", Value: "example.com"},
		h2.HeaderField{Name: ":path", Value: "/"})

	// What a client might send after its preface.
	var in []byte
	in = h2.AppendSettings(in, false, h2.Setting{ID: h2.SettingInitialWindowSize, Val: 1 << 20})
	in = h2.AppendHeaders(in, 1, true, true, block)
	in = h2.AppendWindowUpdate(in, 1, 0) // invalid: a zero increment
	in = h2.AppendPing(in, false, [8]byte{'p', 'i', 'n', 'g'})

	var p h2.Parser
	dec := h2.NewDecoder(h2.DefaultHeaderTableSize, 16<<10)
	fields := make([]h2.HeaderField, 0, 16)
	for len(in) > 0 {
		f, n, err := p.Next(in)
		var se h2.StreamError
		switch {
		case errors.As(err, &se):
			fmt.Println("RST_STREAM", se.StreamID, se.Code)
			in = in[n:]
			continue
		case err != nil:
			fmt.Println("GOAWAY:", err)
			return
		case n == 0:
			fmt.Println("need more bytes")
			return
		}
		switch f.Type {
		case h2.FrameSettings:
			_ = f.Settings(func(id h2.SettingID, v uint32) error {
				fmt.Println("SETTINGS", id, v)
				return nil
			})
		case h2.FrameHeaders:
			h, _ := f.Headers() // Next already validated it
			fields, err = dec.Decode(fields[:0], h.Fragment)
			if err == nil {
				err = h2.ValidateRequest(fields)
			}
			fmt.Println("HEADERS", f.StreamID, len(fields), "fields, end stream:", h.EndStream, "err:", err)
		case h2.FramePing:
			d, _ := f.Ping()
			fmt.Printf("PING %q\n", d[:4])
		}
		in = in[n:]
	}
	// Output:
	// SETTINGS INITIAL_WINDOW_SIZE 1048576
	// HEADERS 1 4 fields, end stream: true err: <nil>
	// RST_STREAM 1 PROTOCOL_ERROR
	// PING "ping"
}
