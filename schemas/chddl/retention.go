package chddl

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/memoflow/memoflow/internal/chconn"
)

// DropExpiredPartitions drops every month of the event log whose last day
// is older than the retention, and returns the partitions it dropped
// (YYYYMM). A row's retention runs from its event_date, so a month goes
// once its newest possible row has expired. It works on every server (on
// 18.16 it is the only retention there is; where the TTL migration applied
// it finds little left to do). Statistics are aggregates without personal
// data and are kept.
func DropExpiredPartitions(ctx context.Context, conn driver.Conn, database string, retention time.Duration) ([]string, error) {
	return dropExpired(ctx, conn, database, retention, time.Now())
}

func dropExpired(ctx context.Context, conn driver.Conn, database string, retention time.Duration, now time.Time) ([]string, error) {
	if err := (Options{Database: database, Retention: retention}).Validate(); err != nil {
		return nil, err
	}
	return DropExpiredMonths(ctx, conn, database, EventsTable, retention, now)
}

// DropExpiredMonths drops the monthly partitions (toYYYYMM) of
// database.table whose last day is older than retention at now, and
// returns their ids. Every table of the event log that is partitioned by
// month (events, its lookup table) is dropped by this one rule, so they
// keep the same months.
func DropExpiredMonths(ctx context.Context, conn driver.Conn, database, table string, retention time.Duration, now time.Time) ([]string, error) {
	// Rows with a date before cutoff are expired.
	y, m, d := now.UTC().Date()
	cutoff := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -retentionDays(retention))

	rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active",
		database, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s.%s: %w", database, table, chconn.Classify(err))
	}
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, err
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, chconn.Classify(err)
	}
	sort.Strings(parts)

	var dropped []string
	for _, p := range parts {
		yyyymm, err := strconv.Atoi(p)
		if err != nil || yyyymm < 100001 || yyyymm%100 < 1 || yyyymm%100 > 12 {
			return dropped, fmt.Errorf("%s.%s has partition %q, not YYYYMM: is it partitioned by toYYYYMM of a date?", database, table, p)
		}
		nextMonth := time.Date(yyyymm/100, time.Month(yyyymm%100)+1, 1, 0, 0, 0, 0, time.UTC)
		if nextMonth.After(cutoff) {
			continue // the month still has rows inside the retention
		}
		// The partition id is a number, so it is spliced, not quoted.
		if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %d", database, table, yyyymm)); err != nil {
			return dropped, fmt.Errorf("drop partition %d of %s.%s: %w", yyyymm, database, table, chconn.Classify(err))
		}
		dropped = append(dropped, p)
	}
	return dropped, nil
}
