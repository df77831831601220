package erldist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CookieEnv names the environment variable holding a cookie.
const CookieEnv = "MIMMIGRATE_COOKIE"

// ResolveCookie finds the cookie: the --cookie value, the --cookie-file file,
// $MIMMIGRATE_COOKIE, then ~/.erlang.cookie. It returns where the cookie came
// from (for messages) but never the cookie in any message.
func ResolveCookie(flagValue, file string) (cookie, source string, err error) {
	if flagValue != "" {
		return flagValue, "--cookie", nil
	}
	if file != "" {
		c, err := readCookieFile(file)
		return c, file, err
	}
	if c := os.Getenv(CookieEnv); c != "" {
		return c, "$" + CookieEnv, nil
	}
	home, err := os.UserHomeDir()
	if err == nil {
		p := filepath.Join(home, ".erlang.cookie")
		if _, statErr := os.Stat(p); statErr == nil {
			c, err := readCookieFile(p)
			return c, p, err
		}
	}
	return "", "", newError(KindNoCookie, "",
		"give the cookie file of the node's service user (e.g. /var/lib/ejabberd/.erlang.cookie), set "+CookieEnv+", or create ~/.erlang.cookie",
		nil, "no Erlang cookie found").withRemedy(RemedyCookie, "")
}

func readCookieFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		hint := "check the path"
		if errors.Is(err, os.ErrPermission) {
			hint = "the file belongs to the node's service user: run as that user or as root"
		}
		return "", newError(KindNoCookie, "", hint, nil, "cannot read cookie file %s: %s", p, describeFileErr(err))
	}
	c := strings.TrimSpace(string(b))
	if c == "" {
		return "", newError(KindNoCookie, "", "the file must hold the cookie text", nil, "cookie file %s is empty", p)
	}
	if strings.ContainsAny(c, "\n\r") {
		return "", newError(KindNoCookie, "", "the file must hold only the cookie", nil, "cookie file %s has more than one line", p)
	}
	return c, nil
}

func describeFileErr(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return fmt.Sprint(err)
}
