package httpproxy

import "strconv"

// The answers the proxy makes itself (DESIGN.md, principle 6).
const (
	ans400 = iota
	ans401
	ans404
	ans408
	ans413
	ans414
	ans429
	ans431
	ans501
	ans502
	ans503
	ans504
	ans505
	ansRedirect
	answerCount
)

var answerStatus = [answerCount]int{400, 401, 404, 408, 413, 414, 429, 431, 501, 502, 503, 504, 505, 301}

var answerText = [answerCount]string{
	"Bad Request", "Unauthorized", "Not Found", "Request Timeout", "Content Too Large",
	"URI Too Long", "Too Many Requests", "Request Header Fields Too Large", "Not Implemented",
	"Bad Gateway", "Service Unavailable", "Gateway Timeout", "HTTP Version Not Supported", "Moved Permanently",
}

func answerIndex(status int) int {
	for i, s := range answerStatus {
		if s == status {
			return i
		}
	}
	return ans400
}

// appendAnswer builds a complete response: status line, Content-Length,
// the request id, Connection: close when the connection ends after it,
// extra fields (Location, Retry-After), and a short text body.
func appendAnswer(dst []byte, status int, reason string, id []byte, closeConn bool, extra string) []byte {
	body := strconv.Itoa(status) + " " + reason + "\n"
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-cache\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	if len(id) > 0 {
		dst = append(dst, "\r\nX-Request-Id: "...)
		dst = append(dst, id...)
	}
	if closeConn {
		dst = append(dst, "\r\nConnection: close"...)
	}
	dst = append(dst, extra...)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, body...)
}
