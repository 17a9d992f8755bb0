package reqinfo

// GrpcTimeoutPattern is the form of a Grpc-Timeout header the gateway
// accepts, as the gRPC over HTTP/2 spec defines TimeoutValue (a positive
// integer of at most 8 digits) and TimeoutUnit: 1 to 8 ASCII digits without
// a leading zero and one unit letter (H hours, M minutes, S seconds, m
// milliseconds, u microseconds, n nanoseconds). Zero is refused: over REST
// it would read as "no deadline" where a client meant "none left". The
// OpenAPI document states the same pattern; ValidGrpcTimeout is its check.
const GrpcTimeoutPattern = `^[1-9][0-9]{0,7}[HMSmun]$`

// maxGrpcTimeoutDigits is the longest TimeoutValue of the gRPC spec.
const maxGrpcTimeoutDigits = 8

// ValidGrpcTimeout reports whether s matches GrpcTimeoutPattern. An empty
// value, a sign, spaces, a leading zero (0 itself included), more than 8
// digits or an unknown unit are not valid.
func ValidGrpcTimeout(s string) bool {
	n := len(s) - 1
	if n < 1 || n > maxGrpcTimeoutDigits || s[0] == '0' {
		return false
	}
	switch s[n] {
	case 'H', 'M', 'S', 'm', 'u', 'n':
	default:
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
