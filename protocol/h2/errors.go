package h2

import (
	"errors"
	"strconv"
)

// ConnectionError is an error that ends the connection (RFC 9113 §5.4.1):
// the endpoint sends GOAWAY with Code and closes.
type ConnectionError struct {
	Code   ErrCode
	Reason string
}

func (e ConnectionError) Error() string {
	return "h2: connection error " + e.Code.String() + ": " + e.Reason
}

// StreamError is an error that ends one stream (RFC 9113 §5.4.2): the
// endpoint sends RST_STREAM with Code on StreamID and the connection goes
// on. The validators of hpack.go return StreamErrors with StreamID 0,
// since they do not know the stream: the connection fills it in.
type StreamError struct {
	StreamID uint32
	Code     ErrCode
	Reason   string
}

func (e StreamError) Error() string {
	return "h2: stream error on stream " + strconv.FormatUint(uint64(e.StreamID), 10) + " " + e.Code.String() + ": " + e.Reason
}

// errWrongType is returned by an accessor called on a frame of another
// type: a programming error, not a peer's.
var errWrongType = errors.New("h2: frame accessor called on a frame of another type")

// The connection errors the frame layer raises. They are built once, so
// that returning one does not allocate.
var (
	errFrameTooLarge error = ConnectionError{ErrCodeFrameSize, "frame length exceeds SETTINGS_MAX_FRAME_SIZE"}

	errPadLengthMissing error = ConnectionError{ErrCodeFrameSize, "PADDED frame too short for its Pad Length"}
	errPadTooLong       error = ConnectionError{ErrCodeProtocol, "padding length not smaller than the payload"}

	errDataStream0          error = ConnectionError{ErrCodeProtocol, "DATA on stream 0"}
	errHeadersStream0       error = ConnectionError{ErrCodeProtocol, "HEADERS on stream 0"}
	errHeadersPriorityShort error = ConnectionError{ErrCodeFrameSize, "HEADERS with PRIORITY too short"}
	errPriorityStream0      error = ConnectionError{ErrCodeProtocol, "PRIORITY on stream 0"}
	errRSTStream0           error = ConnectionError{ErrCodeProtocol, "RST_STREAM on stream 0"}
	errRSTLength            error = ConnectionError{ErrCodeFrameSize, "RST_STREAM length is not 4"}
	errSettingsStream       error = ConnectionError{ErrCodeProtocol, "SETTINGS on a stream other than 0"}
	errSettingsAckLength    error = ConnectionError{ErrCodeFrameSize, "SETTINGS ACK with a payload"}
	errSettingsLength       error = ConnectionError{ErrCodeFrameSize, "SETTINGS length is not a multiple of 6"}
	errPushPromiseStream0   error = ConnectionError{ErrCodeProtocol, "PUSH_PROMISE on stream 0"}
	errPushPromiseShort     error = ConnectionError{ErrCodeFrameSize, "PUSH_PROMISE too short"}
	errPromisedID           error = ConnectionError{ErrCodeProtocol, "PUSH_PROMISE promises an invalid stream"}
	errPingStream           error = ConnectionError{ErrCodeProtocol, "PING on a stream other than 0"}
	errPingLength           error = ConnectionError{ErrCodeFrameSize, "PING length is not 8"}
	errGoAwayStream         error = ConnectionError{ErrCodeProtocol, "GOAWAY on a stream other than 0"}
	errGoAwayShort          error = ConnectionError{ErrCodeFrameSize, "GOAWAY shorter than 8"}
	errWindowUpdateLength   error = ConnectionError{ErrCodeFrameSize, "WINDOW_UPDATE length is not 4"}
	errWindowUpdateZero     error = ConnectionError{ErrCodeProtocol, "WINDOW_UPDATE increment is 0"}
	errContinuationStream0  error = ConnectionError{ErrCodeProtocol, "CONTINUATION on stream 0"}

	errBadEnablePush      error = ConnectionError{ErrCodeProtocol, "SETTINGS_ENABLE_PUSH not 0 or 1"}
	errBadInitialWindow   error = ConnectionError{ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1"}
	errBadMaxFrameSize    error = ConnectionError{ErrCodeProtocol, "SETTINGS_MAX_FRAME_SIZE outside [2^14, 2^24-1]"}
	errBadConnectProtocol error = ConnectionError{ErrCodeProtocol, "SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1"}
	errBadNoPriorities    error = ConnectionError{ErrCodeProtocol, "SETTINGS_NO_RFC7540_PRIORITIES not 0 or 1"}
)

// Classify reports how the connection must answer err: with GOAWAY
// (connection error), with RST_STREAM on the returned stream (stream
// error), or neither (ok == false: err is nil or not an HTTP/2 error).
func Classify(err error) (code ErrCode, streamID uint32, connection bool, ok bool) {
	var ce ConnectionError
	if errors.As(err, &ce) {
		return ce.Code, 0, true, true
	}
	var se StreamError
	if errors.As(err, &se) {
		return se.Code, se.StreamID, false, true
	}
	return 0, 0, false, false
}
