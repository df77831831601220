package erldist_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// erlangRPCAnchor measures Erlang's own rpc:call from a second erl node to
// target: the microseconds per call with one call at a time, and the calls
// per second with `inflight` processes calling at once.
func erlangRPCAnchor(b *testing.B, caller, target *testenv.ErlNode, calls, inflight int) (usPerCall, callsPerSec float64) {
	b.Helper()
	expr := fmt.Sprintf(`
T = '%s', N = %d, P = %d,
[T = rpc:call(T, erlang, node, []) || _ <- lists:seq(1, 200)],
{Seq, _} = timer:tc(fun() -> [T = rpc:call(T, erlang, node, []) || _ <- lists:seq(1, N)] end),
Self = self(),
{Par, _} = timer:tc(fun() ->
    Pids = [spawn(fun() -> [T = rpc:call(T, erlang, node, []) || _ <- lists:seq(1, N div P)], Self ! done end) || _ <- lists:seq(1, P)],
    [receive done -> ok end || _ <- Pids]
  end),
lists:flatten(io_lib:format("~f ~f", [Seq / N, (N div P) * P / (Par / 1000000)]))`, target.Name, calls, inflight)
	out := caller.Eval(b, expr)
	if _, err := fmt.Sscanf(out, "%f %f", &usPerCall, &callsPerSec); err != nil {
		b.Fatalf("anchor output %q: %v", out, err)
	}
	return usPerCall, callsPerSec
}

type callFunc func(context.Context, term.Atom, term.Atom, ...term.Term) (term.Term, error)

// goRPC measures our client the same way.
func goRPC(b *testing.B, call callFunc, calls, inflight int) (usPerCall, callsPerSec float64) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		if _, err := call(ctx, "erlang", "node"); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for i := 0; i < calls; i++ {
		if _, err := call(ctx, "erlang", "node"); err != nil {
			b.Fatal(err)
		}
	}
	usPerCall = float64(time.Since(start).Microseconds()) / float64(calls)
	start = time.Now()
	var wg sync.WaitGroup
	per := calls / inflight
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := call(ctx, "erlang", "node"); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	callsPerSec = float64(per*inflight) / time.Since(start).Seconds()
	return usPerCall, callsPerSec
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkRPCVersusErlang: round trip and throughput (32 calls in flight)
// of erlang:node/0 through our client and through Erlang's own rpc:call
// from another node on this machine, alternating, in the same run. The
// figures are medians over the rounds; the ratios are what docs/benchmarks.md
// tracks. The client runs on one P, as the CLI's RPC commands do; run with
// -cpu 2 to see it on two.
//
//	go test -run XXX -bench RPCVersusErlang -benchtime 7x -cpu 1,2 ./erldist/
func BenchmarkRPCVersusErlang(b *testing.B) {
	target := testenv.StartErl(b, testenv.ErlOptions{Prefix: "bt"})
	caller := testenv.StartErl(b, testenv.ErlOptions{Prefix: "bc", Cookie: target.Cookie})
	cl := &erldist.Client{Cookie: target.Cookie}
	c, err := cl.Dial(context.Background(), target.Name)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const calls, inflight = 20000, 32
	var goLat, goTput, erlLat, erlTput []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, tp := goRPC(b, c.Call, calls, inflight)
		goLat, goTput = append(goLat, l), append(goTput, tp)
		l, tp = erlangRPCAnchor(b, caller, target, calls, inflight)
		erlLat, erlTput = append(erlLat, l), append(erlTput, tp)
	}
	b.StopTimer()

	b.ReportMetric(median(goLat), "go-us/call")
	b.ReportMetric(median(erlLat), "erl-us/call")
	b.ReportMetric(median(goTput), "go-calls/s@32")
	b.ReportMetric(median(erlTput), "erl-calls/s@32")
	b.ReportMetric(median(erlLat)/median(goLat), "latency-speedup")
	b.ReportMetric(median(goTput)/median(erlTput), "throughput-ratio")
	b.Logf("round trip: mimmigrate %.1f us, Erlang rpc:call %.1f us; 32 in flight: mimmigrate %.0f calls/s, Erlang %.0f calls/s",
		median(goLat), median(erlLat), median(goTput), median(erlTput))
}
