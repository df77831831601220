package main

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a size flag: 512MiB, 1GiB, 1500000 (bytes), 2GB.
type ByteSize int64

// UnmarshalText parses the flag value.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (e.g. 512MiB, 2GB, 1000000)", string(text))
	}
	*b = ByteSize(n * float64(mult))
	return nil
}
