package devload

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	idle, all, err := ParseStat([]byte("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\nintr 5\n"))
	if err != nil || idle != 800 || all != 1000 {
		t.Errorf("ParseStat = %d %d %v", idle, all, err)
	}
	// guest and guest_nice (fields 9 and 10) are already counted in user
	// and nice: counting them again overstated a busy host's total.
	if idle, all, err := ParseStat([]byte("cpu 300 0 100 500 100 0 0 0 200 0\n")); err != nil || idle != 600 || all != 1000 {
		t.Errorf("ParseStat with guest time = %d %d %v, want 600 1000", idle, all, err)
	}
	avail, total, err := ParseMeminfo([]byte("MemTotal:        1000 kB\nMemFree: 10 kB\nMemAvailable:     250 kB\n"))
	if err != nil || avail != 250 || total != 1000 {
		t.Errorf("ParseMeminfo = %d %d %v", avail, total, err)
	}
	for _, bad := range []string{"", "cpu 1 2\n", "cpu a b c d e\n", "cpu 0 0 0 0 0\n", "cpu 18446744073709551615 1 1 1 1\n"} {
		if _, _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "MemTotal: 0 kB\nMemAvailable: 0 kB\n", "MemTotal: 1 kB\nMemAvailable: 2 kB\n", "MemTotal:\nMemAvailable: 1\n", "MemTotal: x\nMemAvailable: 1\n"} {
		if _, _, err := ParseMeminfo([]byte(bad)); err == nil {
			t.Errorf("ParseMeminfo(%q) accepted", bad)
		}
	}
}

// TestSamplerFiles drives the sampler with files it rewrites, so the CPU
// share between two readings is known.
func TestSamplerFiles(t *testing.T) {
	dir := t.TempDir()
	stat, mem := filepath.Join(dir, "stat"), filepath.Join(dir, "meminfo")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(stat, "cpu 100 0 0 900 0\n")
	write(mem, "MemTotal: 1000 kB\nMemAvailable: 100 kB\n")
	s := &Sampler{Interval: time.Nanosecond, StatPath: stat, MeminfoPath: mem}
	first := s.Load()
	if !first.OK || first.CPU != 0.1 || first.Memory != 0.9 {
		t.Fatalf("first reading %+v", first)
	}
	// 100 more ticks, 90 of them busy.
	write(stat, "cpu 190 0 0 910 0\n")
	time.Sleep(time.Millisecond)
	if got := s.Load(); !got.OK || got.CPU < 0.899 || got.CPU > 0.901 {
		t.Errorf("second reading %+v, want CPU 0.9", got)
	}
	// iowait may go backwards on Linux, and with it the idle sum: the
	// interval's share is unknown then, and the previous reading stands
	// (the unsigned difference wrapped and read as 0 % busy).
	write(stat, "cpu 280 0 0 900 5\n")
	time.Sleep(time.Millisecond)
	if got := s.Load(); !got.OK || got.CPU < 0.899 || got.CPU > 0.901 {
		t.Errorf("reading with idle time going backwards %+v, want the previous CPU 0.9", got)
	}
	write(stat, "cpu 290 0 0 995 0\n")
	time.Sleep(time.Millisecond)
	if got := s.Load(); !got.OK || got.CPU < 0.099 || got.CPU > 0.101 {
		t.Errorf("reading after it %+v, want CPU 0.1", got)
	}
	// A broken file makes the reading not OK instead of failing.
	write(mem, "garbage")
	time.Sleep(time.Millisecond)
	if got := s.Load(); got.OK {
		t.Errorf("reading from a broken meminfo is OK: %+v", got)
	}
	// Within the interval the last reading is reused.
	s2 := &Sampler{Interval: time.Hour, StatPath: stat, MeminfoPath: filepath.Join(dir, "missing")}
	a := s2.Load()
	write(filepath.Join(dir, "missing"), "MemTotal: 10 kB\nMemAvailable: 5 kB\n")
	if b := s2.Load(); b != a {
		t.Errorf("reading within the interval changed: %+v then %+v", a, b)
	}
}

func TestSamplerProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc readings are Linux only")
	}
	s := &Sampler{}
	got := s.Load()
	if !got.OK || got.CPU < 0 || got.CPU > 1 || got.Memory <= 0 || got.Memory >= 1 {
		t.Errorf("reading of this machine: %+v", got)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("cpu  100 0 100 700 100 0 0 0 0 0\n"))
	f.Add([]byte("cpu 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		idle, all, err := ParseStat(b)
		if err == nil && (all == 0 || idle > all) {
			t.Fatalf("idle %d all %d", idle, all)
		}
	})
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte("MemTotal: 1000 kB\nMemAvailable: 250 kB\n"))
	f.Add([]byte("MemTotal:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		avail, total, err := ParseMeminfo(b)
		if err == nil && (total == 0 || avail > total) {
			t.Fatalf("avail %d total %d", avail, total)
		}
	})
}
