package hubble

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/periscope-dev/periscope/api/access"
)

// healthService is the gRPC health check's service, which answers without
// the token as GET /healthz does.
const healthService = "/grpc.health.v1.Health/"

// authorize refuses a call that lacks the token (the API's --api-token, as
// access.CheckAuthorization reads it from the "authorization" metadata:
// "Bearer <token>", or Basic authentication with the token as password,
// which is what `hubble --basic-auth-password` sends, over TLS only).
func authorize(ctx context.Context, method, token string) error {
	if token == "" || strings.HasPrefix(method, healthService) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if access.CheckAuthorization(v, token) {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "missing or wrong API token: send it as authorization metadata "+
		"(\"Bearer <token>\", or `hubble --tls --basic-auth-username any --basic-auth-password <token>`)")
}

// authOptions are the interceptors that require token on every call.
func authOptions(token string) []grpc.ServerOption {
	if token == "" {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := authorize(ctx, info.FullMethod, token); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := authorize(ss.Context(), info.FullMethod, token); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
