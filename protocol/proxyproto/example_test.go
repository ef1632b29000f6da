package proxyproto_test

import (
	"fmt"
	"net/netip"

	"github.com/sluiceproxy/sluice/protocol/proxyproto"
)

// A session in "expect" mode: append each read to the buffer and parse
// everything so far. Here the header arrives in two pieces, the second
// one with the first payload bytes.
func Example() {
	reads := [][]byte{
		[]byte("PROXY TCP4 203.0.113.7 192.0.2.10 5"),
		[]byte("1000 443\r\nGET / HTTP/1.1\r\n"),
	}
	var (
		buf []byte
		h   proxyproto.Header // reused: ParseInto allocates nothing
	)
	for _, r := range reads {
		buf = append(buf, r...)
		n, err := proxyproto.ParseInto(&h, buf, proxyproto.ParseOptions{})
		if err == proxyproto.ErrIncomplete {
			fmt.Println("incomplete, waiting for more")
			continue
		}
		if err != nil {
			fmt.Println("close:", err) // ErrNotProxy, ErrInvalid, ErrTooLong
			return
		}
		fmt.Println(h.Version, h.Command, h.Transport, h.Source, "->", h.Destination)
		fmt.Printf("payload %q\n", buf[n:])
	}
	// Output:
	// incomplete, waiting for more
	// v1 PROXY TCP4 203.0.113.7:51000 -> 192.0.2.10:443
	// payload "GET / HTTP/1.1\r\n"
}

// "Send" mode: before the first client byte, write the header describing
// the client (the accepted socket's peer) and the address it reached (its
// local address).
func ExampleNewTCP() {
	client := netip.MustParseAddrPort("[::ffff:203.0.113.7]:51000") // from a dual-stack listener
	local := netip.MustParseAddrPort("192.0.2.10:443")
	h := proxyproto.NewTCP(client, local)

	v1, _ := h.AppendV1(nil)
	fmt.Printf("%q\n", v1)

	h.TLVs = []proxyproto.TLV{{Type: proxyproto.PP2_TYPE_ALPN, Value: []byte("h2")}}
	v2, _ := h.AppendV2(make([]byte, 0, 64))
	fmt.Printf("% x\n", v2)
	// Output:
	// "PROXY TCP4 203.0.113.7 192.0.2.10 51000 443\r\n"
	// 0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 11 cb 00 71 07 c0 00 02 0a c7 38 01 bb 01 00 02 68 32
}

// "Expect" mode with a strict policy: only v2 from this peer, and small.
func ExampleParse() {
	opts := proxyproto.ParseOptions{DisableV1: true, MaxV2Len: 256}
	_, _, err := proxyproto.Parse([]byte("PROXY TCP4 "), opts)
	fmt.Println(err)
	_, _, err = proxyproto.Parse([]byte("G"), opts)
	fmt.Println(err)
	// Output:
	// proxyproto: not a PROXY protocol header
	// proxyproto: not a PROXY protocol header
}
