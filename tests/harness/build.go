package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	buildOnce sync.Once
	buildBin  string
	buildErr  error

	flagsMu sync.Mutex
	flagsOf = map[string]string{} // binary path -> its -h output
)

// RepoRoot returns the directory of the repository's go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	rootOnce.Do(func() {
		var out []byte
		out, rootErr = exec.Command("go", "env", "GOMOD").Output()
		if rootErr == nil {
			gomod := strings.TrimSpace(string(out))
			if gomod == "" || gomod == os.DevNull {
				rootErr = errNoModule
				return
			}
			rootDir = filepath.Dir(gomod)
		}
	})
	if rootErr != nil {
		tb.Fatalf("harness: finding the repository root: %v", rootErr)
	}
	return rootDir
}

type harnessError string

func (e harnessError) Error() string { return string(e) }

const errNoModule = harnessError("not inside the module (go env GOMOD is empty)")

// GatewayBinary returns the path of the gateway binary: $GATEWAY_BIN when
// set, else one built once per test process into bin/harness/gateway under
// the repository root (built to a temporary name and renamed, so that test
// processes building at the same time do not see a half-written file).
func GatewayBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("GATEWAY_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			tb.Fatalf("harness: GATEWAY_BIN=%s: %v", bin, err)
		}
		return bin
	}
	root := RepoRoot(tb)
	buildOnce.Do(func() {
		dir := filepath.Join(root, "bin", "harness")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		var tmp *os.File
		tmp, buildErr = os.CreateTemp(dir, "gateway-*.tmp")
		if buildErr != nil {
			return
		}
		tmp.Close()
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "./gateway/cmd/gateway")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			os.Remove(tmp.Name())
			buildErr = harnessError("go build ./gateway/cmd/gateway: " + err.Error() + "\n" + string(out))
			return
		}
		buildBin = filepath.Join(dir, "gateway")
		if buildErr = os.Rename(tmp.Name(), buildBin); buildErr != nil {
			os.Remove(tmp.Name())
			return
		}
		tb.Logf("harness: built %s in %v", buildBin, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		tb.Fatalf("harness: building the gateway: %v", buildErr)
	}
	return buildBin
}

// gatewayHasFlag reports whether the gateway binary knows -name, from its
// -h output. It lets the harness run gateways from before a flag existed.
func gatewayHasFlag(bin, name string) bool {
	flagsMu.Lock()
	defer flagsMu.Unlock()
	help, ok := flagsOf[bin]
	if !ok {
		out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits non-zero
		help = string(out)
		flagsOf[bin] = help
	}
	return strings.Contains(help, "-"+name+" ") || strings.Contains(help, "-"+name+"\n")
}

// runKafkaScript runs scripts/kafka.sh cmd and returns its output.
func runKafkaScript(root, cmd string) ([]byte, error) {
	env, err := kafkaScriptEnv()
	if err != nil {
		return nil, err
	}
	c := exec.Command("bash", filepath.Join(root, "scripts", "kafka.sh"), cmd)
	c.Dir = root
	c.Env = env
	return c.CombinedOutput()
}

// kafkaScriptEnv is the environment under which scripts/kafka.sh controls
// the broker of Brokers(). The script's broker listens on
// 127.0.0.1:$KAFKA_PORT, so the port is taken from the one loopback address
// in KAFKA_BROKERS: a run with its ports moved stops and starts its own
// broker, never another stack's on the default port.
func kafkaScriptEnv() ([]string, error) {
	brokers := Brokers()
	if len(brokers) != 1 {
		return nil, fmt.Errorf("KAFKA_BROKERS=%s: the broker of scripts/kafka.sh is one address, 127.0.0.1:$KAFKA_PORT", strings.Join(brokers, ","))
	}
	host, port, err := net.SplitHostPort(brokers[0])
	if err != nil || (host != "127.0.0.1" && host != "localhost") {
		return nil, fmt.Errorf("KAFKA_BROKERS=%s: the broker of scripts/kafka.sh listens on 127.0.0.1:$KAFKA_PORT", brokers[0])
	}
	if p := os.Getenv("KAFKA_PORT"); p != "" && p != port {
		return nil, fmt.Errorf("KAFKA_BROKERS=%s but KAFKA_PORT=%s: set them to the same port", brokers[0], p)
	}
	return append(os.Environ(), "KAFKA_PORT="+port), nil
}
