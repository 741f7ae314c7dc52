package hubble

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/filter"
)

// celFlowVariable is the variable a CEL expression reads the flow from,
// named and typed as Hubble declares it (pkg/hubble/filters): "flow" is
// taken by the protobuf package, so `_flow`, of type flow.Flow.
const celFlowVariable = "_flow"

// celCostLimit bounds the work of one expression on one flow (CEL's
// runtime cost units): an expression a client sends runs on every flow
// read, so one that loops over lists without end is cut off, and the flow
// does not match.
const celCostLimit = 100000

// celEnv is CEL's environment for flow filters, as Hubble's: the
// container "flow" (so `Verdict.DROPPED` names the enum), flow.Flow's
// types, and _flow. It is built once, and immutable.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Container("flow"),
		cel.Types(&flowpb.Flow{}),
		cel.Variable(celFlowVariable, cel.ObjectType("flow.Flow")),
	)
})

// celPredicate compiles a FlowFilter's experimental.cel_expression list
// into a filter.Predicate, once per request: it matches a flow when any
// expression is true of it (Hubble ORs them), evaluated on the flow as
// FlowToProto gives it to Hubble's clients. An expression that does not
// compile or is not boolean is an error naming it; one that fails on a
// flow (a missing map key, the cost limit) does not match that flow, as in
// Hubble.
func celPredicate(exprs []string) (filter.Predicate, error) {
	env, err := celEnv()
	if err != nil {
		return filter.Predicate{}, fmt.Errorf("CEL environment: %w", err)
	}
	programs := make([]cel.Program, 0, len(exprs))
	quoted := make([]string, 0, len(exprs))
	for i, expr := range exprs {
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			return filter.Predicate{}, fmt.Errorf("cel_expression[%d] %q: %w", i, expr, iss.Err())
		}
		if !ast.OutputType().IsExactType(types.BoolType) {
			return filter.Predicate{}, fmt.Errorf("cel_expression[%d] %q: its result is %s, want bool", i, expr, ast.OutputType())
		}
		prg, err := env.Program(ast, cel.CostLimit(celCostLimit))
		if err != nil {
			return filter.Predicate{}, fmt.Errorf("cel_expression[%d] %q: %w", i, expr, err)
		}
		programs = append(programs, prg)
		quoted = append(quoted, strconv.Quote(expr))
	}
	return filter.Predicate{
		Name: "cel(" + strings.Join(quoted, ", ") + ")",
		Match: func(f *api.Flow) bool {
			vars := map[string]any{celFlowVariable: FlowToProto(f)}
			for _, prg := range programs {
				out, _, err := prg.Eval(vars)
				if err != nil {
					continue
				}
				if b, ok := out.Value().(bool); ok && b {
					return true
				}
			}
			return false
		},
	}, nil
}
