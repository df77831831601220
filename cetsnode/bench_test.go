package cetsnode

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist/term"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// BenchmarkClusterVersusMnesia measures, in one run on loopback, three Go
// nodes (one process, real TCP) against three real erl nodes with a
// ram_copies table on all three, with the same records ({rec, Key, Node,
// <<64 bytes>>}):
//
//   - replicated write throughput, 32 writers on one node: Mnesia
//     sync_dirty and dirty_write vs our acknowledged Insert;
//   - replication latency of one writer, p50/p99 (sync_dirty returns when
//     every replica has the write; so does Insert);
//   - a fourth node joining a table of MIMMIGRATE_BENCH_JOIN records
//     (default 1 000 000): mnesia:add_table_copy vs Join;
//   - memory per record.
//
// Run: go test -run XXX -bench ClusterVersusMnesia -benchtime 1x -timeout 30m ./cetsnode/
func BenchmarkClusterVersusMnesia(b *testing.B) {
	joinN := 1_000_000
	if v := os.Getenv("MIMMIGRATE_BENCH_JOIN"); v != "" {
		joinN, _ = strconv.Atoi(v)
	}
	const writers, writes, latencyWrites = 32, 64_000, 4000
	val := strings.Repeat("v", 64)

	// Mnesia: three erl nodes, a ram_copies table on all three.
	first := testenv.StartErl(b, testenv.ErlOptions{Prefix: "mnb", Mnesia: true, Long: true})
	var erls = []*testenv.ErlNode{first}
	for range 2 {
		erls = append(erls, testenv.StartErl(b, testenv.ErlOptions{Prefix: "mnb", Mnesia: true, Long: true, Cookie: first.Cookie, Join: first.Name}))
	}
	var names []string
	for _, e := range erls {
		names = append(names, "'"+e.Name+"'")
	}
	eval := func(expr string) string {
		out, err := testenv.EvalOnWithin(first.Name, first.Cookie, expr, 20*time.Minute)
		if err != nil {
			b.Fatalf("%s: %v %s", expr, err, out)
		}
		return out
	}
	eval(fmt.Sprintf(`{atomic, ok} = mnesia:create_table(bench, [{ram_copies, [%s]}, {attributes, [key, node, val]}]), ok`, strings.Join(names, ",")))
	mnesiaRun := func(kind string) float64 {
		out := eval(fmt.Sprintf(`V = list_to_binary(%q), Self = self(), W = %d, Per = %d div W, T0 = erlang:monotonic_time(microsecond),
			[spawn_link(fun() -> [mnesia:%s(fun() -> mnesia:write({bench, {I, K}, node(), V}) end) || K <- lists:seq(1, Per)], Self ! done end) || I <- lists:seq(1, W)],
			[receive done -> ok end || _ <- lists:seq(1, W)],
			(W * Per) * 1000000 / (erlang:monotonic_time(microsecond) - T0)`, val, writers, writes, kind))
		f, _ := strconv.ParseFloat(strings.TrimSpace(out), 64)
		return f
	}
	mnSync := mnesiaRun("sync_dirty")
	mnDirty := mnesiaRun("async_dirty")
	mnLat := eval(fmt.Sprintf(`V = list_to_binary(%q), L = lists:sort([begin T = erlang:monotonic_time(microsecond),
			mnesia:sync_dirty(fun() -> mnesia:write({bench, {lat, K}, node(), V}) end), erlang:monotonic_time(microsecond) - T end || K <- lists:seq(1, %d)]),
			{lists:nth(length(L) div 2, L), lists:nth(length(L) * 99 div 100, L)}`, val, latencyWrites))
	eval(`{atomic, ok} = mnesia:clear_table(bench), ok`)
	// The join: a table of joinN records, then a fourth node's copy.
	eval(fmt.Sprintf(`V = list_to_binary(%q), Self = self(), W = 8, Per = %d div W,
		[spawn_link(fun() -> [mnesia:dirty_write({bench, {I, K}, node(), V}) || K <- lists:seq(1, Per)], Self ! done end) || I <- lists:seq(1, W)],
		[receive done -> ok end || _ <- lists:seq(1, W)], ok`, val, joinN))
	mnMem := eval(`mnesia:table_info(bench, memory) * erlang:system_info(wordsize) / mnesia:table_info(bench, size)`)
	fourth := testenv.StartErl(b, testenv.ErlOptions{Prefix: "mnb", Mnesia: true, Long: true, Cookie: first.Cookie, Join: first.Name})
	mnJoin := eval(fmt.Sprintf(`T = erlang:monotonic_time(microsecond), {atomic, ok} = mnesia:add_table_copy(bench, '%s', ram_copies),
		(erlang:monotonic_time(microsecond) - T) / 1000000`, fourth.Name))
	for _, e := range append(erls, fourth) {
		e.Stop()
	}

	// Ours: three Go nodes in this process over TCP.
	cookie := "c" + testenv.RandomID(10)
	mk := func() *Cluster {
		c := startClusterB(b, cookie)
		return c
	}
	a, bb, c := mk(), mk(), mk()
	ctx := context.Background()
	if err := bb.Join(ctx, string(a.Self())); err != nil {
		b.Fatal(err)
	}
	if err := c.Join(ctx, string(a.Self())); err != nil {
		b.Fatal(err)
	}
	tbl := a.Tables()[0]
	vb := term.Binary(val)
	goRun := func() float64 {
		var wg sync.WaitGroup
		t0 := time.Now()
		per := writes / writers
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range per {
					if err := tbl.Insert(ctx, Record{term.Atom("rec"), term.Tuple{int64(i), int64(k)}, a.Self(), vb}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(per*writers) / time.Since(t0).Seconds()
	}
	goTput := goRun()
	lat := make([]time.Duration, latencyWrites)
	for k := range lat {
		t0 := time.Now()
		tbl.Insert(ctx, Record{term.Atom("rec"), term.Tuple{term.Atom("lat"), int64(k)}, a.Self(), vb})
		lat[k] = time.Since(t0)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	// The join: joinN records, a fourth node joins.
	for _, n := range []*Cluster{a, bb, c} {
		n.Tables()[0].st.replace(nil)
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	entries := make([]Entry, joinN)
	now := time.Now().UnixMicro()
	for k := range entries {
		entries[k] = Entry{Rec: Record{term.Atom("rec"), term.Tuple{int64(k % 8), int64(k)}, a.Self(), vb}, Stamp: now, Writer: a.Self()}
	}
	tbl.st.replace(entries)
	entries = nil
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	goMem := float64(ms1.HeapAlloc-ms0.HeapAlloc) / float64(joinN)
	d := mk()
	t0 := time.Now()
	if err := d.Join(ctx, string(a.Self())); err != nil {
		b.Fatal(err)
	}
	goJoin := time.Since(t0)
	if d.Tables()[0].Size() != joinN {
		b.Fatalf("the joined node has %d records", d.Tables()[0].Size())
	}

	fmt.Fprintf(os.Stderr, "BENCH writes, 32 writers, 3 replicas: Mnesia sync_dirty %.0f/s, async_dirty %.0f/s; ours (acknowledged) %.0f/s = %.2fx sync_dirty\n",
		mnSync, mnDirty, goTput, goTput/mnSync)
	fmt.Fprintf(os.Stderr, "BENCH latency of one writer {p50,p99} µs: Mnesia sync_dirty %s; ours {%d,%d}\n",
		strings.TrimSpace(mnLat), lat[len(lat)/2].Microseconds(), lat[len(lat)*99/100].Microseconds())
	fmt.Fprintf(os.Stderr, "BENCH join of %d records: Mnesia add_table_copy %s s; ours %.2f s\n", joinN, strings.TrimSpace(mnJoin), goJoin.Seconds())
	fmt.Fprintf(os.Stderr, "BENCH memory per record: Mnesia %s bytes; ours %.0f bytes (Go heap)\n", strings.TrimSpace(mnMem), goMem)
	b.ReportMetric(goTput/mnSync, "x-sync_dirty")
	b.ReportMetric(goJoin.Seconds(), "s-join")
}

func startClusterB(b *testing.B, cookie string) *Cluster {
	return startClusterTB(b, cookie)
}
