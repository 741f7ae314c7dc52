package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	name string
}

func newCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: dir, name: name}
	writePEM(t, ca.file("ca.pem"), "CERTIFICATE", der)
	return ca
}

func (ca *testCA) file(name string) string { return filepath.Join(ca.dir, ca.name+"-"+name) }

// issue writes a leaf certificate and key for name and returns their files.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = ca.file(name+".pem"), ca.file(name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	rogue := newCA(t, dir, "rogue")
	srvCert, srvKey := ca.issue(t, "collector", x509.ExtKeyUsageServerAuth)
	relayCert, relayKey := ca.issue(t, "relay", x509.ExtKeyUsageClientAuth)
	rogueCert, rogueKey := rogue.issue(t, "relay", x509.ExtKeyUsageClientAuth)
	rogueSrvCert, rogueSrvKey := rogue.issue(t, "collector", x509.ExtKeyUsageServerAuth)

	serverCfg, err := ServerTLSConfig(srvCert, srvKey, ca.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute)
	node := startNode(t, "secure", "", []api.Flow{testFlow(1, t0), testFlow(2, t0.Add(time.Second))}, serverCfg)
	rogueServerCfg, err := ServerTLSConfig(rogueSrvCert, rogueSrvKey, ca.file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	impostor := startNode(t, "impostor", "", []api.Flow{testFlow(3, t0)}, rogueServerCfg)

	tests := []struct {
		name        string
		cert, key   string
		peer        string
		wantFlows   int
		wantPartial string
		wantErr     string
	}{
		{"a relay with a client certificate from the CA gets flows", relayCert, relayKey, node.addr, 2, "", ""},
		{"a relay without a client certificate is refused", "", "", node.addr, 0, node.addr, "certificate"},
		{"a relay whose client certificate is from another CA is refused", rogueCert, rogueKey, node.addr, 0, node.addr, "certificate"},
		{"a collector whose server certificate is not from the CA is refused", relayCert, relayKey, impostor.addr, 0, impostor.addr, "unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientCfg, err := ClientTLSConfig(tt.cert, tt.key, ca.file("ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			r, base := startRelay(t, Options{Peers: []string{tt.peer}, TLS: clientCfg})
			gs, h, _ := getFlows(t, base, "all=1")
			if len(gs) != tt.wantFlows {
				t.Errorf("got %d flows, want %d", len(gs), tt.wantFlows)
			}
			if got := h.Get(flowquery.PartialHeader); got != tt.wantPartial {
				t.Errorf("partial %q, want %q", got, tt.wantPartial)
			}
			if tt.wantErr != "" {
				ns := nodeStatus(r, tt.peer)
				if ns.Connected || !strings.Contains(ns.LastError, tt.wantErr) {
					t.Errorf("node status %+v; want an error about %q", ns, tt.wantErr)
				}
			}
		})
	}
}
