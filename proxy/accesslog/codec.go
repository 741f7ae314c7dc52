package accesslog

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// rawMessage is a message as received, left for Run to decode.
type rawMessage []byte

// codec is gRPC's protobuf codec, except that it copies a message received
// into a *rawMessage as is.
type codec struct{ proto encoding.CodecV2 }

// ServerCodec is the option of the gRPC server that serves the
// access-log service (Register): its messages stay bytes until Run decodes
// them; every other service's are protobuf as usual.
func ServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodecV2(codec{proto: encoding.GetCodecV2(proto.Name)})
}

func (c codec) Name() string { return proto.Name }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawMessage); ok {
		*r = data.Materialize()
		return nil
	}
	if err := c.proto.Unmarshal(data, v); err != nil {
		return fmt.Errorf("unmarshal %T: %w", v, err)
	}
	return nil
}
