package clickhouse

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Environment variables that supply credentials the DSN does not carry.
const (
	EnvUser     = "PERISCOPE_CLICKHOUSE_USER"
	EnvPassword = "PERISCOPE_CLICKHOUSE_PASSWORD"
)

// Defaults of Options.
const (
	DefaultDatabase          = "periscope"
	DefaultRetention         = 7 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour
	DefaultDialTimeout       = 5 * time.Second
	DefaultIOTimeout         = 30 * time.Second
	DefaultMaxQueries        = 4
	DefaultQueryTimeout      = time.Minute
	DefaultQueryThreads      = 2
)

// Options configure Open. Zero fields take the defaults above.
type Options struct {
	// DSN is "tcp://host:port[,host2:port]?database=periscope"; user and
	// password may be in it (tcp://user:pass@host:9000), or come from
	// PasswordFile or the environment (EnvUser, EnvPassword). The DSN wins
	// over PasswordFile, which wins over the environment.
	DSN string
	// PasswordFile holds the password (one line; trailing newline ignored).
	PasswordFile string
	// TLS turns on TLS; CAFile adds a CA bundle to verify the server with;
	// InsecureSkipVerify disables verification (tests only).
	TLS                bool
	CAFile             string
	InsecureSkipVerify bool
	// Retention is how long flows are kept; whole days (partitions) older
	// than it are dropped. Default 7 days.
	Retention time.Duration
	// RetentionInterval is how often Run drops old partitions. Default 1h.
	RetentionInterval time.Duration
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout time.Duration
	// IOTimeout bounds each read from and write to the server: one that
	// hangs or stops (SIGSTOP, a full disk, a dead peer without a RST) fails
	// the insert or query after it, and the queue retries. Default 30s.
	IOTimeout time.Duration
	// MaxQueries bounds the history queries run at once, on connections
	// of their own, never the sink's; one more is refused
	// (flowquery.ErrBusy). Default 4.
	MaxQueries int
	// QueryTimeout is how long the server may run one history query
	// (max_execution_time). Default 1m.
	QueryTimeout time.Duration
	// QueryThreads bounds the server's threads per history query
	// (max_threads), leaving cores to inserts. Default 2.
	QueryThreads int
	// Logger receives the store's messages. Default slog.Default().
	Logger *slog.Logger
}

// identRE is the allow-list for identifiers that come from configuration
// (the database name): they are quoted, but never trusted beyond this set.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// clientOptions turns Options into clickhouse-go options and the database name.
func (o Options) clientOptions() (*ch.Options, string, error) {
	if o.DSN == "" {
		return nil, "", fmt.Errorf("clickhouse: empty DSN (want tcp://host:9000?database=%s)", DefaultDatabase)
	}
	u, err := url.Parse(o.DSN)
	if err != nil {
		return nil, "", fmt.Errorf("clickhouse: parse DSN: %w", redactErr(err, o.DSN))
	}
	switch u.Scheme {
	case "tcp", "clickhouse":
	default:
		return nil, "", fmt.Errorf("clickhouse: DSN scheme %q: want tcp:// (the native protocol)", u.Scheme)
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("clickhouse: DSN has no host")
	}
	q := u.Query()
	db := q.Get("database")
	if db == "" {
		db = DefaultDatabase
	}
	if !identRE.MatchString(db) {
		return nil, "", fmt.Errorf("clickhouse: database name %q: want letters, digits and _", db)
	}
	auth := ch.Auth{Database: "default", Username: "default"}
	if v := os.Getenv(EnvUser); v != "" {
		auth.Username = v
	}
	auth.Password = os.Getenv(EnvPassword)
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, "", fmt.Errorf("clickhouse: read password file: %w", err)
		}
		auth.Password = strings.TrimRight(string(b), "\r\n")
	}
	if u.User != nil {
		auth.Username = u.User.Username()
		if p, ok := u.User.Password(); ok {
			auth.Password = p
		}
	}
	opts := &ch.Options{
		Protocol:    ch.Native,
		Addr:        strings.Split(u.Host, ","),
		Auth:        auth,
		DialTimeout: o.DialTimeout,
		Compression: compression(q.Get("compress")),
		// The sink's writer, retention and the checks of a retried
		// batch: a small pool is plenty. History reads have their own
		// (readOptions).
		MaxOpenConns: 8,
		MaxIdleConns: 4,
	}
	if o.TLS || o.CAFile != "" || q.Get("secure") == "true" {
		tc := &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in, tests only
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, "", fmt.Errorf("clickhouse: read CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, "", fmt.Errorf("clickhouse: CA file %s holds no PEM certificate", o.CAFile)
			}
			tc.RootCAs = pool
		}
		opts.TLS = tc
	}
	// Our dialer applies opts.TLS itself (clickhouse-go does not with a
	// DialContext).
	opts.DialContext = dialer(o.DialTimeout, o.IOTimeout, opts.TLS)
	opts.ReadTimeout = o.IOTimeout
	return opts, db, nil
}

// readOptions are the client options of history reads' own pool: room
// for MaxQueries queries and two KILL QUERYs, and a read timeout that
// outlasts the server's own limit on a query.
func (o Options) readOptions(write *ch.Options) *ch.Options {
	r := *write
	r.MaxOpenConns = o.MaxQueries + 2
	r.MaxIdleConns = 2
	r.ReadTimeout = o.QueryTimeout + o.IOTimeout
	r.DialContext = dialer(o.DialTimeout, o.IOTimeout, r.TLS)
	return &r
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = DefaultRetentionInterval
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = DefaultIOTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxQueries <= 0 {
		o.MaxQueries = DefaultMaxQueries
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.QueryThreads <= 0 {
		o.QueryThreads = DefaultQueryThreads
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "clickhouse")
	return o
}

// redactErr keeps a password in the DSN out of error messages.
func redactErr(err error, dsn string) error {
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), p, "xxxxx"))
		}
	}
	return err
}

// compression reads the DSN's compress parameter: lz4 (default), zstd or
// none (for loopback, where compressing only costs CPU).
func compression(v string) *ch.Compression {
	switch strings.ToLower(v) {
	case "none", "false", "0":
		return nil
	case "zstd":
		return &ch.Compression{Method: ch.CompressionZSTD}
	}
	return &ch.Compression{Method: ch.CompressionLZ4}
}
