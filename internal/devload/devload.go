// Package devload measures the device's own CPU and memory use. The router
// weighs it when it chooses between a local and a remote target: a device
// that is busy sends work elsewhere.
//
// Readings come from /proc/stat and /proc/meminfo (Linux). CPU use is the
// share of non-idle time between two readings, so a Sampler reads at most
// once per interval and answers from its last reading in between: the hot
// path never waits for the file system more than once a second.
package devload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Sample is one reading. OK is false where the platform offers no readings
// (not Linux, /proc not mounted); the router then ignores load.
type Sample struct {
	CPU    float64   // share of CPU time busy since the previous reading, 0–1
	Memory float64   // share of memory in use (1 - MemAvailable/MemTotal), 0–1
	OK     bool      // CPU and Memory are readings
	At     time.Time // when it was taken
}

// Sampler reads the device's load, at most once per Interval.
type Sampler struct {
	// Interval is the least time between two readings (default 1s).
	Interval time.Duration
	// StatPath and MeminfoPath default to /proc/stat and /proc/meminfo.
	StatPath, MeminfoPath string

	mu        sync.Mutex
	cur       Sample
	idle, all uint64 // CPU counters at the previous reading
	read      time.Time
}

// Load returns the latest reading, taking a new one when the last is older
// than Interval. It never fails: on an error the reading is not OK.
func (s *Sampler) Load() Sample {
	iv := s.Interval
	if iv <= 0 {
		iv = time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !s.read.IsZero() && now.Sub(s.read) < iv {
		return s.cur
	}
	s.read = now
	idle, all, err := readStat(orDefault(s.StatPath, "/proc/stat"))
	if err != nil {
		s.cur = Sample{At: now}
		return s.cur
	}
	mem, err := readMeminfo(orDefault(s.MeminfoPath, "/proc/meminfo"))
	if err != nil {
		s.cur = Sample{At: now}
		return s.cur
	}
	cpu := s.cur.CPU
	// The idle sum includes iowait, which Linux may report going
	// backwards: the interval's share is unknown then, and the previous
	// reading stands (the unsigned difference would wrap).
	if s.all != 0 && all > s.all && idle >= s.idle {
		busy := float64((all - s.all) - min(idle-s.idle, all-s.all))
		cpu = busy / float64(all-s.all)
	}
	first := s.all == 0
	s.idle, s.all = idle, all
	if first {
		// One reading gives no rate: use the share since boot, which is
		// a fair first guess and replaced a second later.
		cpu = float64(all-idle) / float64(max(all, 1))
	}
	s.cur = Sample{CPU: clamp01(cpu), Memory: mem, OK: true, At: now}
	return s.cur
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func clamp01(f float64) float64 { return max(0, min(1, f)) }

func readStat(path string) (idle, all uint64, err error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, 0, err
	}
	return ParseStat(b)
}

func readMeminfo(path string) (float64, error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, err
	}
	avail, total, err := ParseMeminfo(b)
	if err != nil {
		return 0, err
	}
	return clamp01(1 - float64(avail)/float64(total)), nil
}

// readSmall reads at most 256 KiB: both files are a few KiB, and a file
// that is not what it should be must not cost memory.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 256<<10)
	n, err := f.Read(buf)
	if n == 0 && err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// ParseStat reads the aggregate "cpu" line of /proc/stat: the idle time
// (idle + iowait) and the total (user to steal; guest time is part of
// user time already), in clock ticks.
func ParseStat(b []byte) (idle, all uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 5 {
			return 0, 0, fmt.Errorf("devload: /proc/stat cpu line has %d fields, want at least 5", len(f))
		}
		for i, x := range f[1:] {
			n, err := strconv.ParseUint(string(x), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("devload: /proc/stat cpu field %d: %w", i+1, err)
			}
			if i >= 8 {
				continue // guest, guest_nice: already counted in user and nice
			}
			if all+n < all {
				return 0, 0, errors.New("devload: /proc/stat cpu counters overflow")
			}
			all += n
			if i == 3 || i == 4 { // idle, iowait
				idle += n
			}
		}
		if all == 0 {
			return 0, 0, errors.New("devload: /proc/stat cpu counters are all zero")
		}
		return idle, all, nil
	}
	return 0, 0, errors.New("devload: no cpu line in /proc/stat")
}

// ParseMeminfo reads MemAvailable and MemTotal (kB) from /proc/meminfo.
func ParseMeminfo(b []byte) (avail, total uint64, err error) {
	var haveAvail, haveTotal bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(k) {
		case "MemAvailable":
			dst, haveAvail = &avail, true
		case "MemTotal":
			dst, haveTotal = &total, true
		default:
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			return 0, 0, fmt.Errorf("devload: /proc/meminfo %s has no value", k)
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("devload: /proc/meminfo %s: %w", k, err)
		}
		*dst = n
	}
	switch {
	case !haveAvail || !haveTotal:
		return 0, 0, errors.New("devload: /proc/meminfo lacks MemAvailable or MemTotal")
	case total == 0:
		return 0, 0, errors.New("devload: /proc/meminfo MemTotal is 0")
	case avail > total:
		return 0, 0, errors.New("devload: /proc/meminfo MemAvailable exceeds MemTotal")
	}
	return avail, total, nil
}
