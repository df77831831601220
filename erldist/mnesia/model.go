// Package mnesia inspects and repairs a Mnesia cluster (ejabberd,
// MongooseIM, RabbitMQ or plain Mnesia) over Erlang distribution: it asks
// every running db node what it knows, compares the answers, diagnoses what
// blocks failover and suggests the copy layout an operator should have.
package mnesia

import "time"

// SchemaVersion names the JSON layout of Snapshot (docs/inspect-json.md).
const SchemaVersion = "mimmigrate.inspect/1"

// CopyType is how a node holds a table.
type CopyType string

// Copy types. CopyNone means the node has no copy: it reads the table
// remotely ("remote copy" in Mnesia's info output).
const (
	CopyRAM      CopyType = "ram_copies"
	CopyDisc     CopyType = "disc_copies"
	CopyDiscOnly CopyType = "disc_only_copies"
	CopyExternal CopyType = "external_copies"
	CopyNone     CopyType = "none"
)

// Short is the type as the human report prints it.
func (c CopyType) Short() string {
	switch c {
	case CopyRAM:
		return "ram"
	case CopyDisc:
		return "disc"
	case CopyDiscOnly:
		return "disc_only"
	case CopyExternal:
		return "external"
	}
	return "-"
}

// OnDisc reports whether the copy survives a restart.
func (c CopyType) OnDisc() bool { return c == CopyDisc || c == CopyDiscOnly }

// Node states.
const (
	NodeRunning       = "running"        // Mnesia runs and we are connected
	NodeStopped       = "stopped"        // in the schema, not running, not reachable
	NodeMnesiaStopped = "mnesia_stopped" // the Erlang node answers, Mnesia does not run
	NodeUnreachable   = "unreachable"    // Mnesia says it runs, we cannot connect
)

// Snapshot is everything inspect learned about a cluster.
type Snapshot struct {
	Schema      string        `json:"schema"`
	Target      string        `json:"target"`
	TakenAt     time.Time     `json:"taken_at"`
	ElapsedMS   int64         `json:"elapsed_ms"`
	Cluster     Cluster       `json:"cluster"`
	Nodes       []Node        `json:"nodes"`
	Tables      []Table       `json:"tables"`
	Diagnostics []Diagnostic  `json:"diagnostics"`
	Plan        []PlanStep    `json:"plan"`
	Settings    InspectParams `json:"settings"`
}

// Cluster is the cluster-wide view, as the target node sees it.
type Cluster struct {
	DBNodes        []string `json:"db_nodes"`
	RunningDBNodes []string `json:"running_db_nodes"`
	StoppedDBNodes []string `json:"stopped_db_nodes"`
	ExtraDBNodes   []string `json:"extra_db_nodes"`
	// MasterNodeTables maps each node to the tables it has master nodes set for.
	MasterNodeTables map[string][]string `json:"master_node_tables"`
	// Agree is false when running nodes disagree on db nodes or any table.
	Agree bool `json:"agree"`
}

// Product is the application that owns the node's Mnesia.
type Product struct {
	Name    string `json:"name"` // ejabberd, mongooseim, rabbitmq or mnesia
	Version string `json:"version"`
}

// Lock is one held or queued Mnesia lock.
type Lock struct {
	Table string `json:"table"`
	Key   string `json:"key"`
	Kind  string `json:"kind"`
	Owner string `json:"owner"`
}

// Node is one db node.
type Node struct {
	Name             string   `json:"name"`
	Status           string   `json:"status"`
	Error            string   `json:"error,omitempty"`
	Product          Product  `json:"product"`
	MnesiaVersion    string   `json:"mnesia_version,omitempty"`
	OTPRelease       string   `json:"otp_release,omitempty"`
	ERTSVersion      string   `json:"erts_version,omitempty"`
	Directory        string   `json:"directory,omitempty"`
	SchemaLocation   string   `json:"schema_location,omitempty"`
	SchemaCopy       CopyType `json:"schema_copy"`
	UseDir           bool     `json:"use_dir"`
	WordSize         int      `json:"word_size,omitempty"`
	DBNodes          []string `json:"db_nodes,omitempty"`
	RunningDBNodes   []string `json:"running_db_nodes,omitempty"`
	ExtraDBNodes     []string `json:"extra_db_nodes,omitempty"`
	MasterNodeTables []string `json:"master_node_tables,omitempty"`
	HeldLocks        []Lock   `json:"held_locks"`
	LockQueue        []Lock   `json:"lock_queue"`
	LocalTables      int      `json:"local_tables"`
	Transactions     int64    `json:"transactions_committed"`
	TransactionFails int64    `json:"transactions_failed"`
}

// NodeTable is what one running node says about one table.
type NodeTable struct {
	StorageType CopyType `json:"storage_type"` // this node's own copy
	Size        *int64   `json:"size"`         // nil when not loaded
	MemoryBytes *int64   `json:"memory_bytes"` // of this node's own copy; nil when it has none
	WhereToRead string   `json:"where_to_read"`
	LoadNode    string   `json:"load_node"`
	LoadReason  string   `json:"load_reason"`
	MasterNodes []string `json:"master_nodes"`
	// Indexes as this node's running Mnesia lists them (a position twice
	// after change_table_copy_type of an indexed table).
	Indexes []string `json:"indexes"`
}

// Disagreement is a table property on which running nodes differ.
type Disagreement struct {
	Field  string            `json:"field"`
	Values map[string]string `json:"values"` // node -> value
}

// Table is one table, merged over all running nodes.
type Table struct {
	Name          string               `json:"name"`
	Type          string               `json:"type"`
	RecordName    string               `json:"record_name"`
	Attributes    []string             `json:"attributes"`
	Copies        map[string]CopyType  `json:"copies"` // every db node
	Size          *int64               `json:"size"`
	MemoryBytes   *int64               `json:"memory_bytes"` // largest local copy
	WhereToRead   string               `json:"where_to_read"`
	Loaded        bool                 `json:"loaded"`
	LocalContent  bool                 `json:"local_content"`
	Majority      bool                 `json:"majority"`
	Indexes       []string             `json:"indexes"`
	Volatile      bool                 `json:"volatile"`
	Agree         bool                 `json:"agree"`
	Disagreements []Disagreement       `json:"disagreements,omitempty"`
	PerNode       map[string]NodeTable `json:"per_node"`
}

// Severities of diagnostics.
const (
	SevCritical = "critical"
	SevWarning  = "warning"
	SevInfo     = "info"
)

// Diagnostic is one problem with a one-line fix.
type Diagnostic struct {
	Severity string `json:"severity"`
	Code     string `json:"code"`
	Node     string `json:"node,omitempty"`
	Table    string `json:"table,omitempty"`
	Message  string `json:"message"`
	Fix      string `json:"fix"`
}

// PlanStep is one step of the suggested copy layout.
type PlanStep struct {
	Command string   `json:"command"`
	Table   string   `json:"table,omitempty"`
	Node    string   `json:"node"`
	From    CopyType `json:"from,omitempty"`
	To      CopyType `json:"to,omitempty"`
	Reason  string   `json:"reason"`
}

// InspectParams are the thresholds used, recorded in the snapshot.
type InspectParams struct {
	DETSWarnBytes  int64 `json:"dets_warn_bytes"`
	DETSCritBytes  int64 `json:"dets_critical_bytes"`
	LargeTableByte int64 `json:"large_table_bytes"`
}

// DETSLimit is the size limit of a DETS file (disc_only_copies).
const DETSLimit = 2 << 30
