package chconn

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Version is a ClickHouse server version (year.month.patch since 2018).
type Version struct {
	Major, Minor, Patch uint64
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor uint64) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// ParseVersion parses "24.8.4" or "18.16.1.1" (extra parts are ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ".", 4)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("clickhouse version %q: want major.minor[.patch]", s)
	}
	var n [3]uint64
	for i := 0; i < len(parts) && i < 3; i++ {
		v, err := strconv.ParseUint(parts[i], 10, 32)
		if err != nil {
			return Version{}, fmt.Errorf("clickhouse version %q: %w", s, err)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

// ServerVersion returns the version the server announced in the handshake.
func ServerVersion(conn driver.Conn) (Version, error) {
	sv, err := conn.ServerVersion()
	if err != nil {
		return Version{}, fmt.Errorf("clickhouse server version: %w", err)
	}
	return Version{sv.Version.Major, sv.Version.Minor, sv.Version.Patch}, nil
}

// Features says which version-dependent ClickHouse features memoflow may
// use. The thresholds are the first release that has the feature without an
// "experimental" setting; when unsure they are set later, not earlier, since
// a feature left unused costs less than a statement the server rejects.
// The only server installable here is 18.16.1, where every flag is false;
// production runs 24+, where every flag is true.
type Features struct {
	Version Version
	// LowCardinality(T) without allow_experimental_low_cardinality_type
	// (18.16 needs that setting, which 26.x rejects as unknown).
	LowCardinality bool
	// TTL: table TTL expressions (19.6) together with the ttl_only_drop_parts
	// table setting, so expired months go as whole parts, never as row
	// rewrites.
	TTL bool
	// DateTime64 column type (20.1).
	DateTime64 bool
	// InsertDeduplicationToken: the insert_deduplication_token setting (22.2)
	// and non_replicated_deduplication_window on plain MergeTree tables.
	InsertDeduplicationToken bool
	// AsyncInsert: the async_insert setting (21.11). memoflow does not use
	// it for the event log (it batches itself), but other writers may.
	AsyncInsert bool
}

// FeaturesOf returns what a server of version v supports.
func FeaturesOf(v Version) Features {
	return Features{
		Version:                  v,
		LowCardinality:           v.AtLeast(19, 3),
		TTL:                      v.AtLeast(20, 1),
		DateTime64:               v.AtLeast(20, 1),
		InsertDeduplicationToken: v.AtLeast(22, 2),
		AsyncInsert:              v.AtLeast(21, 11),
	}
}

// ServerFeatures is FeaturesOf(ServerVersion(conn)).
func ServerFeatures(conn driver.Conn) (Features, error) {
	v, err := ServerVersion(conn)
	if err != nil {
		return Features{}, err
	}
	return FeaturesOf(v), nil
}
