package reqinfo

// GrpcTimeoutPattern is the form of a Grpc-Timeout header the gateway
// accepts, as the gRPC over HTTP/2 spec defines TimeoutValue and
// TimeoutUnit: 1 to 8 ASCII digits and one unit letter (H hours, M minutes,
// S seconds, m milliseconds, u microseconds, n nanoseconds). The OpenAPI
// document states the same pattern; ValidGrpcTimeout is its check.
const GrpcTimeoutPattern = `^[0-9]{1,8}[HMSmun]$`

// maxGrpcTimeoutDigits is the longest TimeoutValue of the gRPC spec.
const maxGrpcTimeoutDigits = 8

// ValidGrpcTimeout reports whether s matches GrpcTimeoutPattern. An empty
// value, a sign, spaces, more than 8 digits or an unknown unit are not
// valid; a value of 0 is (a deadline that has already passed).
func ValidGrpcTimeout(s string) bool {
	n := len(s) - 1
	if n < 1 || n > maxGrpcTimeoutDigits {
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
