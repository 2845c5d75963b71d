// etcd_load: the write load bench/compare.sh puts on etcd, through etcd's official Go
// client (clientv3, from Debian's golang-etcd-server-dev, built in GOPATH mode with no
// network: see bench/compare.sh).
//
//	etcd_load -endpoint 127.0.0.1:PORT -pids PID,PID,PID -phases CLIENTS:COUNT,...
//
// Each phase runs CLIENTS goroutines that each keep one Put in flight (a closed loop
// without pipelining, as etcd's clients work), over ceil(CLIENTS/10) gRPC connections,
// on random 8-byte keys of a 100,000-key space with 3-byte values: COUNT/10 puts to warm
// up, then COUNT measured. It prints one line per phase: throughput, latency percentiles
// and the CPU seconds the member processes (-pids) spent over the measured puts.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// cpuTicks sums utime and stime (fields 14 and 15 of /proc/PID/stat) of the members.
func cpuTicks(pids []string) int64 {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += ut + st
	}
	return sum
}

// clkTck is Linux's USER_HZ, the unit of /proc/PID/stat's times on every architecture
// Debian's kernels build for.
const clkTck = 100

type phase struct{ clients, count int }

func runPhase(endpoint string, pids []string, p phase) error {
	conns := make([]*clientv3.Client, (p.clients+9)/10)
	for i := range conns {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	warmup := int64(p.count / 10)
	total := warmup + int64(p.count)
	var next, failed int64
	var start time.Time
	var cpu0 int64
	var once sync.Once
	lat := make([][]float64, p.clients)
	var wg sync.WaitGroup
	for g := 0; g < p.clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := conns[g%len(conns)]
			rng := rand.New(rand.NewSource(int64(g) + 1))
			for {
				n := atomic.AddInt64(&next, 1)
				if n > total {
					return
				}
				if n == warmup+1 {
					once.Do(func() { start = time.Now(); cpu0 = cpuTicks(pids) })
				}
				key := fmt.Sprintf("%08d", rng.Intn(100000))
				t := time.Now()
				_, err := c.Put(context.Background(), key, "abc")
				if err != nil {
					atomic.AddInt64(&failed, 1)
				} else if n > warmup {
					lat[g] = append(lat[g], float64(time.Since(t).Microseconds())/1e3)
				}
			}
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu := float64(cpuTicks(pids)-cpu0) / clkTck
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return fmt.Errorf("no put succeeded (%d failed)", failed)
	}
	sort.Float64s(all)
	q := func(f float64) float64 { return all[int(f*float64(len(all)-1))] }
	fmt.Printf("inflight=%d ops=%d errors=%d ops_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f cpu_s=%.2f\n",
		p.clients, len(all), failed, float64(len(all))/elapsed, q(0.5), q(0.99), q(0.999), cpu)
	return nil
}

func main() {
	endpoint := flag.String("endpoint", "", "client URL host:port of the member to load (loopback)")
	pidList := flag.String("pids", "", "comma-separated pids of the members, for their CPU time")
	phaseList := flag.String("phases", "1:1000", "CLIENTS:COUNT,... run one after the other")
	flag.Parse()
	if !strings.HasPrefix(*endpoint, "127.") {
		fmt.Fprintln(os.Stderr, "etcd_load: -endpoint must be on 127.0.0.0/8")
		os.Exit(2)
	}
	var phases []phase
	for _, s := range strings.Split(*phaseList, ",") {
		var p phase
		if _, err := fmt.Sscanf(s, "%d:%d", &p.clients, &p.count); err != nil || p.clients < 1 || p.count < 10 {
			fmt.Fprintln(os.Stderr, "etcd_load: bad phase", s)
			os.Exit(2)
		}
		phases = append(phases, p)
	}
	pids := strings.Split(*pidList, ",")
	for _, p := range phases {
		if err := runPhase(*endpoint, pids, p); err != nil {
			fmt.Fprintln(os.Stderr, "etcd_load:", err)
			os.Exit(1)
		}
	}
}
