package erldist_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimmigrate/mimmigrate/erldist"
	"github.com/mimmigrate/mimmigrate/internal/testenv"
)

// Registration with the real epmd, in both reply forms: a version-6
// registration gets ALIVE2_X_RESP (32-bit creation), a version-5 one ALIVE2_RESP.
func TestEPMDRegister(t *testing.T) {
	testenv.Erl(t)
	testenv.StartErl(t, testenv.ErlOptions{}) // makes sure epmd runs
	e := erldist.EPMD{Host: "127.0.0.1"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, v := range []struct {
		hi, lo   uint16
		extended bool
	}{{6, 5, true}, {5, 5, false}} {
		name := "mmreg-" + testenv.RandomID(6)
		reg, err := e.Register(ctx, erldist.Alive2Req{Port: 45678, Hidden: true, HighestVersion: v.hi, LowestVersion: v.lo, Name: name})
		if err != nil {
			t.Fatalf("register v%d: %v", v.hi, err)
		}
		if reg.Extended != v.extended || reg.Creation == 0 {
			t.Errorf("v%d: extended %v creation %d", v.hi, reg.Extended, reg.Creation)
		}
		info, found, err := e.PortPlease(ctx, name)
		if err != nil || !found || info.Port != 45678 || !info.Hidden || info.HighestVersion != v.hi {
			t.Errorf("port please: %+v %v %v", info, found, err)
		}
		names, err := e.Names(ctx)
		listed := false
		for _, n := range names {
			listed = listed || (n.Name == name && n.Port == 45678)
		}
		if err != nil || !listed {
			t.Errorf("names: %v %v", names, err)
		}
		out, _ := exec.Command("epmd", "-names").Output()
		if !strings.Contains(string(out), "name "+name+" at port 45678") {
			t.Errorf("epmd -names does not show %s:\n%s", name, out)
		}
		// The same name again is refused while the first registration lives.
		if _, err := e.Register(ctx, erldist.Alive2Req{Port: 45679, HighestVersion: 6, LowestVersion: 5, Name: name}); err == nil {
			t.Error("duplicate registration accepted")
		}
		reg.Close()
		for i := 0; i < 50; i++ {
			if _, found, _ := e.PortPlease(ctx, name); !found {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, found, _ := e.PortPlease(ctx, name); found {
			t.Error("still registered after Close")
		}
	}
}

func TestResolveCookieOrder(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(erldist.CookieEnv, "")
	if _, _, err := erldist.ResolveCookie("", ""); erldist.KindOf(err) != erldist.KindNoCookie {
		t.Errorf("no cookie anywhere: %v", err)
	}
	os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte("from-home\n"), 0o400)
	if c, src, _ := erldist.ResolveCookie("", ""); c != "from-home" || !strings.HasSuffix(src, ".erlang.cookie") {
		t.Errorf("home: %q %q", c, src)
	}
	t.Setenv(erldist.CookieEnv, "from-env")
	if c, _, _ := erldist.ResolveCookie("", ""); c != "from-env" {
		t.Errorf("env: %q", c)
	}
	file := filepath.Join(home, "cookie-file")
	os.WriteFile(file, []byte("  from-file  \n"), 0o400)
	if c, src, _ := erldist.ResolveCookie("", file); c != "from-file" || src != file {
		t.Errorf("file: %q %q", c, src)
	}
	if c, src, _ := erldist.ResolveCookie("from-flag", file); c != "from-flag" || src != "--cookie" {
		t.Errorf("flag: %q %q", c, src)
	}
	for _, bad := range []string{"", "a\nb\n"} {
		os.WriteFile(file, []byte(bad), 0o600)
		_, _, err := erldist.ResolveCookie("", file)
		if erldist.KindOf(err) != erldist.KindNoCookie || strings.Contains(err.Error(), "a\nb") {
			t.Errorf("cookie file %q: %v", bad, err)
		}
	}
}
