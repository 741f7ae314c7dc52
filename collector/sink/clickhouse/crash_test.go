package clickhouse

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/collector/sink"
)

const (
	crashChildDSN  = "PERISCOPE_CH_CRASH_DSN"
	crashChildDir  = "PERISCOPE_CH_CRASH_SPOOL"
	crashChildBase = "PERISCOPE_CH_CRASH_BASE"
	crashFlows     = 40000
	crashSeed      = 31
)

// crashQueueOptions: the recommended batching, scaled down, with a spool.
func crashQueueOptions(dir string) sink.QueueOptions {
	return sink.QueueOptions{Capacity: 4000, BatchSize: 500, FlushInterval: 20 * time.Millisecond,
		RetryBackoff: 50 * time.Millisecond, SpoolDir: dir, Logger: quietLogger()}
}

// crashChild is the collector the test kills: a ClickHouse store behind a
// spooled queue, offered genFlows(crashSeed) in order as a steady stream. It
// prints "offered N" after every 100 flows.
func crashChild() {
	say := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	base, _ := strconv.ParseInt(os.Getenv(crashChildBase), 10, 64)
	flows := genFlows(crashSeed, crashFlows, time.Unix(0, base))
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: os.Getenv(crashChildDSN), Logger: quietLogger()})
	if err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	o := crashQueueOptions(os.Getenv(crashChildDir))
	q, err := sink.NewQueue(s, o)
	if err != nil {
		say("error %v", err)
		os.Exit(2)
	}
	go q.Run(ctx)
	for i := range flows {
		if !q.Offer(&flows[i]) {
			say("refused %d", i)
			os.Exit(3)
		}
		if i%100 == 99 {
			say("offered %d", i+1)
			time.Sleep(5 * time.Millisecond)
			for q.Stats().Queued > o.Capacity/2 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	say("not killed")
	os.Exit(4)
}

// TestACollectorKilledWhileClickHouseIsDownLosesNothing: a process with a
// spooled ClickHouse queue is killed (SIGKILL) while it holds flows in
// memory, in its journal and in spool segments (ClickHouse down), or while
// it inserts (ClickHouse up). A new queue on its spool directory, once
// ClickHouse is up, stores every flow the killed process accepted exactly
// once, and its counts add up.
func TestACollectorKilledWhileClickHouseIsDownLosesNothing(t *testing.T) {
	if os.Getenv(crashChildDSN) != "" {
		crashChild()
		return
	}
	for _, tc := range []struct {
		name string
		down bool
	}{
		{name: "killed while ClickHouse is down", down: true},
		{name: "killed while it inserts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s0, srv := openStore(t, nil, "periscope") // the schema
			s0.Close()
			dir := filepath.Join(t.TempDir(), "spool")
			base := time.Now().Add(-time.Minute)
			cmd := exec.Command(os.Args[0], "-test.run=^TestACollectorKilledWhileClickHouseIsDownLosesNothing$")
			cmd.Env = append(os.Environ(), crashChildDSN+"="+srv.DSN("periscope"), crashChildDir+"="+dir,
				crashChildBase+"="+strconv.FormatInt(base.UnixNano(), 10))
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var offered int
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				n, ok := strings.CutPrefix(sc.Text(), "offered ")
				if !ok {
					t.Fatalf("child: %s", sc.Text())
				}
				offered, _ = strconv.Atoi(n)
				if tc.down && offered == 3000 {
					srv.Kill()
				}
				if offered >= 12000 {
					break
				}
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			srv.Start()
			s, _ := openStore(t, srv, "periscope")
			rowsBefore, _, _ := tableChecksum(t, s)
			t.Logf("killed after %d flows offered; %d rows stored", offered, rowsBefore)

			q, stop := runQueue(t, s, crashQueueOptions(dir))
			waitFor(t, 60*time.Second, "the killed process's flows written", func() bool {
				st := q.Stats()
				return st.Queued == 0 && st.Spooled == 0
			})
			stop()
			st := q.Stats()
			if err := st.Stage(s.Name()).Check(); err != nil {
				t.Error(err)
			}
			rows, _, _ := tableChecksum(t, s)
			t.Logf("queue stats %+v, sink stats %+v", st, s.Stats())
			if rows < uint64(offered) || rows > crashFlows {
				t.Fatalf("%d rows after the restart; the killed process had accepted at least %d", rows, offered)
			}
			checkExactlyOnce(t, s, genFlows(crashSeed, crashFlows, base)[:rows])
			// (rowsBefore may miss the killed process's last insert, which
			// the server may commit after the count.)
			if st.Written != st.Recovered || st.Recovered-st.Deduplicated != s.Stats().Inserted ||
				st.Unrecovered != 0 || st.Corrupt != 0 || st.Dropped != 0 || st.Failed != 0 {
				t.Errorf("queue stats %+v: want the flows left by the killed process recovered and written", st)
			}
		})
	}
}
