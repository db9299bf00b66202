package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Duration is a time.Duration that decodes from strings such as "30s" or
// "1m30s" (time.ParseDuration syntax). A distinct type is needed because
// neither TOML nor JSON has a duration type, and a bare number is ambiguous
// (seconds? milliseconds?). For compatibility with JSON configs written by
// other tools, UnmarshalJSON also accepts an integer number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes d as a duration string, so that a Config marshals to
// something a human (and UnmarshalText) can read back.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// UnmarshalText parses a time.ParseDuration string such as "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// UnmarshalJSON accepts a duration string ("30s") or an integer number of
// seconds (30). null leaves d unchanged, as encoding/json does for other
// types.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	default:
		secs, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid duration %s: want a string like \"30s\" or an integer number of seconds", b)
		}
		v, err := secondsDuration(secs)
		if err != nil {
			return err
		}
		*d = v
		return nil
	}
}

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		// time's message quotes the input already; drop its "time: " prefix
		// and add a hint, because the usual mistake is a missing unit.
		var msg string
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			msg = fmt.Sprintf("invalid duration %q: missing unit, e.g. \"%ss\"", s, s)
		} else {
			msg = fmt.Sprintf("invalid duration %q: want a number with a unit, e.g. \"30s\", \"1m30s\", \"500ms\"", s)
		}
		return 0, errors.New(msg)
	}
	return Duration(v), nil
}

func secondsDuration(secs int64) (Duration, error) {
	if secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
		return 0, fmt.Errorf("duration of %d seconds is out of range", secs)
	}
	return Duration(time.Duration(secs) * time.Second), nil
}
