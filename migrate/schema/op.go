package schema

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Kind is what an operation does.
type Kind uint8

// Operation kinds.
const (
	Insert Kind = iota + 1
	Delete
	// InsertAbsent inserts the row unless an equal row is there (a live
	// change to a bag table, which may already be in a copy).
	InsertAbsent
	// DeleteRow deletes the rows equal to Values (a delete_object).
	DeleteRow
	// Upsert inserts the row, or updates the row it conflicts with on the
	// Conflict columns (a row others hang on, written again).
	Upsert
)

// Op is one row operation: an insert of a row, or a delete of the rows
// that match every condition.
type Op struct {
	Kind  Kind
	Table string
	// Values: the row to insert, in the order of Schema.Columns(Table).
	Values []any
	// Canon: the row as verify compares it, when it differs from Values
	// (ids the export assigns replaced by what they stand for).
	Canon []any
	// Where: the conditions of a delete (none: every row).
	Where []Cond
	// Conflict: the columns an Upsert conflicts on.
	Conflict []string
}

// Cond is a condition of a delete: Column = Value (or <> with Not), or
// Column IN (SELECT In.Column FROM In.Table WHERE In.Where).
type Cond struct {
	Column string
	Value  any
	Not    bool
	In     *Select
}

// Select is the subquery of a Cond.
type Select struct {
	Table  string
	Column string
	Where  []Cond
}

// Row is an insert.
func Row(table string, values ...any) Op { return Op{Kind: Insert, Table: table, Values: values} }

// Del is a delete of the rows matching every condition.
func Del(table string, where ...Cond) Op { return Op{Kind: Delete, Table: table, Where: where} }

// Eq is the condition column = value.
func Eq(column string, value any) Cond { return Cond{Column: column, Value: value} }

// Ne is the condition column <> value.
func Ne(column string, value any) Cond { return Cond{Column: column, Value: value, Not: true} }

// In is the condition column IN (SELECT sub.Column FROM sub.Table WHERE …).
func In(column string, sub Select) Cond { return Cond{Column: column, In: &sub} }

// CanonValues are the values verify compares.
func (o Op) CanonValues() []any {
	if o.Canon != nil {
		return o.Canon
	}
	return o.Values
}

// Absent is the insert of the row unless an equal one is there.
func (o Op) Absent() Op { o.Kind = InsertAbsent; return o }

// RowDelete is the delete of the rows equal to the insert's row.
func (o Op) RowDelete() Op { o.Kind = DeleteRow; return o }

// UpsertOn is the insert of the row, or the update of the row that has
// the same values in the columns.
func (o Op) UpsertOn(columns ...string) Op { o.Kind = Upsert; o.Conflict = columns; return o }

// UpsertSQL writes an Upsert over the table's columns: the other columns
// take the row's values.
func (o Op) UpsertSQL(columns []string) (string, []any) {
	cols := make([]string, len(columns))
	ph := make([]string, len(columns))
	var set []string
	for i, c := range columns {
		cols[i], ph[i] = pgx.Identifier{c}.Sanitize(), fmt.Sprintf("$%d", i+1)
		if !slices.Contains(o.Conflict, c) {
			set = append(set, cols[i]+" = EXCLUDED."+cols[i])
		}
	}
	conflict := make([]string, len(o.Conflict))
	for i, c := range o.Conflict {
		conflict[i] = pgx.Identifier{c}.Sanitize()
	}
	action := "NOTHING"
	if len(set) > 0 {
		action = "UPDATE SET " + strings.Join(set, ", ")
	}
	args := make([]any, len(columns))
	for i := range columns {
		if i < len(o.Values) {
			args[i] = o.Values[i]
		}
	}
	return "INSERT INTO " + pgx.Identifier{o.Table}.Sanitize() + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(ph, ", ") +
		") ON CONFLICT (" + strings.Join(conflict, ", ") + ") DO " + action, args
}

// RowSQL writes an InsertAbsent or a DeleteRow over the table's columns.
func (o Op) RowSQL(columns []string) (string, []any) {
	var b strings.Builder
	var args []any
	value := func(i int) any {
		if i < len(o.Values) {
			return o.Values[i]
		}
		return nil
	}
	// param gives a value's parameter number in the match. An insert's
	// values are $1..$n; its match compares copies of them, numbered
	// after: one parameter used both as a value of a varchar column and
	// compared would get two types, and PostgreSQL refuses that.
	var nums []int
	if o.Kind != DeleteRow {
		for i := range columns {
			args = append(args, value(i))
		}
	}
	nums = make([]int, len(columns))
	for i := range columns {
		if value(i) != nil {
			args = append(args, value(i))
			nums[i] = len(args)
		}
	}
	param := func(i int) int { return nums[i] }
	match := func() {
		for i, c := range columns {
			if i > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(pgx.Identifier{c}.Sanitize())
			if value(i) == nil {
				b.WriteString(" IS NULL")
				continue
			}
			fmt.Fprintf(&b, " = $%d", param(i))
		}
	}
	table := pgx.Identifier{o.Table}.Sanitize()
	switch o.Kind {
	case InsertAbsent:
		cols := make([]string, len(columns))
		ph := make([]string, len(columns))
		for i, c := range columns {
			cols[i], ph[i] = pgx.Identifier{c}.Sanitize(), fmt.Sprintf("$%d", i+1)
		}
		b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(ph, ", ") +
			" WHERE NOT EXISTS (SELECT 1 FROM " + table + " WHERE ")
		match()
		b.WriteString(")")
	case DeleteRow:
		b.WriteString("DELETE FROM " + table + " WHERE ")
		match()
	default:
		return "", nil
	}
	return b.String(), args
}

// SQL writes a delete as a statement with $n parameters.
func (o Op) SQL() (string, []any) {
	if o.Kind != Delete {
		return "", nil
	}
	var args []any
	var b strings.Builder
	b.WriteString("DELETE FROM ")
	b.WriteString(pgx.Identifier{o.Table}.Sanitize())
	writeWhere(&b, o.Where, &args, "")
	return b.String(), args
}

// WhereSQL writes a delete's conditions as a WHERE clause (empty: none),
// its parameters numbered after those in args. Its columns are qualified
// by alias when one is given (the table read in a join).
func (o Op) WhereSQL(alias string, args *[]any) string {
	var b strings.Builder
	writeWhere(&b, o.Where, args, alias)
	return b.String()
}

func writeWhere(b *strings.Builder, where []Cond, args *[]any, alias string) {
	for i, c := range where {
		if i == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		if alias != "" {
			b.WriteString(pgx.Identifier{alias}.Sanitize() + ".")
		}
		b.WriteString(pgx.Identifier{c.Column}.Sanitize())
		switch {
		case c.In != nil:
			b.WriteString(" IN (SELECT ")
			b.WriteString(pgx.Identifier{c.In.Column}.Sanitize())
			b.WriteString(" FROM ")
			b.WriteString(pgx.Identifier{c.In.Table}.Sanitize())
			writeWhere(b, c.In.Where, args, "")
			b.WriteString(")")
		case c.Not:
			*args = append(*args, c.Value)
			fmt.Fprintf(b, " <> $%d", len(*args))
		default:
			*args = append(*args, c.Value)
			fmt.Fprintf(b, " = $%d", len(*args))
		}
	}
}

// String is the operation for tests and logs.
func (o Op) String() string {
	switch o.Kind {
	case Insert:
		return fmt.Sprintf("%s %v", o.Table, o.Values)
	case Delete:
		q, args := o.SQL()
		return fmt.Sprintf("%s %v", q, args)
	}
	return "?"
}
