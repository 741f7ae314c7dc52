package hubble

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// selfSigned is a server certificate for 127.0.0.1, for the CLI to skip
// verifying (--tls-allow-insecure).
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "periscope-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// With an API token, Hubble's API wants it as the HTTP API does: the real
// CLI sends it as its Basic authentication password (which it sends over
// TLS only), other clients as a bearer token; the health check needs none.
func TestHubbleCLIWithTheAPIToken(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	cert := selfSigned(t)
	h.server = serveAddrWith(t, NewCollectorBackend(col), Options{Token: "s3cret",
		GRPC: []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))}})

	tlsArgs := []string{"--tls", "--tls-allow-insecure"}
	out, err := h.run(t, append([]string{"observe", "--last", "2", "-o", "jsonpb", "--basic-auth-username", "periscope", "--basic-auth-password", "s3cret"}, tlsArgs...)...)
	if err != nil || len(cliFlowIDs(t, out)) != 2 {
		t.Errorf("hubble observe with the token: %v: %s", err, out)
	}
	if _, err := h.run(t, append([]string{"observe", "--last", "2"}, tlsArgs...)...); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("hubble observe without the token: %v, want Unauthenticated", err)
	}
	if _, err := h.run(t, append([]string{"list", "namespaces", "--basic-auth-username", "periscope", "--basic-auth-password", "guess"}, tlsArgs...)...); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("hubble list namespaces with a wrong token: %v, want Unauthenticated", err)
	}

	// A gRPC client of its own sends a bearer token.
	conn, err := grpc.NewClient(h.server, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}))) //nolint:gosec // a test's own certificate
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := observerpb.NewObserverClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ServerStatus(ctx, &observerpb.ServerStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ServerStatus without the token: %v, want Unauthenticated", err)
	}
	if _, err := c.ServerStatus(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret"), &observerpb.ServerStatusRequest{}); err != nil {
		t.Errorf("ServerStatus with the bearer token: %v", err)
	}
}
