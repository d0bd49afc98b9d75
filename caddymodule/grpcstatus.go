package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
)

// isGRPC reports whether a Content-Type is gRPC's (not gRPC-Web's, which
// runs over HTTP/1.1 too).
func isGRPC(ct string) bool {
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// setGRPCUnavailable makes h the headers of a trailers-only gRPC answer
// (with HTTP status 200) of status UNAVAILABLE and message msg, which gRPC
// clients read as the call's status.
func setGRPCUnavailable(h http.Header, msg string) {
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", "14") // UNAVAILABLE
	h.Set("Grpc-Message", grpcPercentEncode(msg))
}

// grpcPercentEncode encodes s as grpc-message wants: bytes outside
// printable ASCII, and '%', as %XX.
func grpcPercentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
