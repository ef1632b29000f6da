package httpproxy

import (
	"strconv"

	"github.com/sluiceproxy/sluice/session"
)

// The answers the proxy makes itself (ARCHITECTURE.md, principle 6).
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

// Answer replaces the body of one of the proxy's own answers (see
// Config.Answers and SetClusterAnswers). The status line, Content-Length,
// X-Request-Id and Connection fields are always the proxy's.
type Answer struct {
	// ContentType of Body. Default "text/html; charset=utf-8".
	ContentType string
	// Body is sent as is.
	Body string
}

// appendAnswer builds a complete response: status line, Content-Length,
// the request id, Connection: close when the connection ends after it,
// extra fields (Location, Retry-After), and the body: the template's, or
// a short text.
func appendAnswer(dst []byte, status int, reason string, id []byte, closeConn bool, extra string, tpl *Answer) []byte {
	body := strconv.Itoa(status) + " " + reason + "\n"
	ctype := "text/plain; charset=utf-8"
	if tpl != nil {
		body, ctype = tpl.Body, tpl.ContentType
		if ctype == "" {
			ctype = "text/html; charset=utf-8"
		}
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\nContent-Type: "...)
	dst = append(dst, ctype...)
	dst = append(dst, "\r\nCache-Control: no-cache\r\nContent-Length: "...)
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

// SetClusterAnswers sets the answer templates used for requests routed
// to cluster (a 502, 503 or 504 page per application, say); they win over
// the listener's Config.Answers. nil removes them, and so does removing
// the cluster. It is a command (a [session.Worker] or a whole
// [session.Proxy]): safe from any goroutine.
func SetClusterAnswers(c session.Commands, cluster string, answers map[int]Answer) error {
	copied := make(map[int]Answer, len(answers))
	for k, v := range answers {
		copied[k] = v
	}
	return c.Exec(func(lp *session.Loop) error {
		st := stateOf(lp)
		if answers == nil {
			delete(st.clusterAnswers, cluster)
			return nil
		}
		if st.clusterAnswers == nil {
			st.clusterAnswers = map[string]map[int]Answer{}
		}
		st.clusterAnswers[cluster] = copied
		return nil
	})
}
