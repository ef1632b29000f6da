package httpproxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// rawCodec carries messages as bytes, so the test needs no generated
// protobuf code: gRPC's framing, headers and trailers are what is tested.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

var echoService = grpc.ServiceDesc{
	ServiceName: "sluice.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if string(in) == "fail" {
				return nil, status.Error(codes.InvalidArgument, "told to fail")
			}
			grpc.SetTrailer(ctx, metadata.Pairs("x-len", strconv.Itoa(len(in))))
			out := append([]byte("echo:"), in...)
			return &out, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Bidi",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			n := 0
			for {
				var in []byte
				err := stream.RecvMsg(&in)
				if err == io.EOF {
					stream.SetTrailer(metadata.Pairs("x-count", strconv.Itoa(n)))
					return nil
				}
				if err != nil {
					return err
				}
				n++
				out := bytes.ToUpper(in)
				if err := stream.SendMsg(&out); err != nil {
					return err
				}
			}
		},
	}},
}

// grpcBackend is a real gRPC server (h2c).
func grpcBackend(t *testing.T) *origin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&echoService, struct{}{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return &origin{name: "grpc", addr: netip.MustParseAddrPort(ln.Addr().String())}
}

// gRPC unary and bidirectional streaming calls, with trailers and an
// error status, through the proxy: HTTP/2 on both sides, over h2c and
// over TLS.
func TestGRPCThroughTheProxy(t *testing.T) {
	for _, mode := range []string{"h2c", "tls"} {
		t.Run(mode, func(t *testing.T) {
			// Each mode has its own backend and proxy: a tester checks
			// that its goroutines and descriptors are gone at its end.
			be := grpcBackend(t)
			var target string
			var creds credentials.TransportCredentials
			if mode == "tls" {
				f := newHTTPS(t, httpproxy.Config{}, be)
				require.NoError(t, httpproxy.SetClusterHTTP2(f.w, "c", true))
				target, creds = "localhost:"+fmt.Sprint(f.addr.Port()), credentials.NewTLS(&tls.Config{RootCAs: f.roots})
			} else {
				h2c := newTester(t, httpproxy.Config{H2C: true}, be)
				require.NoError(t, httpproxy.SetClusterHTTP2(h2c.w, "c", true))
				target, creds = h2c.addr.String(), insecure.NewCredentials()
			}
			conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
				grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
			require.NoError(t, err)
			t.Cleanup(func() { conn.Close() }) // before the tester's leak check
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			// Unary, with a trailer.
			for i := 0; i < 20; i++ {
				in := []byte(fmt.Sprintf("hello %d", i))
				var out []byte
				var trailer metadata.MD
				require.NoError(t, conn.Invoke(ctx, "/sluice.test.Echo/Unary", &in, &out, grpc.Trailer(&trailer)))
				assert.Equal(t, "echo:"+string(in), string(out))
				assert.Equal(t, []string{strconv.Itoa(len(in))}, trailer.Get("x-len"))
			}
			// A large message, beyond every flow-control window.
			big := bytes.Repeat([]byte("m"), 3<<20)
			var out []byte
			require.NoError(t, conn.Invoke(ctx, "/sluice.test.Echo/Unary", &big, &out))
			assert.Len(t, out, len(big)+5)

			// An error status (a trailers-only response).
			in := []byte("fail")
			err = conn.Invoke(ctx, "/sluice.test.Echo/Unary", &in, &out)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			assert.Equal(t, "told to fail", status.Convert(err).Message())

			// Bidirectional streaming: each message's answer comes back
			// before the next is sent, then the trailer.
			stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/sluice.test.Echo/Bidi")
			require.NoError(t, err)
			for i := 0; i < 10; i++ {
				msg := []byte(fmt.Sprintf("message %d", i))
				require.NoError(t, stream.SendMsg(&msg))
				var got []byte
				require.NoError(t, stream.RecvMsg(&got))
				assert.Equal(t, string(bytes.ToUpper(msg)), string(got))
			}
			require.NoError(t, stream.CloseSend())
			var got []byte
			assert.Equal(t, io.EOF, stream.RecvMsg(&got))
			assert.Equal(t, []string{"10"}, stream.Trailer().Get("x-count"))
		})
	}
}
