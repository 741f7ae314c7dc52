package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// APIServerEnv names the kube-apiserver binary; without it Start looks for
// bin/kube-apiserver in the repository (make kube-apiserver builds it).
const APIServerEnv = "PERISCOPE_KUBE_APISERVER"

// Options tune Start; the zero value is fine.
type Options struct {
	// Dir holds the servers' data, keys and logs; empty means a new
	// temporary directory that Stop removes.
	Dir string
	// ReadyTimeout bounds the wait for both servers; zero means 2 minutes
	// (a loaded 2-core machine starts kube-apiserver in 10-30 s).
	ReadyTimeout time.Duration
}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file with the same
	// credentials, for programs that take --kubeconfig.
	Kubeconfig string
	// Dir holds the data, keys and logs; APIServerLog and EtcdLog are the
	// servers' logs.
	Dir, APIServerLog, EtcdLog string

	etcd, apiserver *process
	removeDir       bool
}

// Binaries returns the paths of etcd and kube-apiserver, or an error
// saying which is missing and how to get it.
func Binaries() (etcd, apiserver string, err error) {
	etcd, err = exec.LookPath("etcd")
	if err != nil {
		return "", "", fmt.Errorf("etcd not found (apt-get install etcd-server, or make deps): %w", err)
	}
	apiserver = os.Getenv(APIServerEnv)
	if apiserver == "" {
		root, err := repoRoot()
		if err != nil {
			return "", "", err
		}
		apiserver = filepath.Join(root, "bin", "kube-apiserver")
	}
	if _, err := os.Stat(apiserver); err != nil {
		return "", "", fmt.Errorf("kube-apiserver not found (make kube-apiserver builds it, or set %s): %w", APIServerEnv, err)
	}
	return etcd, apiserver, nil
}

// repoRoot is the directory above the working directory that has go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver and waits until the API server is
// ready. Stop ends both. Ports taken by someone else between choosing and
// binding them make Start try again, up to three times.
func Start(ctx context.Context, opts Options) (*Server, error) {
	etcdBin, apiBin, err := Binaries()
	if err != nil {
		return nil, err
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	s := &Server{Dir: opts.Dir}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "periscope-kubetest-"); err != nil {
			return nil, fmt.Errorf("start API server: %w", err)
		}
		s.removeDir = true
	}
	s.EtcdLog = filepath.Join(s.Dir, "etcd.log")
	s.APIServerLog = filepath.Join(s.Dir, "kube-apiserver.log")
	for attempt := 1; ; attempt++ {
		err = s.start(ctx, etcdBin, apiBin, opts.ReadyTimeout)
		if err == nil {
			return s, nil
		}
		s.stopProcesses()
		if attempt == 3 || ctx.Err() != nil {
			s.Stop()
			return nil, err
		}
	}
}

func (s *Server) start(ctx context.Context, etcdBin, apiBin string, timeout time.Duration) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	clientURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	etcdData := filepath.Join(s.Dir, "etcd")
	if err := os.RemoveAll(etcdData); err != nil {
		return fmt.Errorf("clear etcd data: %w", err)
	}
	s.etcd, err = startProcess("etcd", etcdBin, []string{
		"--name=kubetest",
		"--data-dir=" + etcdData,
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		"--logger=zap",
		"--log-outputs=stderr",
	}, s.EtcdLog)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := s.etcd.waitFor(ctx, func(ctx context.Context) bool {
		return get(ctx, plain, clientURL+"/health", "") == nil
	}); err != nil {
		return err
	}

	pki, err := newPKI(s.Dir)
	if err != nil {
		return err
	}
	token, err := randomToken()
	if err != nil {
		return err
	}
	tokens := filepath.Join(s.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",kubetest-admin,kubetest-admin,\"system:masters\"\n"), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	s.apiserver, err = startProcess("kube-apiserver", apiBin, []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + pki.certFile,
		"--tls-private-key-file=" + pki.keyFile,
		"--client-ca-file=" + pki.caFile,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saPublicFile,
		"--service-account-signing-key-file=" + pki.saSigningKey,
		// An address range for Service objects only: nothing is routed.
		"--service-cluster-ip-range=198.19.255.0/24",
		// No controller manager creates namespaces' "default" service
		// accounts; tests name the account a pod runs as.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(s.Dir, "certs"),
	}, s.APIServerLog)
	if err != nil {
		return err
	}
	host := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	s.Config = &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: pki.caPEM},
		QPS:             1000,
		Burst:           2000,
	}
	client, err := rest.HTTPClientFor(s.Config)
	if err != nil {
		return fmt.Errorf("API server client: %w", err)
	}
	client.Timeout = 5 * time.Second
	if err := s.apiserver.waitFor(ctx, func(ctx context.Context) bool {
		return get(ctx, client, host+"/readyz", token) == nil
	}); err != nil {
		return err
	}
	return s.writeKubeconfig()
}

// writeKubeconfig writes Config as a kubeconfig file into Dir.
func (s *Server) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubetest"] = &clientcmdapi.Cluster{
		Server:                   s.Config.Host,
		CertificateAuthorityData: s.Config.CAData,
	}
	cfg.AuthInfos["kubetest-admin"] = &clientcmdapi.AuthInfo{Token: s.Config.BearerToken}
	cfg.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest-admin"}
	cfg.CurrentContext = "kubetest"
	s.Kubeconfig = filepath.Join(s.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, s.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Stop ends kube-apiserver, then etcd, and removes the temporary directory
// Start made. It is safe to call more than once.
func (s *Server) Stop() error {
	err := s.stopProcesses()
	if s.removeDir {
		if rerr := os.RemoveAll(s.Dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", s.Dir, rerr))
		}
		s.removeDir = false
	}
	return err
}

func (s *Server) stopProcesses() error {
	var errs []error
	if s.apiserver != nil {
		errs = append(errs, s.apiserver.stop(15*time.Second))
	}
	if s.etcd != nil {
		errs = append(errs, s.etcd.stop(10*time.Second))
	}
	return errors.Join(errs...)
}

// get fails unless GET url answers 200.
func get(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
