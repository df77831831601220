package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const rabbitServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// StartRabbitMQ starts a private RabbitMQ node (its own node name, ports,
// Mnesia and log directories and cookie; the system's RabbitMQ is untouched)
// and waits until the broker has booted. It stops when the test ends.
func StartRabbitMQ(t testing.TB) *ErlNode {
	t.Helper()
	if _, err := os.Stat(rabbitServer); err != nil {
		t.Skip("RabbitMQ is not installed (apt-get install rabbitmq-server)")
	}
	dir := t.TempDir()
	n := &ErlNode{Name: "rmqt-" + RandomID(6) + "@localhost", Cookie: "cookie" + RandomID(16), Dir: dir, logs: &SyncBuffer{}}
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(dir, "mnesia"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(n.Cookie), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	amqp, dist := FreePort(t), FreePort(t)
	n.cmd = exec.Command(rabbitServer)
	n.cmd.Dir = dir
	n.cmd.Env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+n.Name,
		fmt.Sprintf("RABBITMQ_NODE_PORT=%d", amqp),
		fmt.Sprintf("RABBITMQ_DIST_PORT=%d", dist),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(dir, "plugins-expand"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+TimeWarpFlags,
	)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	ownGroup(n.cmd)
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start rabbitmq: %v", err)
	}
	t.Cleanup(func() {
		n.Stop()
		exec.Command("pkill", "-9", "-f", "--", "-sname "+n.Name+" ").Run()
	})
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := n.TryEval("lists:keymember(rabbit, 1, application:which_applications())"); err == nil && strings.TrimSpace(out) == "true" {
			return n
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("RabbitMQ %s did not boot; output:\n%s", n.Name, tail(n.logs.String(), 3000))
	return nil
}
