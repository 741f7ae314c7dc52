package clickhouse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clickhouse"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// listen accepts connections on loopback and hands each to serve.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

func TestDialerVerifiesTheServerOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	addr := listen(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		buf := make([]byte, 1)
		if _, err := tc.Read(buf); err == nil {
			tc.Write(buf) // echo
		}
	})
	for _, tc := range []struct {
		name    string
		roots   *x509.CertPool
		wantErr string
	}{
		{"the CA that signed the server", pool, ""},
		{"another CA", x509.NewCertPool(), "TLS handshake with " + addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := dialer(5*time.Second, 5*time.Second, &tls.Config{RootCAs: tc.roots})(context.Background(), addr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("dial: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			buf := []byte{42}
			if _, err := conn.Write(buf); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Read(buf); err != nil || buf[0] != 42 {
				t.Fatalf("echo: %v %v", buf, err)
			}
		})
	}
}

// TestAWriteToAServerThatStopsReadingFails: a write that the peer never
// reads ends after the write timeout, or after the user's deadline when
// that is sooner, with a deadline error.
func TestAWriteToAServerThatStopsReadingFails(t *testing.T) {
	addr := listen(t, func(net.Conn) {}) // accepts, never reads
	for _, tc := range []struct {
		name         string
		writeTimeout time.Duration
		userDeadline time.Duration
	}{
		{"the write timeout", 200 * time.Millisecond, 0},
		{"a sooner user deadline", time.Hour, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := dialer(5*time.Second, tc.writeTimeout, nil)(context.Background(), addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.userDeadline > 0 {
				conn.SetDeadline(time.Now().Add(tc.userDeadline))
			}
			start := time.Now()
			block := make([]byte, 1<<20)
			for err == nil && time.Since(start) < 30*time.Second {
				_, err = conn.Write(block) // fills both sockets' buffers, then blocks
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write: %v after %v, want a deadline error", err, time.Since(start))
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("the write failed only after %v", took)
			}
		})
	}
}
