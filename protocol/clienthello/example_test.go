package clienthello_test

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/sluiceproxy/sluice/protocol/clienthello"
)

// An SNI router: read what the client sends until Parse decides, route
// on the server name, then replay every byte peeked to the backend. Here
// the client is crypto/tls over net.Pipe and the reads are small, so the
// hello arrives in several pieces.
func Example() {
	client, conn := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := &tls.Config{ServerName: "API.example.com", NextProtos: []string{"h2", "http/1.1"}}
		tls.Client(client, cfg).Handshake() // fails when the router hangs up
		client.Close()
	}()
	defer func() { conn.Close(); <-done }()

	routes := map[string]string{
		"api.example.com": "10.0.0.2:443",
		"www.example.com": "10.0.0.3:443",
	}

	var buf []byte
	read := make([]byte, 512)
	for {
		n, err := conn.Read(read)
		if err != nil {
			fmt.Println("close:", err)
			return
		}
		buf = append(buf, read[:n]...)
		h, err := clienthello.Parse(buf)
		if err == clienthello.ErrIncomplete {
			continue // on an event loop: wait for the socket to be readable
		}
		if err != nil {
			fmt.Println("close:", err) // ErrNotTLS, ErrMalformed, ErrTooLarge
			return
		}
		backend, ok := routes[h.ServerName]
		if !ok {
			fmt.Println("close: no route for", h.ServerName)
			return
		}
		fmt.Printf("%s %q -> %s\n", h.ServerName, h.ALPN, backend)
		// Connect to backend, write buf (buf[:h.Len] is the hello,
		// buf[h.Len:] what the client sent after it), then relay.
		fmt.Println("peeked bytes are the hello:", h.Len == len(buf))
		return
	}
	// Output:
	// api.example.com ["h2" "http/1.1"] -> 10.0.0.2:443
	// peeked bytes are the hello: true
}

// A plaintext request on a TLS port is turned away on its first byte.
func ExampleParse() {
	_, err := clienthello.Parse([]byte("G"))
	fmt.Println(err)
	_, err = clienthello.Parse([]byte{0x16, 0x03})
	fmt.Println(err)
	// Output:
	// clienthello: not a TLS handshake
	// clienthello: incomplete ClientHello
}
