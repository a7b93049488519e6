// loadgen sends AdmissionReviews to a webhook the way kube-apiserver does: Go's net/http
// client over TLS, keep-alive connections, HTTP/2 when the server offers it (ALPN).
//
// It is open-loop: request i of a step is due at start + i/rate and its latency is counted
// from that due time, so a server that falls behind shows the queueing it causes instead of
// slowing the generator down (no coordinated omission). One JSON line per step on stdout.
//
//	loadgen -url https://127.0.0.1:9443/mutate-pods -ca ca.pem -body review.json \
//	    -rates 250,500,1000 -seconds 4
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type step struct {
	Rate      float64 `json:"rate"`
	Sent      int     `json:"sent"`
	OK        int     `json:"ok"`
	Failed    int     `json:"failed"`
	Achieved  float64 `json:"achieved_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P90ms     float64 `json:"p90_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Proto     string  `json:"proto"`
	LastError string  `json:"last_error,omitempty"`
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func main() {
	url := flag.String("url", "", "webhook URL")
	caFile := flag.String("ca", "", "CA certificate (PEM) the server's certificate chains to")
	bodyFile := flag.String("body", "", "AdmissionReview JSON; the string UID is replaced per request")
	rates := flag.String("rates", "250,500,1000", "requests per second, one step each")
	seconds := flag.Float64("seconds", 4, "length of each step")
	warmup := flag.Float64("warmup", 1, "seconds at the first rate before measuring")
	maxInFlight := flag.Int("max-in-flight", 256, "requests in flight at most (more are counted as failed)")
	flag.Parse()

	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fmt.Fprintln(os.Stderr, "no certificate in", *caFile)
		os.Exit(2)
	}
	template, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        *maxInFlight,
		MaxIdleConnsPerHost: *maxInFlight,
		IdleConnTimeout:     90 * time.Second,
	}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	slots := make(chan struct{}, *maxInFlight)

	run := func(rate, secs float64) step {
		n := int(rate * secs)
		lat := make([]float64, 0, n)
		var mu sync.Mutex
		var wg sync.WaitGroup
		st := step{Rate: rate}
		start := time.Now()
		for i := 0; i < n; i++ {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			body := bytes.Replace(template, []byte("UID"), []byte("u"+strconv.Itoa(i)), 1)
			select {
			case slots <- struct{}{}:
			default:
				mu.Lock()
				st.Sent++
				st.Failed++
				st.LastError = "too many in flight"
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func(due time.Time, body []byte) {
				defer wg.Done()
				defer func() { <-slots }()
				resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
				ok := false
				proto := ""
				if err == nil {
					data, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					proto = resp.Proto
					ok = resp.StatusCode == 200 && bytes.Contains(data, []byte(`"allowed":true`))
					if !ok {
						err = fmt.Errorf("status %d: %.100s", resp.StatusCode, data)
					}
				}
				ms := float64(time.Since(due).Microseconds()) / 1000
				mu.Lock()
				defer mu.Unlock()
				st.Sent++
				if ok {
					st.OK++
					lat = append(lat, ms)
					st.Proto = proto
				} else {
					st.Failed++
					st.LastError = err.Error()
				}
			}(due, body)
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		sort.Float64s(lat)
		st.Achieved = float64(st.OK) / elapsed
		st.P50ms = quantile(lat, 0.50)
		st.P90ms = quantile(lat, 0.90)
		st.P99ms = quantile(lat, 0.99)
		if len(lat) > 0 {
			st.MaxMs = lat[len(lat)-1]
		}
		return st
	}

	var steps []float64
	for _, f := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r <= 0 {
			fmt.Fprintln(os.Stderr, "bad rate", f)
			os.Exit(2)
		}
		steps = append(steps, r)
	}
	if *warmup > 0 {
		run(steps[0], *warmup)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, r := range steps {
		if err := enc.Encode(run(r, *seconds)); err != nil {
			os.Exit(1)
		}
	}
}
