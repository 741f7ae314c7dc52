// Package deploy holds what the compose stack (../docker-compose.yaml, built
// from ../Dockerfile) mounts besides the dashboards (prometheus.yml), and
// the test that the stack's definition is valid and consistent with the
// README, the dashboards' provisioning and the collector's addresses.
//
// It holds no code the binary links; no Docker engine runs in CI, so the
// image is not built there: `docker-compose config` validates the stack.
package deploy
