// Command go-peer drives Consul's official Go client (github.com/hashicorp/consul/api, its
// api.Lock) for consul-lock's benchmark and interoperability tests.
//
// It talks to the agent named by CONSUL_HTTP_ADDR (and the other CONSUL_* variables the Go
// client reads). Modes:
//
//	go-peer cycle      -key K [-cycles N | -duration D] [-warmup D]
//	go-peer contention -key K -workers W -hold H -duration D
//	go-peer hold       -key K [-for D]
//	go-peer try        -key K [-wait D]
//
// cycle and contention print one JSON object on stdout (raw samples: the Rust bench computes
// percentiles, hand-offs and fairness itself, the same way as for its own runs). hold prints
// "locked <fencing index>", holds until stdin closes (or -for passes), unlocks and prints
// "unlocked". try prints "locked" (and unlocks), "timeout" or "error: ...". Keys are used as
// given (no prefix is added). Exit status: 0 on success (a try that timed out included),
// 1 on an error, 2 on bad arguments.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// counting counts the HTTP requests the Go client sends.
type counting struct {
	base http.RoundTripper
	n    atomic.Uint64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

func newClient() (*api.Client, *counting, error) {
	cfg := api.DefaultConfig()
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = 512
	base.MaxIdleConnsPerHost = 512
	rt := &counting{base: base}
	cfg.HttpClient = &http.Client{Transport: rt}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot build the Consul client (check CONSUL_HTTP_ADDR): %w", err)
	}
	return c, rt, nil
}

func lockOpts(key string) *api.LockOptions {
	return &api.LockOptions{
		Key:         key,
		SessionName: "consul-lock go-peer",
		SessionTTL:  "15s",
	}
}

type cycleOut struct {
	Peer           string   `json:"peer"`
	Library        string   `json:"library"`
	Cycles         int      `json:"cycles"`
	WarmupCycles   int      `json:"warmup_cycles"`
	Seconds        float64  `json:"seconds"`
	LatenciesNs    []int64  `json:"latencies_ns"`
	ClientRequests uint64   `json:"client_requests"`
	CPUNs          int64    `json:"cpu_ns"`
	ContextSwitch  int64    `json:"context_switches"`
	Notes          []string `json:"notes"`
}

// usage returns the process's user + system CPU time and its context switches so far.
func usage() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpu, int64(ru.Nvcsw + ru.Nivcsw)
}

type holdOut struct {
	Worker          int   `json:"worker"`
	AcquiredNs      int64 `json:"acquired_ns"`
	ReleaseCalledNs int64 `json:"release_called_ns"`
	ReleasedNs      int64 `json:"released_ns"`
}

type contentionOut struct {
	Peer           string    `json:"peer"`
	Library        string    `json:"library"`
	Workers        int       `json:"workers"`
	HoldNs         int64     `json:"hold_ns"`
	Seconds        float64   `json:"seconds"`
	Holds          []holdOut `json:"holds"`
	ClientRequests uint64    `json:"client_requests"`
	Notes          []string  `json:"notes"`
}

// library names the Go client this binary was built against; peers/install.sh sets it
// with -ldflags "-X main.library=...", since a module build and the GOPATH fallback bring
// different revisions of github.com/hashicorp/consul/api.
var library = "github.com/hashicorp/consul/api (revision not recorded at build time) (api.Lock)"

func oneCycle(c *api.Client, key string) error {
	l, err := c.LockOpts(lockOpts(key))
	if err != nil {
		return err
	}
	lost, err := l.Lock(nil)
	if err != nil {
		return err
	}
	if lost == nil {
		return errors.New("Lock returned neither the lock nor an error")
	}
	return l.Unlock()
}

func runCycle(key string, cycles int, duration, warmup time.Duration) error {
	c, rt, err := newClient()
	if err != nil {
		return err
	}
	warm := 0
	for t := time.Now(); time.Since(t) < warmup; warm++ {
		if err := oneCycle(c, key); err != nil {
			return fmt.Errorf("warm-up cycle: %w", err)
		}
	}
	out := cycleOut{Peer: "go", Library: library, WarmupCycles: warm, LatenciesNs: []int64{}, Notes: []string{
		"api.Lock per cycle: session create, blocking-query read, acquire, release; the session destroy runs in api.Lock's renewal goroutine after Unlock returns",
	}}
	req0 := rt.n.Load()
	cpu0, cs0 := usage()
	start := time.Now()
	for i := 0; ; i++ {
		if cycles > 0 && i >= cycles {
			break
		}
		if cycles == 0 && time.Since(start) >= duration {
			break
		}
		t := time.Now()
		if err := oneCycle(c, key); err != nil {
			return fmt.Errorf("cycle %d: %w", i+1, err)
		}
		out.LatenciesNs = append(out.LatenciesNs, time.Since(t).Nanoseconds())
	}
	out.Seconds = time.Since(start).Seconds()
	cpu1, cs1 := usage()
	out.CPUNs, out.ContextSwitch = (cpu1 - cpu0).Nanoseconds(), cs1-cs0
	out.Cycles = len(out.LatenciesNs)
	out.ClientRequests = rt.n.Load() - req0
	return json.NewEncoder(os.Stdout).Encode(out)
}

func runContention(key string, workers int, hold, duration time.Duration) error {
	c, rt, err := newClient()
	if err != nil {
		return err
	}
	req0 := rt.n.Load()
	start := time.Now()
	end := start.Add(duration)
	stop := make(chan struct{})
	timer := time.AfterFunc(duration, func() { close(stop) })
	defer timer.Stop()
	var mu sync.Mutex
	var holds []holdOut
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			opts := lockOpts(key)
			// Lock checks stop only between its blocking reads: a short wait bounds how
			// long a waiter can linger after the end of the run.
			opts.LockWaitTime = time.Second
			l, err := c.LockOpts(opts)
			var mine []holdOut
			for err == nil && time.Now().Before(end) {
				var lost <-chan struct{}
				lost, err = l.Lock(stop)
				if err != nil || lost == nil {
					break // stopped (end of the run) or failed
				}
				acquired := time.Since(start)
				if hold > 0 {
					time.Sleep(hold)
				}
				releaseCalled := time.Since(start)
				err = l.Unlock()
				mine = append(mine, holdOut{w, acquired.Nanoseconds(), releaseCalled.Nanoseconds(), time.Since(start).Nanoseconds()})
			}
			mu.Lock()
			defer mu.Unlock()
			holds = append(holds, mine...)
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("worker %d: %w", w, err)
			}
		}(w)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	sort.Slice(holds, func(i, j int) bool { return holds[i].AcquiredNs < holds[j].AcquiredNs })
	out := contentionOut{Peer: "go", Library: library, Workers: workers, HoldNs: hold.Nanoseconds(),
		Seconds: duration.Seconds(), Holds: holds, ClientRequests: rt.n.Load() - req0,
		Notes: []string{"one api.Lock per worker (goroutine), all in one client; waits are api.Lock's blocking queries"}}
	if out.Holds == nil {
		out.Holds = []holdOut{}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// fencingIndex reads the key after Lock returned: its ModifyIndex is the index of the
// acquiring write (api.Lock does not return it).
func fencingIndex(c *api.Client, key string) (uint64, error) {
	pair, _, err := c.KV().Get(key, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		return 0, err
	}
	if pair == nil {
		return 0, fmt.Errorf("the key %q is gone right after it was locked", key)
	}
	return pair.ModifyIndex, nil
}

func runHold(key string, holdFor time.Duration) error {
	c, _, err := newClient()
	if err != nil {
		return err
	}
	l, err := c.LockOpts(lockOpts(key))
	if err != nil {
		return err
	}
	lost, err := l.Lock(nil)
	if err != nil {
		return err
	}
	if lost == nil {
		return errors.New("Lock returned neither the lock nor an error")
	}
	idx, err := fencingIndex(c, key)
	if err != nil {
		_ = l.Unlock()
		return err
	}
	fmt.Printf("locked %d\n", idx)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	var deadline <-chan time.Time
	if holdFor > 0 {
		deadline = time.After(holdFor)
	}
	select {
	case <-stdinClosed:
	case <-deadline:
	case <-lost:
		fmt.Println("lost")
		return errors.New("the lock was lost while held")
	}
	if err := l.Unlock(); err != nil {
		return err
	}
	fmt.Println("unlocked")
	return nil
}

func runTry(key string, wait time.Duration) error {
	c, _, err := newClient()
	if err != nil {
		return err
	}
	opts := lockOpts(key)
	opts.LockTryOnce = true
	opts.LockWaitTime = wait
	l, err := c.LockOpts(opts)
	if err != nil {
		return err
	}
	lost, err := l.Lock(nil)
	if err != nil {
		return err
	}
	if lost == nil {
		fmt.Println("timeout")
		return nil
	}
	fmt.Println("locked")
	return l.Unlock()
}

const usageText = `usage: go-peer MODE [flags]   (the agent: CONSUL_HTTP_ADDR)
modes:
  cycle      -key K [-cycles N | -duration D] [-warmup D]   JSON on stdout
  contention -key K -workers W -hold H -duration D          JSON on stdout
  hold       -key K [-for D]    prints "locked <index>", holds until stdin closes or -for passes, then "unlocked"
  try        -key K [-wait D]   prints "locked", "timeout" or "error: ..."`

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, usageText)
		os.Exit(2)
	}
	mode := os.Args[1]
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	key := fs.String("key", "", "the Consul key to lock (used as given)")
	cycles := fs.Int("cycles", 0, "cycle: number of cycles (0: run for -duration)")
	duration := fs.Duration("duration", 5*time.Second, "cycle, contention: how long to measure")
	warmup := fs.Duration("warmup", 0, "cycle: unmeasured cycles for this long first")
	workers := fs.Int("workers", 4, "contention: workers on the one key")
	hold := fs.Duration("hold", 0, "contention: how long each acquisition holds the key")
	holdFor := fs.Duration("for", 0, "hold: release after this long even if stdin stays open (0: until stdin closes)")
	wait := fs.Duration("wait", 0, "try: api.LockWaitTime, how long the one attempt may wait")
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if *key == "" {
		fmt.Fprintln(os.Stderr, "error: -key is required\n"+usageText)
		os.Exit(2)
	}
	var err error
	switch mode {
	case "cycle":
		err = runCycle(*key, *cycles, *duration, *warmup)
	case "contention":
		if *workers < 1 {
			fmt.Fprintln(os.Stderr, "error: -workers must be at least 1")
			os.Exit(2)
		}
		err = runContention(*key, *workers, *hold, *duration)
	case "hold":
		err = runHold(*key, *holdFor)
	case "try":
		err = runTry(*key, *wait)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "error: unknown mode %q\n%s\n", mode, usageText)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
