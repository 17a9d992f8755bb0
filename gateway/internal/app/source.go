package app

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/shopgateway/shop/gateway/internal/events"
)

// SourceIDFile is the file in the outbox directory that keeps the id of
// the default CloudEvents source.
const SourceIDFile = "source-id"

// deploymentSource returns the default CloudEvents source of the gateway
// whose outbox is dir: events.DefaultSource + "/" + the UUID in
// dir/SourceIDFile, made (and synced) when the file does not exist. A file
// that holds no UUID is an error rather than replaced, since a new source
// would defeat the consumers' deduplication of what is redelivered. The
// outbox must be open (it holds the directory's lock).
func deploymentSource(dir string) (string, error) {
	path := filepath.Join(dir, SourceIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id, perr := uuid.Parse(strings.TrimSpace(string(b)))
		if perr != nil || len(b) > 64 {
			return "", fmt.Errorf("%s does not hold a UUID; restore it, or remove it to make a new source (consumers then see another deployment)", path)
		}
		return events.DefaultSource + "/" + id.String(), nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	id := uuid.NewString()
	tmp, err := os.CreateTemp(dir, SourceIDFile+".tmp*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return events.DefaultSource + "/" + id, nil
}

// defaultSchemaBase is the REST port's URL as seen from the machine: the
// listen host, or the host name when the gateway listens on every address.
func defaultSchemaBase(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// checkSchemaBase accepts an absolute http(s) URL without credentials,
// query or fragment, not ending in "/".
func checkSchemaBase(base string) error {
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return fmt.Errorf("event schema base %q: %w", base, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("event schema base %q: want an http or https URL", base)
	case u.User != nil, u.RawQuery != "", u.ForceQuery, u.Fragment != "", strings.HasSuffix(base, "/"):
		return fmt.Errorf("event schema base %q: want no credentials, query, fragment or trailing /", base)
	}
	return nil
}

// ParseTopicMap parses "logical=actual,logical=actual" into a map; blanks
// are skipped. An entry without "=", with an empty side, or a logical topic
// given twice is an error.
func ParseTopicMap(s string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, kv := range SplitList(s) {
		logical, actual, ok := strings.Cut(kv, "=")
		logical, actual = strings.TrimSpace(logical), strings.TrimSpace(actual)
		switch {
		case !ok || logical == "" || actual == "":
			errs = append(errs, fmt.Errorf("%q: want logical=actual", kv))
		case out[logical] != "":
			errs = append(errs, fmt.Errorf("%q: topic %s mapped twice", kv, logical))
		default:
			out[logical] = actual
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
